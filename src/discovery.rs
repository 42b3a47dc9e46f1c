//! Which API versions the cluster serves, from one discovery request, and the
//! choices that follow: cert-manager's current API or its legacy one, and the
//! newest Istio networking version. The choices are pure functions of the
//! served group versions, so they are tested without a cluster.

use std::collections::BTreeSet;

use kube::core::{ApiResource, GroupVersionKind};

use crate::cluster::Cluster;
use crate::error::Result;

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
pub const IDENTITY_POLICY_GROUP: &str = "policy.ibm.com";
pub const IDENTITY_POLICY_VERSION: &str = "v1alpha1";
/// Newest first: the first one served is used.
const ISTIO_NETWORKING_VERSIONS: [&str; 3] = ["v1", "v1beta1", "v1alpha3"];

/// The resources a cluster serves, as (group, version, plural) triples.
/// Kinds are checked one by one because a group can serve a version for some
/// of its kinds only (Istio serves ProxyConfig at v1beta1 alone, for one).
#[derive(Debug, Clone, Default)]
pub struct ServedApis {
    resources: BTreeSet<(String, String, String)>,
}

impl ServedApis {
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

/// Reads the served resources: one aggregated-discovery request to `/apis`
/// (Kubernetes 1.26+); on older servers, the group list and then the
/// resource list of each group version of interest.
pub async fn discover(cluster: &Cluster) -> Result<ServedApis> {
    let client = cluster.client();
    let action = "discover the served APIs";
    let mut triples: Vec<(String, String, String)> = Vec::new();
    match cluster.bounded(client.list_api_groups_aggregated()).await? {
        Ok(list) if !list.items.is_empty() => {
            for group in &list.items {
                let name = group
                    .metadata
                    .as_ref()
                    .and_then(|m| m.name.clone())
                    .unwrap_or_default();
                for version in &group.versions {
                    let v = version.version.clone().unwrap_or_default();
                    for resource in &version.resources {
                        if let Some(plural) = &resource.resource {
                            triples.push((name.clone(), v.clone(), plural.clone()));
                        }
                    }
                }
            }
        }
        // Servers without aggregated discovery answer 404 or 406, or an empty list.
        Err(kube::Error::Api(status)) if ![406, 404].contains(&status.code) => {
            return Err(cluster.classify(action, kube::Error::Api(status)));
        }
        Err(err @ (kube::Error::HyperError(_) | kube::Error::Service(_))) => {
            return Err(cluster.classify(action, err));
        }
        _ => {
            let groups = cluster.call(action, client.list_api_groups()).await?;
            let wanted = [
                "cert-manager.io",
                "certmanager.k8s.io",
                ISTIO_NETWORKING,
                IDENTITY_POLICY_GROUP,
            ];
            for group in groups
                .groups
                .iter()
                .filter(|g| wanted.contains(&g.name.as_str()))
            {
                for version in &group.versions {
                    let list = cluster
                        .call(
                            action,
                            client.list_api_group_resources(&version.group_version),
                        )
                        .await?;
                    for resource in list.resources {
                        triples.push((group.name.clone(), version.version.clone(), resource.name));
                    }
                }
            }
        }
    }
    Ok(ServedApis::from_triples(
        triples
            .iter()
            .map(|(g, v, r)| (g.as_str(), v.as_str(), r.as_str())),
    ))
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
    fn nothing_served_is_none() {
        let apis = ServedApis::from_triples([("apps", "v1", "deployments")]);
        assert_eq!(apis.cert_manager(), None);
        assert_eq!(apis.istio_networking(), None);
        assert!(!apis.identity_policy());
    }
}
