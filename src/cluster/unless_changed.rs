//! Writes that must not overwrite someone else's change. Each is sent with
//! the resourceVersion that was read as its precondition; the server refuses
//! it (409) when the object moved on. Controllers move objects on all the
//! time by writing their status (the Deployment controller, cert-manager),
//! which changes nothing the plugin decided on: such a refusal is sent again
//! against the fresh version. So is one caused by the Deployment controller
//! numbering a new rollout (`deployment.kubernetes.io/revision`), which the
//! write then carries as the controller left it. Any other change refuses
//! the write for good.

use kube::Api;
use kube::core::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::cluster::Cluster;
use crate::error::Result;

/// How often a write refused only because a controller moved the object's
/// status on is sent again.
pub const STATUS_ONLY_RETRIES: u32 = 3;

/// What became of a write sent with a precondition.
#[derive(Debug)]
pub enum Written<T> {
    Done(T),
    /// The object was deleted in the meantime.
    Gone,
    /// Someone changed more than the status; nothing was written.
    Changed {
        attempts: u32,
    },
}

/// Sends `send` with the object as `read` (`shown` names it in messages);
/// `send` answers `None` when the server refused it with a conflict. Each
/// such refusal reads the object again and, when only its status moved on,
/// sends again with the fresh version.
pub async fn write<K, T>(
    cluster: &Cluster,
    api: &Api<K>,
    (read, shown): (&K, &str),
    mut send: impl AsyncFnMut(&K) -> Result<Option<T>>,
) -> Result<Written<T>>
where
    K: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let name = read.meta().name.clone().unwrap_or_default();
    let action = format!("read {shown}");
    let mut latest = read.clone();
    for attempt in 1..=STATUS_ONLY_RETRIES + 1 {
        if let Some(done) = send(&latest).await? {
            return Ok(Written::Done(done));
        }
        if attempt > STATUS_ONLY_RETRIES {
            break;
        }
        let Some(fresh) = cluster.call(&action, api.get_opt(&name)).await? else {
            return Ok(Written::Gone);
        };
        if !only_status_changed(read, &fresh) {
            return Ok(Written::Changed { attempts: attempt });
        }
        latest = fresh;
    }
    Ok(Written::Changed {
        attempts: STATUS_ONLY_RETRIES + 1,
    })
}

/// The annotations controllers keep on the objects the plugin writes.
const CONTROLLER_ANNOTATIONS: [&str; 1] = ["deployment.kubernetes.io/revision"];

/// `updated` with the controllers' annotations as `latest` has them, so a
/// write sent again does not put an older value back.
pub fn with_controller_annotations<K: Resource>(latest: &K, updated: &mut K) {
    let theirs = latest.meta().annotations.clone().unwrap_or_default();
    let ours = updated.meta_mut().annotations.get_or_insert_default();
    for key in CONTROLLER_ANNOTATIONS {
        match theirs.get(key) {
            Some(value) => ours.insert(key.to_owned(), value.clone()),
            None => ours.remove(key),
        };
    }
}

/// Whether `fresh` differs from `read` only in what controllers maintain:
/// the status, the resourceVersion that moves with it, and the timestamps
/// of field ownership; the same managers must own the same fields.
pub fn only_status_changed<K: Serialize>(read: &K, fresh: &K) -> bool {
    essence(read) == essence(fresh)
}

/// The object without status and resourceVersion, and who owns which of
/// its fields (status entries and timestamps aside).
fn essence<K: Serialize>(object: &K) -> (Value, Vec<(Value, Value, Value)>) {
    let mut value = serde_json::to_value(object).unwrap_or_default();
    let mut managed = Value::Null;
    if let Some(fields) = value.as_object_mut() {
        fields.remove("status");
    }
    if let Some(meta) = value["metadata"].as_object_mut() {
        meta.remove("resourceVersion");
        managed = meta.remove("managedFields").unwrap_or_default();
        if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            for key in CONTROLLER_ANNOTATIONS {
                annotations.remove(key);
            }
        }
    }
    let owners = managed
        .as_array()
        .into_iter()
        .flatten()
        .filter(|entry| entry["subresource"].as_str().unwrap_or_default().is_empty())
        .map(|entry| {
            (
                entry["manager"].clone(),
                entry["operation"].clone(),
                entry["fieldsV1"].clone(),
            )
        })
        .collect();
    (value, owners)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::rollout::FIELD_MANAGER;
    use crate::objects::apis;
    use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
    use kube::api::DynamicObject;

    fn entry(manager: &str, subresource: Option<&str>) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            subresource: subresource.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn a_new_rollout_number_is_no_change_and_the_write_carries_it() {
        let mut read = Deployment::default();
        read.metadata.annotations = Some(
            [(
                "deployment.kubernetes.io/revision".to_owned(),
                "3".to_owned(),
            )]
            .into(),
        );
        let mut fresh = read.clone();
        fresh.metadata.resource_version = Some("9".into());
        fresh
            .metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert("deployment.kubernetes.io/revision".into(), "4".into());
        assert!(only_status_changed(&read, &fresh));
        let mut updated = read.clone();
        with_controller_annotations(&fresh, &mut updated);
        assert_eq!(
            updated.metadata.annotations.unwrap()["deployment.kubernetes.io/revision"],
            "4"
        );
        fresh
            .metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert("team".into(), "kms".into());
        assert!(!only_status_changed(&read, &fresh));
    }

    #[test]
    fn a_status_write_is_no_change_but_another_manager_is() {
        let resource = apis::api_resource("cert-manager.io", "v1", "Certificate", "certificates");
        let mut read = DynamicObject::new("cert", &resource);
        read.metadata.resource_version = Some("1".into());
        read.metadata.managed_fields = Some(vec![entry(FIELD_MANAGER, None)]);
        read.data = serde_json::json!({"spec": {"secretName": "s"}});

        let mut status_only = read.clone();
        status_only.metadata.resource_version = Some("2".into());
        status_only.data["status"] = serde_json::json!({"conditions": []});
        status_only
            .metadata
            .managed_fields
            .as_mut()
            .unwrap()
            .push(entry("cert-manager-certificates", Some("status")));
        assert!(only_status_changed(&read, &status_only));

        let mut annotated = status_only.clone();
        annotated.metadata.annotations = Some([("a".to_owned(), "b".to_owned())].into());
        assert!(!only_status_changed(&read, &annotated));

        let mut co_owned = status_only;
        co_owned
            .metadata
            .managed_fields
            .as_mut()
            .unwrap()
            .push(entry("kubectl-edit", None));
        assert!(!only_status_changed(&read, &co_owned));

        let mut respecced = read.clone();
        respecced.data["spec"]["secretName"] = "other".into();
        assert!(!only_status_changed(&read, &respecced));
    }

    #[test]
    fn a_typed_object_is_judged_the_same_way() {
        let mut read = Deployment::default();
        read.metadata.resource_version = Some("1".into());
        let mut rolled = read.clone();
        rolled.metadata.resource_version = Some("2".into());
        rolled.status = Some(DeploymentStatus {
            ready_replicas: Some(1),
            ..DeploymentStatus::default()
        });
        assert!(only_status_changed(&read, &rolled));
        rolled.metadata.labels = Some([("app".to_owned(), "kms".to_owned())].into());
        assert!(!only_status_changed(&read, &rolled));
    }
}
