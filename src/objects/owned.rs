//! The one table of what the plugin owns in a cluster: each object's kind,
//! API group and the versions tried, the namespace it lives in, where its
//! name comes from and when `uninstall` deletes it. `expose`,
//! `map-identity`, `status`, `uninstall` and the wizard all find their
//! objects here, at the version the cluster serves.

use kube::core::ApiResource;

use crate::objects::apis::{
    self, GATEWAY_API, GATEWAY_API_VERSION, IDENTITY_POLICY_GROUP, IDENTITY_POLICY_VERSION,
    ISTIO_NETWORKING, ServedApis,
};
use crate::objects::place::ObjectRef;

/// The Certificate whose secret the ingress gateway serves.
pub const CERTIFICATE: &str = "istio-ingressgateway-certs";
pub const GATEWAY: &str = "kmsgateway";
pub const VIRTUAL_SERVICE: &str = "kmsvservice";
pub const DESTINATION_RULE: &str = "kms-api-tls";
/// The Secret holding the CA that signed kms-api's certificate, in the
/// gateway's namespace: the name Istio's gateways mount for CA files.
pub const CA_SECRET: &str = "istio-ingressgateway-ca-certs";
/// The Gateway API's Gateway, in the Istio namespace: istiod deploys the
/// gateway it asks for as `kms-gateway-istio` beside it.
pub const KMS_GATEWAY: &str = "kms-gateway";
/// The HTTPRoute and the BackendTLSPolicy, beside the kms-api Service they
/// route to and verify.
pub const KMS_ROUTE: &str = "kms-api";
pub const KMS_BACKEND_TLS: &str = "kms-api";
/// The ConfigMap holding the CA that signed kms-api's certificate, beside the
/// BackendTLSPolicy that names it (the only kind of CA reference Istio reads).
pub const CA_CONFIG_MAP: &str = "kms-api-ca";

/// Which API an object belongs to; the version is the cluster's choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// The core API, `v1`.
    Core,
    /// cert-manager's current API or its legacy one.
    CertManager,
    /// Istio's networking API at the newest version served.
    IstioNetworking,
    /// The Kubernetes Gateway API, v1.
    GatewayApi,
    IdentityPolicy,
}

/// Which of the run's two namespaces an object lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Home {
    Kms,
    Istio,
}

/// Where an object's name comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Name {
    Fixed(&'static str),
    /// `--name` of `map-identity` (`--policy` elsewhere).
    Policy,
    /// `--secret`: the API key Secret.
    ApiKeySecret,
    /// The Certificate's `spec.secretName`, known once it is read.
    IssuedBy,
}

/// When `uninstall` deletes an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// When the plugin created it and no one else owns a field of it.
    WhenOnlyThePluginOwnsIt,
    /// Only when asked, whoever owns it.
    OnRequest(Request),
}

/// The objects `uninstall` deletes only when asked with a flag of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    IssuedSecret,
    ApiKey,
}

impl Request {
    pub fn flag(self) -> &'static str {
        match self {
            Request::IssuedSecret => "--delete-certificate-secret",
            Request::ApiKey => "--delete-apikey",
        }
    }

    /// Why it stays unless asked.
    pub fn kept_because(self) -> &'static str {
        match self {
            Request::IssuedSecret => "cert-manager issued it",
            Request::ApiKey => "other workloads may use the key",
        }
    }
}

/// One object the plugin writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owned {
    pub kind: &'static str,
    pub plural: &'static str,
    pub api: Api,
    pub home: Home,
    pub name: Name,
    pub removal: Removal,
}

pub const POLICY: Owned = Owned {
    kind: "IdentityMappingPolicy",
    plural: "identitymappingpolicies",
    api: Api::IdentityPolicy,
    home: Home::Istio,
    name: Name::Policy,
    removal: Removal::WhenOnlyThePluginOwnsIt,
};

pub const DESTINATION_RULE_OBJECT: Owned = Owned {
    kind: "DestinationRule",
    plural: "destinationrules",
    api: Api::IstioNetworking,
    home: Home::Kms,
    name: Name::Fixed(DESTINATION_RULE),
    removal: Removal::WhenOnlyThePluginOwnsIt,
};

pub const VIRTUAL_SERVICE_OBJECT: Owned = Owned {
    kind: "VirtualService",
    plural: "virtualservices",
    name: Name::Fixed(VIRTUAL_SERVICE),
    ..DESTINATION_RULE_OBJECT
};

