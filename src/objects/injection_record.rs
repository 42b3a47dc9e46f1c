//! What `inject` records on the Deployment it injects, in annotations of the
//! plugin's own: the Istio revision whose injector it used, a fingerprint of
//! that injector's inputs (its ConfigMaps' data), and the pod template as it
//! was before injection, exactly. Injection rewrites more than it adds (the
//! application's HTTP probes move behind the proxy, annotations appear), so
//! taking it back out by the list in `sidecar.istio.io/status` would not
//! give the original back; the recorded template does, months later and on
//! any machine. `inject --undo` and `uninstall` read it back, checked
//! against the backup file where one exists and against the Deployment.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PodTemplateSpec;

use crate::values::sidecar::{self, PROXY_CONTAINER};

pub const REVISION: &str = "kubectl-kms-sts/injected-revision";
pub const FINGERPRINT: &str = "kubectl-kms-sts/injector-fingerprint";
pub const INPUTS: &str = "kubectl-kms-sts/injector-inputs";
pub const ORIGINAL_TEMPLATE: &str = "kubectl-kms-sts/original-template";

/// What one injection recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// `default`, or the revision `inject --revision` named.
    pub revision: String,
    /// `sha256:` of the injector's inputs.
    pub fingerprint: String,
    /// The injector's ConfigMaps by name and resourceVersion
    /// (`InjectorConfig::inputs`); records of earlier versions have none.
    pub inputs: Option<String>,
    /// The pod template before injection.
    pub original: PodTemplateSpec,
}

/// The record on `deployment`; `None` when it carries none, an error saying
/// what is wrong when it carries a damaged one.
pub fn recorded(deployment: &Deployment) -> Result<Option<Record>, String> {
    let annotations = deployment.metadata.annotations.clone().unwrap_or_default();
    let Some(original) = annotations.get(ORIGINAL_TEMPLATE) else {
        return Ok(None);
    };
    let original: PodTemplateSpec = serde_json::from_str(original).map_err(|err| {
        format!("its annotation {ORIGINAL_TEMPLATE} is not a pod template: {err}")
    })?;
    let field = |key: &str| {
        annotations
            .get(key)
            .cloned()
            .ok_or_else(|| format!("it has {ORIGINAL_TEMPLATE} but no {key}"))
    };
    Ok(Some(Record {
        revision: field(REVISION)?,
        fingerprint: field(FINGERPRINT)?,
        inputs: annotations.get(INPUTS).cloned(),
        original,
    }))
}

/// The revision `deployment`'s sidecar came from: the one its record names,
/// else the one Istio's `sidecar.istio.io/status` on its template names.
/// Read from the annotations alone, so a snapshot without the recorded
/// template still tells it.
pub fn injected_revision(deployment: &Deployment) -> Option<String> {
    deployment
        .metadata
        .annotations
        .as_ref()
        .and_then(|annotations| annotations.get(REVISION).cloned())
        .or_else(|| {
            let template = deployment.spec.as_ref()?.template.clone();
            sidecar::status_revision(&template)
        })
}

/// The fingerprint of the injector inputs `deployment` was injected from.
pub fn injected_fingerprint(deployment: &Deployment) -> Option<&str> {
    deployment
        .metadata
        .annotations
        .as_ref()?
        .get(FINGERPRINT)
        .map(String::as_str)
}

/// The fingerprint `deployment`'s injection recorded, when the injector's
/// ConfigMaps still carry the versions it recorded for `revision` (`now`,
/// as `ControlPlanes::inputs` gives them): then it is the fingerprint of
/// what the revision injects now, without reading their data.
pub fn unchanged_fingerprint<'a>(
    deployment: &'a Deployment,
    revision: &str,
    now: Option<&str>,
) -> Option<&'a str> {
    let annotations = deployment.metadata.annotations.as_ref()?;
    let recorded = annotations.get(INPUTS)?;
    (annotations.get(REVISION)? == revision && Some(recorded.as_str()) == now)
        .then(|| injected_fingerprint(deployment))
        .flatten()
}

/// `injected` carrying `record`.
pub fn with_record(mut injected: Deployment, record: &Record) -> Deployment {
    let original = serde_json::to_string(&record.original).expect("a pod template serialises");
    let annotations = injected.metadata.annotations.get_or_insert_default();
    annotations.insert(REVISION.into(), record.revision.clone());
    annotations.insert(FINGERPRINT.into(), record.fingerprint.clone());
    match &record.inputs {
        Some(inputs) => annotations.insert(INPUTS.into(), inputs.clone()),
        None => annotations.remove(INPUTS),
    };
    annotations.insert(ORIGINAL_TEMPLATE.into(), original);
    injected
}

/// `deployment` without any record, as it is once the sidecar is out.
pub fn cleared(mut deployment: Deployment) -> Deployment {
    if let Some(annotations) = deployment.metadata.annotations.as_mut() {
        for key in [REVISION, FINGERPRINT, INPUTS, ORIGINAL_TEMPLATE] {
            annotations.remove(key);
        }
    }
    deployment
}

