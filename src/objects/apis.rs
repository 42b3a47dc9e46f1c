//! Which API versions of the custom objects a cluster serves, and the
//! choices that follow: cert-manager's current API or its legacy one, the
//! newest Istio networking version that serves all three kinds `expose`
//! writes, whether the Gateway API (the three kinds `expose --api
//! gateway-api` writes, at v1) and the identity policy are served. Pure functions of the
//! served resources (which `cluster::discovery` reads), tested without a
//! cluster; the set is saved in `status` snapshots.

use std::collections::BTreeSet;

use kube::core::{ApiResource, GroupVersionKind};

/// The cert-manager API a cluster serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertManagerApi {
    /// `cert-manager.io/v1`
    Current,
    /// `certmanager.k8s.io/v1alpha1`, from cert-manager before 0.11
    Legacy,
}

impl CertManagerApi {
    pub fn group(self) -> &'static str {
        match self {
            CertManagerApi::Current => "cert-manager.io",
            CertManagerApi::Legacy => "certmanager.k8s.io",
        }
    }

    pub fn version(self) -> &'static str {
        match self {
            CertManagerApi::Current => "v1",
            CertManagerApi::Legacy => "v1alpha1",
        }
    }
}

pub const ISTIO_NETWORKING: &str = "networking.istio.io";
pub const GATEWAY_API: &str = "gateway.networking.k8s.io";
pub const GATEWAY_API_VERSION: &str = "v1";
/// The Gateway API kinds `expose` writes: `BackendTLSPolicy` is served at
/// v1 from Gateway API 1.4 (Istio 1.28) on, which Istio's own translation
/// of it needs.
const GATEWAY_API_KINDS: [&str; 3] = ["gateways", "httproutes", "backendtlspolicies"];
pub const IDENTITY_POLICY_GROUP: &str = "policy.ibm.com";
pub const IDENTITY_POLICY_VERSION: &str = "v1alpha1";
/// Newest first: the first one served is used.
const ISTIO_NETWORKING_VERSIONS: [&str; 3] = ["v1", "v1beta1", "v1alpha3"];

/// The resources a cluster serves, as (group, version, plural) triples.
/// Kinds are checked one by one because a group can serve a version for some
/// of its kinds only (Istio serves ProxyConfig at v1beta1 alone, for one).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ServedApis {
    resources: BTreeSet<(String, String, String)>,
}

impl ServedApis {
    /// No custom API at all.
    pub const NONE: ServedApis = ServedApis {
        resources: BTreeSet::new(),
    };

    pub fn from_triples<'a>(
        triples: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
    ) -> ServedApis {
        ServedApis {
            resources: triples
                .into_iter()
                .map(|(g, v, r)| (g.to_owned(), v.to_owned(), r.to_owned()))
                .collect(),
        }
    }

    /// What current clusters serve: cert-manager's current API, Istio's
    /// newest networking version, the Gateway API and the identity policy.
    pub fn preferred() -> ServedApis {
        let mut triples = vec![(
            IDENTITY_POLICY_GROUP,
            IDENTITY_POLICY_VERSION,
            "identitymappingpolicies",
        )];
        for plural in ["certificates", "issuers", "clusterissuers"] {
            triples.push(("cert-manager.io", "v1", plural));
        }
        for plural in ["gateways", "virtualservices", "destinationrules"] {
            triples.push((ISTIO_NETWORKING, ISTIO_NETWORKING_VERSIONS[0], plural));
        }
        for plural in GATEWAY_API_KINDS {
            triples.push((GATEWAY_API, GATEWAY_API_VERSION, plural));
        }
        ServedApis::from_triples(triples)
    }

    /// The choices the plugin makes from what is served: two sets that agree
    /// here lead to the same requests.
    pub fn choices(&self) -> (Option<CertManagerApi>, Option<&'static str>, bool, bool) {
        (
            self.cert_manager(),
            self.istio_networking(),
            self.gateway_api(),
            self.identity_policy(),
        )
    }

    pub fn serves(&self, group: &str, version: &str, plural: &str) -> bool {
        self.resources
            .contains(&(group.to_owned(), version.to_owned(), plural.to_owned()))
    }

    pub fn cert_manager(&self) -> Option<CertManagerApi> {
        [CertManagerApi::Current, CertManagerApi::Legacy]
            .into_iter()
            .find(|api| self.serves(api.group(), api.version(), "certificates"))
    }

    /// The newest version serving all three kinds `expose` writes.
    pub fn istio_networking(&self) -> Option<&'static str> {
        ISTIO_NETWORKING_VERSIONS.into_iter().find(|version| {
            ["gateways", "virtualservices", "destinationrules"]
                .iter()
                .all(|plural| self.serves(ISTIO_NETWORKING, version, plural))
        })
    }

    /// Whether the Gateway API kinds `expose` writes are served at v1.
    pub fn gateway_api(&self) -> bool {
        GATEWAY_API_KINDS
            .iter()
            .all(|plural| self.serves(GATEWAY_API, GATEWAY_API_VERSION, plural))
    }

    pub fn identity_policy(&self) -> bool {
        self.serves(
            IDENTITY_POLICY_GROUP,
            IDENTITY_POLICY_VERSION,
            "identitymappingpolicies",
        )
    }
}