pub const GATEWAY_OBJECT: Owned = Owned {
    kind: "Gateway",
    plural: "gateways",
    name: Name::Fixed(GATEWAY),
    ..DESTINATION_RULE_OBJECT
};

/// The Gateway API's objects, which `expose --api gateway-api` writes in
/// place of the Gateway, VirtualService, DestinationRule and CA Secret.
pub const KMS_GATEWAY_OBJECT: Owned = Owned {
    kind: "Gateway",
    plural: "gateways",
    api: Api::GatewayApi,
    home: Home::Istio,
    name: Name::Fixed(KMS_GATEWAY),
    removal: Removal::WhenOnlyThePluginOwnsIt,
};

pub const HTTP_ROUTE_OBJECT: Owned = Owned {
    kind: "HTTPRoute",
    plural: "httproutes",
    home: Home::Kms,
    name: Name::Fixed(KMS_ROUTE),
    ..KMS_GATEWAY_OBJECT
};

pub const BACKEND_TLS_POLICY_OBJECT: Owned = Owned {
    kind: "BackendTLSPolicy",
    plural: "backendtlspolicies",
    name: Name::Fixed(KMS_BACKEND_TLS),
    ..HTTP_ROUTE_OBJECT
};

pub const CA_CONFIG_MAP_OBJECT: Owned = Owned {
    kind: "ConfigMap",
    plural: "configmaps",
    api: Api::Core,
    name: Name::Fixed(CA_CONFIG_MAP),
    ..HTTP_ROUTE_OBJECT
};

pub const CERTIFICATE_OBJECT: Owned = Owned {
    kind: "Certificate",
    plural: "certificates",
    api: Api::CertManager,
    home: Home::Istio,
    name: Name::Fixed(CERTIFICATE),
    removal: Removal::WhenOnlyThePluginOwnsIt,
};

/// The TLS secret cert-manager issues for the Certificate.
pub const ISSUED_SECRET: Owned = Owned {
    kind: "Secret",
    plural: "secrets",
    api: Api::Core,
    home: Home::Istio,
    name: Name::IssuedBy,
    removal: Removal::OnRequest(Request::IssuedSecret),
};

pub const CA_SECRET_OBJECT: Owned = Owned {
    name: Name::Fixed(CA_SECRET),
    removal: Removal::WhenOnlyThePluginOwnsIt,
    ..ISSUED_SECRET
};

pub const API_KEY_SECRET: Owned = Owned {
    name: Name::ApiKeySecret,
    removal: Removal::OnRequest(Request::ApiKey),
    ..ISSUED_SECRET
};

/// Everything the plugin writes, in the order `uninstall` takes it out: the
/// reverse of the runbook's.
pub const ALL: [Owned; 12] = [
    POLICY,
    DESTINATION_RULE_OBJECT,
    VIRTUAL_SERVICE_OBJECT,
    GATEWAY_OBJECT,
    KMS_GATEWAY_OBJECT,
    HTTP_ROUTE_OBJECT,
    BACKEND_TLS_POLICY_OBJECT,
    CA_CONFIG_MAP_OBJECT,
    CERTIFICATE_OBJECT,
    ISSUED_SECRET,
    CA_SECRET_OBJECT,
    API_KEY_SECRET,
];

/// The run's namespaces and the names its flags choose (`None` where the
/// command takes no such flag).
#[derive(Debug, Clone, Copy)]
pub struct Where<'a> {
    pub kms_namespace: &'a str,
    pub istio_namespace: &'a str,
    pub policy: Option<&'a str>,
    pub apikey_secret: Option<&'a str>,
}

impl<'a> Where<'a> {
    /// The two namespaces alone.
    pub const fn namespaces(kms_namespace: &'a str, istio_namespace: &'a str) -> Where<'a> {
        Where {
            kms_namespace,
            istio_namespace,
            policy: None,
            apikey_secret: None,
        }
    }
}

impl Owned {
    /// The resource at the version `served` offers; `None` when the
    /// cluster does not serve the kind.
    pub fn resource(&self, served: &ServedApis) -> Option<ApiResource> {
        let (group, version) = match self.api {
            Api::Core => ("", "v1"),
            Api::CertManager => {
                let api = served.cert_manager()?;
                (api.group(), api.version())
            }
            Api::IstioNetworking => (ISTIO_NETWORKING, served.istio_networking()?),
            Api::GatewayApi if served.gateway_api() => (GATEWAY_API, GATEWAY_API_VERSION),
            Api::GatewayApi => return None,
            Api::IdentityPolicy if served.identity_policy() => {
                (IDENTITY_POLICY_GROUP, IDENTITY_POLICY_VERSION)
            }
            Api::IdentityPolicy => return None,
        };
        Some(apis::api_resource(group, version, self.kind, self.plural))
    }

