//! The runbook's exposure through the Kubernetes Gateway API, which Istio
//! recommends for new installs: the same Certificate, then a Gateway of
//! class `istio` terminating TLS with its secret, an HTTPRoute sending
//! `/kms/api` to kms-api with the prefix rewritten, and a BackendTLSPolicy
//! telling the gateway how to verify kms-api (the CA in a ConfigMap, since
//! Istio reads CA references from ConfigMaps only; the SNI name, and the
//! same name as the subject alternative name to check, without which Istio
//! checks only the chain).
//!
//! Where the objects live keeps every reference inside its own namespace,
//! so no ReferenceGrant is needed: the Gateway beside the certificate's
//! Secret (and, when it attaches to an existing gateway Service, beside
//! that Service, as Istio requires), the route, the CA and the policy
//! beside kms-api. The Gateway lets routes attach from the KMS namespace
//! only.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use crate::manifests::exposure::{Issuance, KMS_SERVICE, UpstreamTrust, served_hosts};
use crate::objects::apis::{GATEWAY_API, ServedApis};
use crate::objects::gateway_api::{
    AllowedRoutes, ApiGatewaySpec, BackendTlsPolicySpec, BackendTlsValidation, GatewayAddress,
    HttpRouteSpec, LabelSelector, Listener, ListenerTls, ObjectReference, PathMatch, PathModifier,
    RouteFilter, RouteMatch, RouteNamespaces, RouteRule, SubjectAltName, UrlRewrite,
};
use crate::objects::owned::{self, Owned, Where};
use crate::objects::place::{Desired, ObjectRef};

/// The GatewayClass istiod serves.
pub const GATEWAY_CLASS: &str = "istio";
/// The label every namespace carries with its own name.
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Where the objects live; `None` when the cluster serves no cert-manager
/// or no Gateway API.
#[derive(Debug, Clone)]
pub struct ApiPlaces {
    pub certificate: ObjectRef,
    pub gateway: ObjectRef,
    pub route: ObjectRef,
    pub ca_config_map: ObjectRef,
    pub backend_tls: ObjectRef,
}

impl ApiPlaces {
    pub fn new(served: &ServedApis, at: &Where) -> Option<ApiPlaces> {
        let place = |owned: &Owned| owned.place(served, at);
        Some(ApiPlaces {
            certificate: place(&owned::CERTIFICATE_OBJECT)?,
            gateway: place(&owned::KMS_GATEWAY_OBJECT)?,
            route: place(&owned::HTTP_ROUTE_OBJECT)?,
            ca_config_map: place(&owned::CA_CONFIG_MAP_OBJECT)?,
            backend_tls: place(&owned::BACKEND_TLS_POLICY_OBJECT)?,
        })
    }

    /// All of them, in the order they are applied.
    pub fn all(&self) -> Vec<ObjectRef> {
        vec![
            self.certificate.clone(),
            self.ca_config_map.clone(),
            self.backend_tls.clone(),
            self.route.clone(),
            self.gateway.clone(),
        ]
    }
}

/// Which gateway serves the Gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayHome {
    /// istiod deploys one for this Gateway alone (`kms-gateway-istio`).
    Deployed,
    /// The existing gateway Service of this name, in the Istio namespace.
    Attached(String),
}

/// Everything the objects are made from.
#[derive(Debug, Clone)]
pub struct ApiExposure {
    pub places: ApiPlaces,
    pub issuance: Issuance,
    /// The Secret the Certificate fills and the Gateway serves.
    pub tls_secret: String,
    pub home: GatewayHome,
    pub upstream: UpstreamTrust,
    pub path_prefix: String,
    pub rewrite: String,
    pub port: i32,
    /// The name of kms-api's port `port`, which the policy targets; `None`
    /// when the port has no name (the policy then covers the Service).
    pub port_name: Option<String>,
}

impl ApiExposure {
    fn namespace(place: &ObjectRef) -> String {
        place.namespace.clone().unwrap_or_default()
    }

    pub fn certificate(&self) -> Desired {
        self.issuance
            .certificate(self.places.certificate.clone(), &self.tls_secret)
    }

