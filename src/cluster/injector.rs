//! The Istio control plane as injection sees it: the revisions installed in
//! the Istio namespace (each a pair of ConfigMaps, `istio-sidecar-injector`
//! and `istio` for the control plane installed without a revision,
//! `istio-sidecar-injector-REV` and `istio-REV` for revision REV), which of
//! them the `default` tag points to, and the one to inject with or compare a
//! sidecar against. Read in one list of the namespace's ConfigMaps (beside
//! an optional read of the tag's webhook configuration), so `inject` and
//! `status` spend no extra round trip on it. `status` lists only their
//! names and versions: when the two ConfigMaps KMS was injected from still
//! carry the versions `inject` recorded, their data is what it was, and only
//! otherwise are they read. An injector shaped by Istio 1.0 (no `values`)
//! can be compared with but not injected with.

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::ListParams;

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::istioctl::InjectorConfig;
use crate::values::proxy;
use crate::values::revision::{ChosenBy, DEFAULT_REVISION};

/// What a revision would inject now, as `status` compares a sidecar with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectsNow {
    pub revision: String,
    /// `InjectorConfig::fingerprint` of its configuration.
    pub fingerprint: String,
    /// The proxy image it names; `None` when its configuration does not say.
    pub proxy_image: Option<String>,
}

/// A revision's injector configuration by the Istio release that shaped it.
enum Shaped {
    /// Istio 1.1 and later: templates with `values` beside them.
    Current(InjectorConfig),
    /// Istio 1.0: one template with the values written in (`values` empty).
    Istio10(InjectorConfig),
}

/// The name of `revision`'s copy of `configmap`: suffixed with the
/// revision, except for the control plane installed without one.
fn configmap_of(configmap: &str, revision: &str) -> String {
    if revision == DEFAULT_REVISION {
        configmap.to_owned()
    } else {
        format!("{configmap}-{revision}")
    }
}

const INJECTOR_CONFIGMAP: &str = "istio-sidecar-injector";
const MESH_CONFIGMAP: &str = "istio";
/// The webhook configuration `istioctl tag set default` writes; its label
/// `istio.io/rev` names the revision the tag points to.
pub const DEFAULT_TAG_WEBHOOK: &str = "istio-revision-tag-default";
const REVISION_LABEL: &str = "istio.io/rev";

/// What the Istio namespace holds of the control planes.
#[derive(Debug, Clone, Default)]
pub struct ControlPlanes {
    namespace: String,
    /// The resourceVersion of every ConfigMap in the namespace, by name.
    versions: BTreeMap<String, String>,
    /// The data of the ConfigMaps read whole, by name: every one after
    /// `read`, one revision's after `read_inputs`.
    configmaps: BTreeMap<String, BTreeMap<String, String>>,
    /// The revision the `default` tag points to; `None` without the tag or
    /// the right to read it.
    default_tag: Option<String>,
}

/// Reads the control planes of `namespace`, every ConfigMap whole. Reading
/// the default tag is cluster-wide and optional: a user who may not is
/// served by the fallbacks of `choose`.
pub async fn read(cluster: &Cluster, namespace: &str) -> Result<ControlPlanes> {
    let configmaps: Api<ConfigMap> = Api::namespaced(cluster.client(), namespace);
    let action = format!("list configmaps in {namespace}");
    let every = ListParams::default();
    let (listed, default_tag) = tokio::join!(
        cluster.call(&action, configmaps.list(&every)),
        default_tag(cluster),
    );
    let mut planes = ControlPlanes {
        namespace: namespace.to_owned(),
        default_tag: default_tag?,
        ..ControlPlanes::default()
    };
    for configmap in listed?.items {
        planes.add(configmap);
    }
    Ok(planes)
}

/// `read` without the ConfigMaps' data: their names and versions alone.
/// `read_inputs` reads a revision's data when it is needed.
pub async fn read_index(cluster: &Cluster, namespace: &str) -> Result<ControlPlanes> {
    let configmaps: Api<ConfigMap> = Api::namespaced(cluster.client(), namespace);
    let action = format!("list configmaps in {namespace}");
    let every = ListParams::default();
    let (listed, default_tag) = tokio::join!(
        cluster.call(&action, configmaps.list_metadata(&every)),
        default_tag(cluster),
    );
    let versions = listed?
        .items
        .into_iter()
        .filter_map(|meta| Some((meta.metadata.name?, meta.metadata.resource_version?)))
        .collect();
    Ok(ControlPlanes {
        namespace: namespace.to_owned(),
        versions,
        configmaps: BTreeMap::new(),
        default_tag: default_tag?,
    })
}