    pub fn namespace<'a>(&self, at: &Where<'a>) -> &'a str {
        match self.home {
            Home::Kms => at.kms_namespace,
            Home::Istio => at.istio_namespace,
        }
    }

    /// The object's name in this run; `None` when it is read from another
    /// object (`Name::IssuedBy`) or the run names none.
    pub fn name(&self, at: &Where) -> Option<String> {
        match self.name {
            Name::Fixed(name) => Some(name.to_owned()),
            Name::Policy => at.policy.map(str::to_owned),
            Name::ApiKeySecret => at.apikey_secret.map(str::to_owned),
            Name::IssuedBy => None,
        }
    }

    /// Where the object is in this run, when the cluster serves its kind
    /// and its name is known without reading anything.
    pub fn place(&self, served: &ServedApis, at: &Where) -> Option<ObjectRef> {
        self.place_named(served, at, &self.name(at)?)
    }

    /// Where the object called `name` is in this run.
    pub fn place_named(&self, served: &ServedApis, at: &Where, name: &str) -> Option<ObjectRef> {
        Some(ObjectRef {
            resource: self.resource(served)?,
            namespace: Some(self.namespace(at).to_owned()),
            name: name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: Where = Where {
        kms_namespace: "kube-system",
        istio_namespace: "istio-system",
        policy: Some("stspolicy"),
        apikey_secret: Some("sts-apikey"),
    };

    #[test]
    fn each_object_is_found_at_the_served_version() {
        let served = ServedApis::preferred();
        let place = |owned: &Owned| owned.place(&served, &AT).map(|p| p.display_name());
        assert_eq!(
            place(&GATEWAY_OBJECT).as_deref(),
            Some("gateway.networking.istio.io/kmsgateway")
        );
        assert_eq!(
            place(&CERTIFICATE_OBJECT).as_deref(),
            Some("certificate.cert-manager.io/istio-ingressgateway-certs")
        );
        assert_eq!(
            place(&POLICY).as_deref(),
            Some("identitymappingpolicy.policy.ibm.com/stspolicy")
        );
        assert_eq!(place(&API_KEY_SECRET).as_deref(), Some("secret/sts-apikey"));
        assert_eq!(
            place(&KMS_GATEWAY_OBJECT).as_deref(),
            Some("gateway.gateway.networking.k8s.io/kms-gateway")
        );
        assert_eq!(
            place(&HTTP_ROUTE_OBJECT).as_deref(),
            Some("httproute.gateway.networking.k8s.io/kms-api")
        );
        assert_eq!(place(&ISSUED_SECRET), None);
        let namespaces = Where::namespaces("kube-system", "istio-system");
        assert!(POLICY.place(&served, &namespaces).is_none());
        assert_eq!(
            GATEWAY_OBJECT
                .place(&served, &AT)
                .unwrap()
                .namespace
                .as_deref(),
            Some("kube-system")
        );

        let legacy = ServedApis::from_triples([
            ("certmanager.k8s.io", "v1alpha1", "certificates"),
            ("networking.istio.io", "v1alpha3", "gateways"),
            ("networking.istio.io", "v1alpha3", "virtualservices"),
            ("networking.istio.io", "v1alpha3", "destinationrules"),
        ]);
        let resource = |owned: &Owned| owned.resource(&legacy).map(|r| r.api_version);
        assert_eq!(
            resource(&CERTIFICATE_OBJECT).as_deref(),
            Some("certmanager.k8s.io/v1alpha1")
        );
        assert_eq!(
            resource(&VIRTUAL_SERVICE_OBJECT).as_deref(),
            Some("networking.istio.io/v1alpha3")
        );
        assert_eq!(resource(&POLICY), None);
        assert_eq!(resource(&KMS_GATEWAY_OBJECT), None);
    }

    #[test]
    fn only_the_two_secrets_others_may_use_wait_for_a_flag() {
        let on_request: Vec<&str> = ALL
            .iter()
            .filter_map(|owned| match owned.removal {
                Removal::OnRequest(request) => Some(request.flag()),
                Removal::WhenOnlyThePluginOwnsIt => None,
            })
            .collect();
        assert_eq!(
            on_request,
            ["--delete-certificate-secret", "--delete-apikey"]
        );
    }
}