    /// One HTTPS listener on 443 per host name (so the gateway tells KMS
    /// apart by SNI), or one for every name when a host is an IP address
    /// (a client connecting to an address sends no name).
    pub fn gateway(&self) -> Desired {
        let kms_namespace = Self::namespace(&self.places.route);
        let listener = |name: String, hostname: Option<String>| Listener {
            name,
            hostname,
            port: 443,
            protocol: "HTTPS".into(),
            tls: Some(ListenerTls {
                mode: Some("Terminate".into()),
                certificate_refs: vec![ObjectReference {
                    group: Some(String::new()),
                    kind: Some("Secret".into()),
                    name: self.tls_secret.clone(),
                    ..ObjectReference::default()
                }],
                ..ListenerTls::default()
            }),
            allowed_routes: Some(AllowedRoutes {
                namespaces: Some(RouteNamespaces {
                    from: Some("Selector".into()),
                    selector: Some(LabelSelector {
                        match_labels: BTreeMap::from([(
                            NAMESPACE_NAME_LABEL.to_owned(),
                            kms_namespace.clone(),
                        )]),
                    }),
                }),
            }),
            ..Listener::default()
        };
        let hosts = served_hosts(&self.issuance.hosts);
        let listeners = if hosts == ["*"] {
            vec![listener("https".into(), None)]
        } else {
            hosts
                .iter()
                .enumerate()
                .map(|(i, host)| listener(format!("https-{}", i + 1), Some(host.clone())))
                .collect()
        };
        let addresses = match &self.home {
            GatewayHome::Deployed => Vec::new(),
            GatewayHome::Attached(service) => vec![GatewayAddress::of_service(
                service,
                &Self::namespace(&self.places.gateway),
            )],
        };
        let spec = ApiGatewaySpec {
            gateway_class_name: GATEWAY_CLASS.into(),
            addresses,
            listeners,
            ..ApiGatewaySpec::default()
        };
        Desired::with_spec(self.places.gateway.clone(), &spec)
    }

    pub fn route(&self) -> Desired {
        let hosts = served_hosts(&self.issuance.hosts);
        let spec = HttpRouteSpec {
            parent_refs: vec![ObjectReference {
                group: Some(GATEWAY_API.into()),
                kind: Some("Gateway".into()),
                name: self.places.gateway.name.clone(),
                namespace: Some(Self::namespace(&self.places.gateway)),
                ..ObjectReference::default()
            }],
            hostnames: if hosts == ["*"] { Vec::new() } else { hosts },
            rules: vec![RouteRule {
                matches: vec![RouteMatch {
                    path: Some(PathMatch {
                        type_: "PathPrefix".into(),
                        value: self.path_prefix.clone(),
                    }),
                    ..RouteMatch::default()
                }],
                filters: vec![RouteFilter {
                    type_: "URLRewrite".into(),
                    url_rewrite: Some(UrlRewrite {
                        path: Some(PathModifier {
                            type_: "ReplacePrefixMatch".into(),
                            replace_prefix_match: Some(self.rewrite.clone()),
                        }),
                    }),
                    ..RouteFilter::default()
                }],
                backend_refs: vec![ObjectReference {
                    name: KMS_SERVICE.into(),
                    port: Some(self.port),
                    ..ObjectReference::default()
                }],
                ..RouteRule::default()
            }],
            ..HttpRouteSpec::default()
        };
        Desired::with_spec(self.places.route.clone(), &spec)
    }

    /// The CA that signed kms-api's certificate, under the key Istio reads.
    pub fn ca_config_map(&self) -> Desired {
        let config_map = ConfigMap {
            data: Some(BTreeMap::from([(
                "ca.crt".to_owned(),
                self.upstream.ca_pem.clone(),
            )])),
            ..ConfigMap::default()
        };
        Desired::with_fields(self.places.ca_config_map.clone(), &config_map)
    }

    pub fn backend_tls(&self) -> Desired {
        let name = &self.upstream.name;
        let spec = BackendTlsPolicySpec {
            target_refs: vec![ObjectReference {
                group: Some(String::new()),
                kind: Some("Service".into()),
                name: KMS_SERVICE.into(),
                section_name: self.port_name.clone(),
                ..ObjectReference::default()
            }],
            validation: BackendTlsValidation {
                ca_certificate_refs: vec![ObjectReference {
                    group: Some(String::new()),
                    kind: Some("ConfigMap".into()),
                    name: self.places.ca_config_map.name.clone(),
                    ..ObjectReference::default()
                }],
                hostname: name.clone(),
                subject_alt_names: vec![SubjectAltName {
                    type_: "Hostname".into(),
                    hostname: Some(name.clone()),
                }],
                ..BackendTlsValidation::default()
            },
            ..BackendTlsPolicySpec::default()
        };
        Desired::with_spec(self.places.backend_tls.clone(), &spec)
    }

