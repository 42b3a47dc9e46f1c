//! Writing custom objects idempotently. By default with server-side apply
//! under the field manager `kubectl-kms-sts`, without forcing: a field another
//! manager owns is reported as a conflict, never silently taken over. For
//! servers that cannot apply, a get-then-create/replace strategy.
//!
//! Each write reports whether it created, changed or left the object as it
//! was, by comparing resourceVersions, so a second run can say "unchanged".

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::output::{self, Format};
use crate::rollout::FIELD_MANAGER;

/// One object the plugin wants to exist, as it should look.
#[derive(Debug, Clone)]
pub struct Desired {
    pub resource: ApiResource,
    pub namespace: Option<String>,
    pub name: String,
    pub object: Value,
}

impl Desired {
    /// A desired object of `group/version` `kind` (`plural` in URLs).
    pub fn new(
        (group, version, kind, plural): (&str, &str, &str, &str),
        namespace: Option<&str>,
        name: &str,
        body: Value,
    ) -> Desired {
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
        let mut object = serde_json::json!({
            "apiVersion": resource.api_version,
            "kind": kind,
            "metadata": {"name": name},
        });
        if let Some(namespace) = namespace {
            object["metadata"]["namespace"] = Value::from(namespace);
        }
        if let (Value::Object(target), Value::Object(fields)) = (&mut object, body) {
            target.extend(fields);
        }
        Desired {
            resource,
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
            object,
        }
    }

    /// `kind.group/name`, as kubectl names objects in its output.
    pub fn display_name(&self) -> String {
        let kind = self.resource.kind.to_lowercase();
        if self.resource.group.is_empty() {
            format!("{kind}/{}", self.name)
        } else {
            format!("{kind}.{}/{}", self.resource.group, self.name)
        }
    }

    fn api(&self, cluster: &Cluster) -> Api<DynamicObject> {
        match &self.namespace {
            Some(ns) => Api::namespaced_with(cluster.client(), ns, &self.resource),
            None => Api::all_with(cluster.client(), &self.resource),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Strategy {
    /// Server-side apply.
    ServerSide,
    /// Get, then create or replace.
    Update,
}

#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions {
    pub strategy: Strategy,
    pub server_dry_run: bool,
    pub force_conflicts: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Configured,
    Unchanged,
}

impl Outcome {
    pub fn verb(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Configured => "configured",
            Outcome::Unchanged => "unchanged",
        }
    }
}

/// Makes `desired` exist as described.
pub async fn apply(cluster: &Cluster, desired: &Desired, options: ApplyOptions) -> Result<Outcome> {
    let api = desired.api(cluster);
    let name = &desired.name;
    let shown = desired.display_name();
    let existing = cluster
        .call(&format!("read {shown}"), api.get_opt(name))
        .await?;
    // Nothing to send when every field we want is already there: a re-run
    // makes no write at all.
    if let Some(current) = &existing {
        let current = serde_json::to_value(current).expect("objects serialise");
        if contains(&current, &desired.object) {
            return Ok(Outcome::Unchanged);
        }
    }
    let before = existing
        .as_ref()
        .and_then(|object| object.metadata.resource_version.clone());
    let written = match options.strategy {
        Strategy::ServerSide => {
            let mut params = PatchParams::apply(FIELD_MANAGER);
            params.dry_run = options.server_dry_run;
            params.force = options.force_conflicts;
            cluster
                .write(
                    &format!("apply {shown}"),
                    api.patch(name, &params, &Patch::Apply(&desired.object)),
                )
                .await?
        }
        Strategy::Update => {
            let params = PostParams {
                dry_run: options.server_dry_run,
                field_manager: Some(FIELD_MANAGER.into()),
            };
            let mut object: DynamicObject = serde_json::from_value(desired.object.clone())
                .expect("desired objects are objects");
            match &existing {
                None => {
                    cluster
                        .write(&format!("create {shown}"), api.create(&params, &object))
                        .await?
                }
                Some(current) => {
                    object.metadata.resource_version = current.metadata.resource_version.clone();
                    cluster
                        .write(
                            &format!("replace {shown}"),
                            api.replace(name, &params, &object),
                        )
                        .await?
                }
            }
        }
    };
    let written = written.map_err(|message| Error::ApplyConflict {
        object: shown,
        message,
    })?;
    Ok(match before {
        None => Outcome::Created,
        Some(version) if Some(&version) == written.metadata.resource_version.as_ref() => {
            Outcome::Unchanged
        }
        Some(_) => Outcome::Configured,
    })
}

/// Whether `have` holds every field of `want` with the same value (lists
/// must match element by element).
pub fn contains(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Object(have), Value::Object(want)) => want
            .iter()
            .all(|(key, value)| have.get(key).is_some_and(|h| contains(h, value))),
        (Value::Array(have), Value::Array(want)) => {
            have.len() == want.len() && have.iter().zip(want).all(|(h, w)| contains(h, w))
        }
        _ => have == want,
    }
}

