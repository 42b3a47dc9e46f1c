//! Where an object lives (`ObjectRef`: its resource, namespace and name)
//! and how the plugin wants it to look (`Desired`). A step's fetch reads
//! its objects by place before it knows their contents; its plan compares
//! each `Desired` with what was read. Also the one way managed fields are
//! dropped from what the plugin shows, saves, sends or keeps while it checks,
//! and the one way an object is matched against a label selector.

use std::collections::BTreeMap;

use kube::Resource;
use kube::core::ApiResource;
use serde::Serialize;
use serde_json::Value;

/// Where an object lives: its resource, namespace and name. A step's fetch
/// reads its objects by these before it knows their contents.
#[derive(Debug, Clone)]
pub struct ObjectRef {
    pub resource: ApiResource,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    /// `kind.group/name`, as kubectl names objects in its output.
    pub fn display_name(&self) -> String {
        let kind = self.resource.kind.to_lowercase();
        if self.resource.group.is_empty() {
            format!("{kind}/{}", self.name)
        } else {
            format!("{kind}.{}/{}", self.resource.group, self.name)
        }
    }

    /// Two references to the same object have the same key.
    pub fn key(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.resource.api_version,
            self.resource.plural,
            self.namespace.as_deref().unwrap_or_default(),
            self.name
        )
    }
}

/// One object the plugin wants to exist, as it should look.
#[derive(Debug, Clone)]
pub struct Desired {
    pub place: ObjectRef,
    pub object: Value,
}

impl Desired {
    /// The object at `place`, with the fields of `body`.
    pub fn at(place: ObjectRef, body: Value) -> Desired {
        let mut object = serde_json::json!({
            "apiVersion": place.resource.api_version,
            "kind": place.resource.kind,
            "metadata": {"name": place.name},
        });
        if let Some(namespace) = &place.namespace {
            object["metadata"]["namespace"] = Value::from(namespace.as_str());
        }
        if let (Value::Object(target), Value::Object(fields)) = (&mut object, body) {
            target.extend(fields);
        }
        Desired { place, object }
    }

    /// The object at `place` whose spec is `spec`.
    pub fn with_spec(place: ObjectRef, spec: &impl Serialize) -> Desired {
        let spec = serde_json::to_value(spec).expect("specs serialise to JSON");
        Desired::at(place, serde_json::json!({ "spec": spec }))
    }

    /// The object at `place` with the fields `object` sets (its metadata,
    /// kind and API version aside: those are the place's).
    pub fn with_fields(place: ObjectRef, object: &impl Serialize) -> Desired {
        let mut fields = serde_json::to_value(object).expect("objects serialise to JSON");
        if let Some(fields) = fields.as_object_mut() {
            for bookkeeping in ["apiVersion", "kind", "metadata"] {
                fields.remove(bookkeeping);
            }
        }
        Desired::at(place, fields)
    }

    /// `kind.group/name`, as kubectl names objects in its output.
    pub fn display_name(&self) -> String {
        self.place.display_name()
    }
}

/// Whether `object` carries every one of `labels`, as a label selector
/// matches it (no labels match every object).
pub fn carries_labels<K: Resource>(object: &K, labels: &BTreeMap<String, String>) -> bool {
    let carried = object.meta().labels.as_ref();
    labels
        .iter()
        .all(|(key, value)| carried.and_then(|l| l.get(key)) == Some(value))
}

/// `object` without its managed fields: the server's record of who set
/// what, which nothing the plugin shows, saves or sends needs.
pub fn without_managed_fields<K: Resource>(mut object: K) -> K {
    object.meta_mut().managed_fields = None;
    object
}

/// `object` with its managed fields' entries (who wrote it, when) but not
/// the fields each entry owns: the bulk of an object as read, which checks
/// never look at and every context in flight would hold.
pub fn without_owned_field_sets<K: Resource>(mut object: K) -> K {
    for entry in object.meta_mut().managed_fields.iter_mut().flatten() {
        entry.fields_v1 = None;
    }
    object
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Secret;

    #[test]
    fn owned_field_sets_go_and_who_wrote_when_stays() {
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "s", "managedFields": [{
                "manager": "kubectl-kms-sts", "operation": "Apply",
                "time": "2026-12-04T10:00:00Z",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:apikey": {}}},
            }]},
        }))
        .unwrap();
        let lean = without_owned_field_sets(secret);
        let entries = lean.metadata.managed_fields.unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].manager.as_deref(), Some("kubectl-kms-sts"));
        assert!(entries[0].time.is_some());
        assert!(entries[0].fields_v1.is_none());
    }
}