/// The revision the `default` tag points to; `None` without the tag or the
/// right to read it.
async fn default_tag(cluster: &Cluster) -> Result<Option<String>> {
    let webhooks: Api<MutatingWebhookConfiguration> = Api::all(cluster.client());
    let action = format!("read mutatingwebhookconfiguration {DEFAULT_TAG_WEBHOOK}");
    match cluster
        .call(&action, webhooks.get_opt(DEFAULT_TAG_WEBHOOK))
        .await
    {
        Ok(webhook) => Ok(webhook.and_then(|w| w.metadata.labels?.remove(REVISION_LABEL))),
        Err(Error::Forbidden { .. }) => Ok(None),
        Err(other) => Err(other),
    }
}

impl ControlPlanes {
    /// The control planes `configmaps` (name, data) and `default_tag`
    /// describe, each ConfigMap at version 1.
    #[cfg(test)]
    pub fn of(configmaps: &[(&str, &[(&str, &str)])], default_tag: Option<&str>) -> ControlPlanes {
        ControlPlanes {
            namespace: "istio-system".into(),
            versions: configmaps
                .iter()
                .map(|(name, _)| ((*name).to_owned(), "1".to_owned()))
                .collect(),
            configmaps: configmaps
                .iter()
                .map(|(name, data)| {
                    let data = data
                        .iter()
                        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()));
                    ((*name).to_owned(), data.collect())
                })
                .collect(),
            default_tag: default_tag.map(str::to_owned),
        }
    }

    /// Keeps `configmap`'s version and data.
    fn add(&mut self, configmap: ConfigMap) {
        let Some(name) = configmap.metadata.name else {
            return;
        };
        if let Some(version) = configmap.metadata.resource_version {
            self.versions.insert(name.clone(), version);
        }
        self.configmaps
            .insert(name, configmap.data.unwrap_or_default());
    }

    /// Reads the data of `revision`'s two ConfigMaps, at once; one that is
    /// missing stays missing, for `injects_now` to say so.
    pub async fn read_inputs(&mut self, cluster: &Cluster, revision: &str) -> Result<()> {
        let configmaps: Api<ConfigMap> = Api::namespaced(cluster.client(), &self.namespace);
        let namespace = &self.namespace;
        // Listed by name rather than read: `list` is the permission the
        // index needs already.
        let one = async |configmap: &str| {
            let name = configmap_of(configmap, revision);
            let by_name = ListParams::default().fields(&format!("metadata.name={name}"));
            cluster
                .call(
                    &format!("list configmap {namespace}/{name}"),
                    configmaps.list(&by_name),
                )
                .await
        };
        let (injector, mesh) = tokio::try_join!(one(INJECTOR_CONFIGMAP), one(MESH_CONFIGMAP))?;
        for configmap in injector.items.into_iter().chain(mesh.items) {
            self.add(configmap);
        }
        Ok(())
    }

    /// `InjectorConfig::inputs` of `revision` as the ConfigMaps are now;
    /// `None` unless both are there.
    pub fn inputs(&self, revision: &str) -> Option<String> {
        let version = |configmap: &str| {
            let name = configmap_of(configmap, revision);
            let version = self.versions.get(&name)?;
            Some(format!("{name}@{version}"))
        };
        Some(format!(
            "{},{}",
            version(INJECTOR_CONFIGMAP)?,
            version(MESH_CONFIGMAP)?
        ))
    }

    /// The revisions installed, `default` for the one without a revision.
    pub fn revisions(&self) -> Vec<String> {
        self.versions
            .keys()
            .filter_map(|name| {
                let rest = name.strip_prefix(INJECTOR_CONFIGMAP)?;
                if rest.is_empty() {
                    Some(DEFAULT_REVISION.to_owned())
                } else {
                    rest.strip_prefix('-').map(str::to_owned)
                }
            })
            .collect()
    }

    /// The revision to use: `explicit` (`--revision`); else `injected`,
    /// the one the Deployment was injected with, while it is installed;
    /// else the one the default tag points to; else the only one installed;
    /// else the one installed without a revision. Several revisions, none
    /// of them the default, is refused with their names.
    pub fn choose(
        &self,
        explicit: Option<&str>,
        injected: Option<&str>,
    ) -> Result<(String, ChosenBy)> {
        if let Some(revision) = explicit {
            return Ok((revision.to_owned(), ChosenBy::Flag));
        }
        let installed = self.revisions();
        let is_installed = |revision: &&str| installed.iter().any(|r| r == revision);
        if let Some(revision) = injected.filter(is_installed) {
            return Ok((revision.to_owned(), ChosenBy::Injected));
        }
        if let Some(revision) = self.default_tag.as_deref().filter(is_installed) {
            return Ok((revision.to_owned(), ChosenBy::DefaultTag));
        }
        match installed.as_slice() {
            [] => Err(self.missing(DEFAULT_REVISION, INJECTOR_CONFIGMAP, "config")),
            [only] => Ok((only.clone(), ChosenBy::OnlyInstalled)),
            _ if is_installed(&DEFAULT_REVISION) => {
                Ok((DEFAULT_REVISION.to_owned(), ChosenBy::NonRevisioned))
            }
            _ => Err(Error::AmbiguousRevision {
                namespace: self.namespace.clone(),
                revisions: installed,
            }),
        }
    }

    /// The injector configuration of `revision` that `inject` renders, or
    /// the ConfigMap (and key) that is missing for it; an Istio 1.0
    /// injector is refused, its template being one the istioctl of later
    /// releases cannot render.
    pub fn config(&self, revision: &str) -> Result<InjectorConfig> {
        match self.shaped(revision)? {
            Shaped::Current(config) => Ok(config),
            Shaped::Istio10(_) => Err(Error::Istio10Injector {
                namespace: self.namespace.clone(),
                name: configmap_of(INJECTOR_CONFIGMAP, revision),
            }),
        }
    }

    /// What `revision` would inject now, for comparing a sidecar with: the
    /// fingerprint of its configuration and the proxy image it names, read
    /// from an Istio 1.0 injector's template too.
    pub fn injects_now(&self, revision: &str) -> Result<InjectsNow> {
        let (config, proxy_image) = match self.shaped(revision)? {
            Shaped::Current(config) => {
                let image = proxy::injected_image(&config.values);
                (config, image)
            }
            Shaped::Istio10(config) => {
                let image = proxy::istio_1_0_image(&config.template);
                (config, image)
            }
        };
        Ok(InjectsNow {
            fingerprint: config.fingerprint(),
            proxy_image,
            revision: config.revision,
        })
    }

    fn shaped(&self, revision: &str) -> Result<Shaped> {
        let value = |configmap: &str, key: &str| {
            let name = configmap_of(configmap, revision);
            self.configmaps
                .get(&name)
                .and_then(|data| data.get(key))
                .cloned()
                .ok_or_else(|| self.missing(revision, &name, key))
        };
        let template = value(INJECTOR_CONFIGMAP, "config")?;
        let values = value(INJECTOR_CONFIGMAP, "values");
        let mesh = value(MESH_CONFIGMAP, "mesh")?;
        // Before Istio 1.1 the chart rendered its values into the one
        // template and left injection-time expressions in `[[ ]]`.
        let istio_1_0 = values.is_err() && template.contains("[[");
        let config = |values| InjectorConfig {
            revision: revision.to_owned(),
            template,
            values,
            mesh,
            inputs: self.inputs(revision).unwrap_or_default(),
        };
        match values {
            Ok(values) => Ok(Shaped::Current(config(values))),
            Err(_) if istio_1_0 => Ok(Shaped::Istio10(config(String::new()))),
            Err(missing) => Err(missing),
        }
    }

    fn missing(&self, revision: &str, name: &str, key: &str) -> Error {
        let namespace = &self.namespace;
        let listing = format!(
            "`kubectl get configmaps -n {namespace} -l {REVISION_LABEL}` lists the revisions there"
        );
        let hint = if revision == DEFAULT_REVISION {
            format!(
                "Istio's injector configuration is missing: is Istio installed in \
                 --istio-namespace? A revisioned control plane is named with --revision REV; \
                 {listing}"
            )
        } else {
            format!(
                "the control plane of revision {revision} is not installed in \
                 --istio-namespace; {listing}"
            )
        };
        Error::Missing {
            kind: "ConfigMap",
            namespace: namespace.clone(),
            name: format!("{name} (key {key})"),
            hint,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ExitStatus;

    const INJECTOR: &[(&str, &str)] = &[("config", "template"), ("values", "{}")];
    const MESH: &[(&str, &str)] = &[("mesh", "{}")];

    fn chosen(planes: &ControlPlanes, explicit: Option<&str>, injected: Option<&str>) -> String {
        let (revision, _) = planes.choose(explicit, injected).unwrap();
        revision
    }

    #[test]
    fn the_revision_comes_from_the_flag_the_deployment_the_tag_or_the_only_one() {
        let planes = ControlPlanes::of(
            &[
                ("istio-sidecar-injector-1-30", INJECTOR),
                ("istio-1-30", MESH),
                ("istio-sidecar-injector-canary", INJECTOR),
                ("istio-canary", MESH),
                ("kube-root-ca.crt", &[]),
            ],
            Some("canary"),
        );
        assert_eq!(planes.revisions(), ["1-30", "canary"]);
        assert_eq!(chosen(&planes, Some("other"), Some("1-30")), "other");
        assert_eq!(chosen(&planes, None, Some("1-30")), "1-30");
        assert_eq!(
            planes.choose(None, Some("gone")).unwrap(),
            ("canary".into(), ChosenBy::DefaultTag)
        );
        let only = ControlPlanes::of(&[("istio-sidecar-injector-canary", INJECTOR)], None);
        assert_eq!(
            only.choose(None, None).unwrap(),
            ("canary".into(), ChosenBy::OnlyInstalled)
        );
        let beside = ControlPlanes::of(
            &[
                ("istio-sidecar-injector", INJECTOR),
                ("istio-sidecar-injector-canary", INJECTOR),
            ],
            None,
        );
        assert_eq!(
            beside.choose(None, None).unwrap(),
            (DEFAULT_REVISION.into(), ChosenBy::NonRevisioned)
        );
    }

    #[test]
    fn several_revisions_without_a_default_or_none_at_all_are_refused() {
        let several = ControlPlanes::of(
            &[
                ("istio-sidecar-injector-a", INJECTOR),
                ("istio-sidecar-injector-b", INJECTOR),
            ],
            Some("gone"),
        );
        let err = several.choose(None, None).unwrap_err();
        assert!(
            matches!(&err, Error::AmbiguousRevision { revisions, .. } if revisions == &["a", "b"])
        );
        assert!(err.hint().unwrap().contains("--revision a"));
        let none = ControlPlanes::of(&[("kube-root-ca.crt", &[])], None);
        assert!(matches!(
            none.choose(None, None).unwrap_err(),
            Error::Missing { .. }
        ));
    }

    #[test]
    fn a_configuration_needs_both_configmaps_of_its_revision() {
        let planes = ControlPlanes::of(
            &[
                ("istio-sidecar-injector", INJECTOR),
                ("istio", MESH),
                ("istio-sidecar-injector-canary", INJECTOR),
            ],
            None,
        );
        let config = planes.config(DEFAULT_REVISION).unwrap();
        assert_eq!(
            (config.template.as_str(), config.mesh.as_str()),
            ("template", "{}")
        );
        let err = planes.config("canary").unwrap_err();
        assert!(err.to_string().contains("istio-canary (key mesh)"), "{err}");
        assert!(err.hint().unwrap().contains("revision canary"));
    }

    #[test]
    fn an_istio_1_0_injector_is_compared_with_but_not_rendered() {
        let template = "policy: disabled\ntemplate: |-\n  containers:\n  - name: istio-proxy\n    \
                        image: [[ annotation .ObjectMeta `sidecar.istio.io/proxyImage` \
                        \"docker.io/istio/proxyv2:1.0.2\" ]]\n";
        let planes = ControlPlanes::of(
            &[
                (INJECTOR_CONFIGMAP, &[("config", template)]),
                (MESH_CONFIGMAP, MESH),
            ],
            None,
        );
        let err = planes.config(DEFAULT_REVISION).unwrap_err();
        assert_eq!(err.exit_status(), ExitStatus::MissingPrerequisite);
        assert!(
            err.to_string()
                .contains("istio-system/istio-sidecar-injector holds Istio 1.0's"),
            "{err}"
        );
        assert!(err.hint().unwrap().contains("upgrade Istio first"));
        let now = planes.injects_now(DEFAULT_REVISION).unwrap();
        assert_eq!(
            now.proxy_image.as_deref(),
            Some("docker.io/istio/proxyv2:1.0.2")
        );
        // Without `values` and without a 1.0 template, the key is missing.
        let planes = ControlPlanes::of(
            &[
                (INJECTOR_CONFIGMAP, &[("config", "templates: {}")]),
                (MESH_CONFIGMAP, MESH),
            ],
            None,
        );
        let err = planes.injects_now(DEFAULT_REVISION).unwrap_err();
        assert!(err.to_string().contains("(key values)"), "{err}");
    }
}