/// Whether the recorded template can be put back on the Deployment whose
/// template is now `current`: a backup, where there is one, must hold the
/// same template, and the Deployment's own containers must still be the
/// ones recorded (same names, same images), or restoring would undo a
/// change made after injection. The reason when it cannot.
pub fn check(
    recorded: &PodTemplateSpec,
    current: &PodTemplateSpec,
    backup: Option<&PodTemplateSpec>,
) -> Result<(), String> {
    if backup.is_some_and(|backup| backup != recorded) {
        return Err(
            "the backup and the template recorded on the Deployment differ, so which one is \
             the original cannot be told"
                .into(),
        );
    }
    let images = |template: &PodTemplateSpec| -> BTreeMap<String, Option<String>> {
        template
            .spec
            .iter()
            .flat_map(|spec| &spec.containers)
            .filter(|container| container.name != PROXY_CONTAINER)
            .map(|container| (container.name.clone(), container.image.clone()))
            .collect()
    };
    let (was, now) = (images(recorded), images(current));
    if was == now {
        return Ok(());
    }
    let names: BTreeSet<&String> = was.keys().chain(now.keys()).collect();
    let changes: Vec<String> = names
        .into_iter()
        .filter(|name| was.get(*name) != now.get(*name))
        .map(|name| {
            let image = |images: &BTreeMap<String, Option<String>>| match images.get(name) {
                None => "(no such container)".to_owned(),
                Some(image) => image.clone().unwrap_or_else(|| "(no image)".into()),
            };
            format!("container {name}: {} -> {}", image(&was), image(&now))
        })
        .collect();
    Err(format!(
        "the Deployment changed since it was injected ({}); putting the recorded template back \
         would undo that",
        changes.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(containers: serde_json::Value) -> PodTemplateSpec {
        serde_json::from_value(json!({
            "metadata": {"labels": {"app": "kms"}},
            "spec": {"containers": containers},
        }))
        .unwrap()
    }

    #[test]
    fn a_record_round_trips_through_the_annotations_and_is_cleared() {
        let original = template(json!([{"name": "kms", "image": "kms:1",
            "readinessProbe": {"httpGet": {"path": "/health", "port": 8080}}}]));
        let inputs = "istio-sidecar-injector-canary@7,istio-canary@8";
        let record = Record {
            revision: "canary".into(),
            fingerprint: "sha256:ab".into(),
            inputs: Some(inputs.into()),
            original: original.clone(),
        };
        let injected = with_record(Deployment::default(), &record);
        assert_eq!(recorded(&injected), Ok(Some(record)));
        // While the ConfigMaps are at the versions recorded, the recorded
        // fingerprint is the revision's; not once either changed, nor for
        // another revision.
        assert_eq!(
            unchanged_fingerprint(&injected, "canary", Some(inputs)),
            Some("sha256:ab")
        );
        let changed = "istio-sidecar-injector-canary@9,istio-canary@8";
        assert_eq!(
            unchanged_fingerprint(&injected, "canary", Some(changed)),
            None
        );
        assert_eq!(unchanged_fingerprint(&injected, "canary", None), None);
        assert_eq!(
            unchanged_fingerprint(&injected, "default", Some(inputs)),
            None
        );
        let cleared = cleared(injected);
        assert_eq!(recorded(&cleared), Ok(None));
        assert_eq!(cleared.metadata.annotations, Some(BTreeMap::new()));

        let mut damaged = Deployment::default();
        damaged.metadata.annotations =
            Some([(ORIGINAL_TEMPLATE.to_owned(), "{not json".to_owned())].into());
        assert!(
            recorded(&damaged)
                .unwrap_err()
                .contains("not a pod template")
        );
    }

    #[test]
    fn a_record_is_refused_when_the_deployment_or_the_backup_disagree() {
        let original = template(json!([{"name": "kms", "image": "kms:1"}]));
        let injected = template(json!([{"name": "kms", "image": "kms:1"},
                                       {"name": "istio-proxy", "image": "proxyv2:1.31.2"}]));
        assert_eq!(check(&original, &injected, None), Ok(()));
        assert_eq!(check(&original, &injected, Some(&original)), Ok(()));

        let other_backup = template(json!([{"name": "kms", "image": "kms:0"}]));
        let err = check(&original, &injected, Some(&other_backup)).unwrap_err();
        assert!(err.contains("backup and the template recorded"), "{err}");

        let reimaged = template(json!([{"name": "kms", "image": "kms:2"},
                                       {"name": "istio-proxy", "image": "proxyv2:1.31.2"}]));
        let err = check(&original, &reimaged, None).unwrap_err();
        assert!(err.contains("container kms: kms:1 -> kms:2"), "{err}");
    }
}