/// The resource `group/version` `kind`, called `plural` in URLs.
pub fn api_resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefers_current_cert_manager_and_newest_istio() {
        let mut triples = vec![
            ("cert-manager.io", "v1", "certificates"),
            ("certmanager.k8s.io", "v1alpha1", "certificates"),
        ];
        for version in ["v1alpha3", "v1beta1", "v1"] {
            for plural in ["gateways", "virtualservices", "destinationrules"] {
                triples.push(("networking.istio.io", version, plural));
            }
        }
        let apis = ServedApis::from_triples(triples);
        assert_eq!(apis.cert_manager(), Some(CertManagerApi::Current));
        assert_eq!(apis.istio_networking(), Some("v1"));
    }

    #[test]
    fn falls_back_to_legacy_apis() {
        let apis = ServedApis::from_triples([
            ("certmanager.k8s.io", "v1alpha1", "certificates"),
            ("networking.istio.io", "v1alpha3", "gateways"),
            ("networking.istio.io", "v1alpha3", "virtualservices"),
            ("networking.istio.io", "v1alpha3", "destinationrules"),
            // A version that serves another kind only does not count.
            ("networking.istio.io", "v1beta1", "proxyconfigs"),
        ]);
        assert_eq!(apis.cert_manager(), Some(CertManagerApi::Legacy));
        assert_eq!(apis.istio_networking(), Some("v1alpha3"));
    }

    #[test]
    fn the_preferred_apis_are_the_newest_of_each_choice() {
        let preferred = ServedApis::preferred();
        assert_eq!(preferred.cert_manager(), Some(CertManagerApi::Current));
        assert_eq!(preferred.istio_networking(), Some("v1"));
        assert!(preferred.identity_policy());
        assert!(preferred.gateway_api());
        // An older Gateway API without BackendTLSPolicy at v1 does not count.
        let older = ServedApis::from_triples([
            (GATEWAY_API, "v1", "gateways"),
            (GATEWAY_API, "v1", "httproutes"),
            (GATEWAY_API, "v1alpha3", "backendtlspolicies"),
        ]);
        assert!(!older.gateway_api());
        let legacy = ServedApis::from_triples([("certmanager.k8s.io", "v1alpha1", "certificates")]);
        assert_ne!(legacy.choices(), preferred.choices());
    }

    #[test]
    fn nothing_served_is_none() {
        let apis = ServedApis::from_triples([("apps", "v1", "deployments")]);
        assert_eq!(apis.cert_manager(), None);
        assert_eq!(apis.istio_networking(), None);
        assert!(!apis.gateway_api());
        assert!(!apis.identity_policy());
    }
}