/// Applies objects in order, printing one kubectl-style line per object on
/// stderr. A failure part-way says which objects were written and which not.
pub async fn apply_all(
    cluster: &Cluster,
    objects: &[Desired],
    options: ApplyOptions,
    note: &str,
) -> Result<Vec<Outcome>> {
    let mut outcomes = Vec::new();
    for (index, desired) in objects.iter().enumerate() {
        match apply(cluster, desired, options).await {
            Ok(outcome) => {
                eprintln!("{} {}{note}", desired.display_name(), outcome.verb());
                outcomes.push(outcome);
            }
            Err(cause) if index == 0 => return Err(cause),
            Err(cause) => {
                return Err(Error::Incomplete {
                    done: objects[..index].iter().map(Desired::display_name).collect(),
                    not_done: objects[index..].iter().map(Desired::display_name).collect(),
                    cause: Box::new(cause),
                });
            }
        }
    }
    if outcomes
        .iter()
        .all(|outcome| *outcome == Outcome::Unchanged)
    {
        eprintln!("nothing changed: every object was already as requested");
    }
    Ok(outcomes)
}

/// Renders objects for `-o`: YAML documents separated by `---`, or a JSON
/// `List`; both are accepted by `kubectl apply -f -`.
pub fn render(objects: &[&Desired], format: Format) -> String {
    match format {
        Format::Yaml => objects
            .iter()
            .map(|desired| output::render(&desired.object, Format::Yaml))
            .collect::<Vec<_>>()
            .join("---\n"),
        Format::Json => {
            let items: Vec<&Value> = objects.iter().map(|desired| &desired.object).collect();
            output::render(
                &serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}),
                Format::Json,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Desired {
        Desired::new(
            ("networking.istio.io", "v1", "Gateway", "gateways"),
            Some("kube-system"),
            "kmsgateway",
            json!({"spec": {"selector": {"istio": "ingressgateway"}}}),
        )
    }

    #[test]
    fn desired_objects_carry_type_and_identity() {
        let desired = sample();
        assert_eq!(desired.object["apiVersion"], "networking.istio.io/v1");
        assert_eq!(desired.object["kind"], "Gateway");
        assert_eq!(desired.object["metadata"]["namespace"], "kube-system");
        assert_eq!(
            desired.object["spec"]["selector"]["istio"],
            "ingressgateway"
        );
        assert_eq!(
            desired.display_name(),
            "gateway.networking.istio.io/kmsgateway"
        );
    }

    #[test]
    fn contains_is_a_deep_subset_check() {
        let have = json!({"metadata": {"name": "a", "uid": "u"}, "spec": {"ports": [{"number": 1, "name": "x"}]}});
        assert!(contains(
            &have,
            &json!({"metadata": {"name": "a"}, "spec": {"ports": [{"number": 1}]}})
        ));
        assert!(!contains(
            &have,
            &json!({"spec": {"ports": [{"number": 2}]}})
        ));
        assert!(!contains(
            &have,
            &json!({"spec": {"ports": [{"number": 1}, {"number": 1}]}})
        ));
        assert!(!contains(&have, &json!({"spec": {"missing": true}})));
    }

    #[test]
    fn yaml_render_is_a_multi_document_stream() {
        let a = sample();
        let text = render(&[&a, &a], Format::Yaml);
        assert_eq!(text.matches("---\n").count(), 1);
        assert_eq!(text.matches("kind: Gateway").count(), 2);
    }
}