    /// All of them, in the order they are applied: the Gateway last, so
    /// that what it serves (its certificate, the route, the policy and its
    /// CA) is in place when istiod first programs it; a route whose
    /// Gateway is not there yet just waits for it.
    pub fn objects(&self) -> Vec<Desired> {
        vec![
            self.certificate(),
            self.ca_config_map(),
            self.backend_tls(),
            self.route(),
            self.gateway(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::host::parse_host;
    use serde_json::json;

    const AT: Where = Where::namespaces("kms", "istio");

    fn exposure(hosts: &[&str], home: GatewayHome) -> ApiExposure {
        ApiExposure {
            places: ApiPlaces::new(&ServedApis::preferred(), &AT).unwrap(),
            issuance: Issuance {
                issuer: "icp-ca-issuer".into(),
                issuer_kind: "ClusterIssuer".into(),
                common_name: "istio-service".into(),
                hosts: hosts.iter().map(|h| parse_host(h).unwrap()).collect(),
            },
            tls_secret: "istio-ingressgateway-certs".into(),
            home,
            upstream: UpstreamTrust {
                ca_pem: "-----BEGIN CERTIFICATE-----\n".into(),
                name: "kms-api.kms.svc.cluster.local".into(),
            },
            path_prefix: "/kms/api".into(),
            rewrite: "/api".into(),
            port: 28674,
            port_name: Some("https".into()),
        }
    }

    #[test]
    fn a_listener_per_name_and_routes_from_the_kms_namespace_only() {
        let gateway = exposure(
            &["kms.example.com", "kms.example.org"],
            GatewayHome::Deployed,
        )
        .gateway()
        .object;
        assert_eq!(gateway["apiVersion"], "gateway.networking.k8s.io/v1");
        assert_eq!(gateway["metadata"]["namespace"], "istio");
        assert_eq!(gateway["spec"]["gatewayClassName"], "istio");
        assert!(gateway["spec"].get("addresses").is_none());
        let listeners = gateway["spec"]["listeners"].as_array().unwrap();
        assert_eq!(listeners.len(), 2);
        assert_eq!(listeners[1]["name"], "https-2");
        assert_eq!(listeners[1]["hostname"], "kms.example.org");
        assert_eq!(listeners[0]["port"], 443);
        assert_eq!(
            listeners[0]["tls"],
            json!({"mode": "Terminate", "certificateRefs": [
                {"group": "", "kind": "Secret", "name": "istio-ingressgateway-certs"}]})
        );
        assert_eq!(
            listeners[0]["allowedRoutes"],
            json!({"namespaces": {"from": "Selector",
                "selector": {"matchLabels": {"kubernetes.io/metadata.name": "kms"}}}})
        );
    }

    #[test]
    fn an_address_gets_one_listener_for_every_name() {
        let e = exposure(
            &["9.42.136.50", "kms.example.com"],
            GatewayHome::Attached("istio-ingressgateway".into()),
        );
        let gateway = e.gateway().object;
        let listeners = gateway["spec"]["listeners"].as_array().unwrap();
        assert_eq!(listeners.len(), 1);
        assert!(listeners[0].get("hostname").is_none());
        assert_eq!(
            gateway["spec"]["addresses"],
            json!([{"type": "Hostname",
                    "value": "istio-ingressgateway.istio.svc.cluster.local"}])
        );
        assert!(e.route().object["spec"].get("hostnames").is_none());
    }

    #[test]
    fn the_route_rewrites_the_prefix_to_kms_api() {
        let route = exposure(&["kms.example.com"], GatewayHome::Deployed)
            .route()
            .object;
        assert_eq!(route["metadata"]["namespace"], "kms");
        assert_eq!(
            route["spec"],
            json!({
                "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                "name": "kms-gateway", "namespace": "istio"}],
                "hostnames": ["kms.example.com"],
                "rules": [{
                    "matches": [{"path": {"type": "PathPrefix", "value": "/kms/api"}}],
                    "filters": [{"type": "URLRewrite", "urlRewrite": {"path":
                        {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/api"}}}],
                    "backendRefs": [{"name": "kms-api", "port": 28674}],
                }],
            })
        );
    }

    #[test]
    fn the_policy_checks_the_name_against_the_ca_in_a_config_map() {
        let e = exposure(&["kms.example.com"], GatewayHome::Deployed);
        let policy = e.backend_tls().object;
        assert_eq!(
            policy["spec"],
            json!({
                "targetRefs": [{"group": "", "kind": "Service", "name": "kms-api",
                                "sectionName": "https"}],
                "validation": {
                    "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "kms-api-ca"}],
                    "hostname": "kms-api.kms.svc.cluster.local",
                    "subjectAltNames": [{"type": "Hostname",
                                         "hostname": "kms-api.kms.svc.cluster.local"}],
                },
            })
        );
        let ca = e.ca_config_map().object;
        assert_eq!(ca["apiVersion"], "v1");
        assert_eq!(ca["metadata"]["namespace"], "kms");
        assert_eq!(ca["data"]["ca.crt"], "-----BEGIN CERTIFICATE-----\n");
        let kinds: Vec<_> = e
            .objects()
            .iter()
            .map(|d| d.object["kind"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            kinds,
            [
                "Certificate",
                "ConfigMap",
                "BackendTLSPolicy",
                "HTTPRoute",
                "Gateway"
            ]
        );
    }
}
