//! Writing custom objects idempotently. By default with server-side apply
//! under the field manager `kubectl-kms-sts`, without forcing: a field another
//! manager owns is reported as a conflict, never silently taken over. For
//! servers that cannot apply, a get-then-create/replace strategy.
//!
//! An object is written only when it lacks a wanted field, holds another
//! value, or still holds a field this plugin set earlier and no longer wants
//! (read from `managedFields`): a re-run sends no write, and a dropped value
//! is really dropped. The same comparison gives the wizard's field-level
//! plan. Each write reports whether it created, changed or left the object
//! as it was, by comparing resourceVersions.

use std::collections::BTreeMap;

use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicResourceScope};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::cluster::Cluster;
use crate::cluster::rollout::FIELD_MANAGER;
use crate::error::{Error, Result, Unfinished};
use crate::objects::apis::ServedApis;
use crate::objects::owned::{Owned, Where};
use crate::objects::place::{Desired, ObjectRef};
use crate::terminal::journal::Journal;
use crate::terminal::output::{self, Format};

/// The API of the object at `place`.
fn api<K: kube::Resource<DynamicType = ApiResource, Scope = DynamicResourceScope>>(
    cluster: &Cluster,
    place: &ObjectRef,
) -> Api<K> {
    match &place.namespace {
        Some(ns) => Api::namespaced_with(cluster.client(), ns, &place.resource),
        None => Api::all_with(cluster.client(), &place.resource),
    }
}

/// How custom objects are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Server-side apply.
    ServerSide,
    /// Get, then create or replace, for servers that cannot apply.
    Update,
}

/// How a command that creates custom objects writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyOptions {
    pub strategy: Strategy,
    /// Take over fields another field manager owns instead of failing.
    pub force_conflicts: bool,
}

impl Default for ApplyOptions {
    fn default() -> ApplyOptions {
        ApplyOptions {
            strategy: Strategy::ServerSide,
            force_conflicts: false,
        }
    }
}

/// A preview instead of a write: `Client` sends nothing, `Server` has the
/// API server validate the writes without persisting them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DryRun {
    Client,
    Server,
}

/// How a command that writes reports, or only previews, its writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOptions {
    pub dry_run: Option<DryRun>,
    /// Print the objects written (or that would be), secrets redacted.
    pub output: Option<Format>,
}

impl WriteOptions {
    /// Whether requests that write are sent as server-side dry runs.
    pub fn server_dry_run(&self) -> bool {
        self.dry_run == Some(DryRun::Server)
    }

    /// Whether nothing at all is sent that writes.
    pub fn client_dry_run(&self) -> bool {
        self.dry_run == Some(DryRun::Client)
    }

    /// How a create or replace is sent: as this plugin's field manager, and
    /// as a server-side dry run when asked.
    pub fn post_params(&self) -> PostParams {
        PostParams {
            dry_run: self.server_dry_run(),
            field_manager: Some(FIELD_MANAGER.into()),
        }
    }

    /// How a merge or strategic patch is sent, as `post_params`.
    pub fn patch_params(&self) -> PatchParams {
        PatchParams {
            dry_run: self.server_dry_run(),
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        }
    }

    /// A suffix for result lines, like kubectl's `(dry run)`.
    pub fn dry_run_note(&self) -> &'static str {
        match self.dry_run {
            None => "",
            Some(DryRun::Client) => " (dry run)",
            Some(DryRun::Server) => " (server dry run)",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Created,
    Configured,
    Unchanged,
}

impl Outcome {
    fn verb(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Configured => "configured",
            Outcome::Unchanged => "unchanged",
        }
    }
}

/// One field whose live value is not the wanted one.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldChange {
    /// Where the field is, as `spec.servers[0].hosts`.
    pub path: String,
    /// The live value; `None` when the field is absent.
    pub live: Option<Value>,
    /// The wanted value; `None` when a field this plugin set earlier is no
    /// longer wanted and applying removes it.
    pub wanted: Option<Value>,
}

impl std::fmt::Display for FieldChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |value: &Value| {
            let text = value.to_string();
            match text.char_indices().nth(MAX_SHOWN_VALUE) {
                Some((cut, _)) => format!("{}...", &text[..cut]),
                None => text,
            }
        };
        let live = self.live.as_ref().map_or("(absent)".into(), shown);
        let wanted = self.wanted.as_ref().map_or("(removed)".into(), shown);
        write!(f, "{}: {live} -> {wanted}", self.path)
    }
}

const MAX_SHOWN_VALUE: usize = 100;

/// What applying an object would do, from its live state.
#[derive(Debug, Clone, PartialEq)]
pub enum Preview {
    Create,
    Unchanged,
    Update(Vec<FieldChange>),
}

/// The live state of objects, read by reference before a plan is made.
#[derive(Debug, Clone, Default)]
pub struct Live(BTreeMap<String, Option<DynamicObject>>);

impl Live {
    /// What a fetch would have read: each place with what it held.
    #[cfg(test)]
    pub fn of(read: impl IntoIterator<Item = (ObjectRef, Option<DynamicObject>)>) -> Live {
        Live(
            read.into_iter()
                .map(|(place, found)| (place.key(), found))
                .collect(),
        )
    }

    /// The object at `place` as read; `None` when it does not exist.
    pub fn get(&self, place: &ObjectRef) -> Option<&DynamicObject> {
        self.0
            .get(&place.key())
            .unwrap_or_else(|| panic!("{} was read before planning", place.key()))
            .as_ref()
    }
}

/// What the readers below read objects as: a typed schema of this plugin
/// or `DynamicObject`, its resource given at run time.
pub trait Readable:
    kube::Resource<DynamicType = ApiResource, Scope = DynamicResourceScope>
    + Clone
    + DeserializeOwned
    + std::fmt::Debug
{
}

impl<K> Readable for K where
    K: kube::Resource<DynamicType = ApiResource, Scope = DynamicResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
{
}

/// Reads the object at `place` as `K` (a typed schema, or
/// `DynamicObject`); `None` when it does not exist.
pub async fn read<K: Readable>(cluster: &Cluster, place: &ObjectRef) -> Result<Option<K>> {
    let action = format!("read {}", place.display_name());
    cluster
        .call(&action, api::<K>(cluster, place).get_opt(&place.name))
        .await
}

/// Reads the owned object `owned` of the run `at` as `K`; `None` when it
/// does not exist, or the cluster does not serve its kind.
pub async fn read_owned<K: Readable>(
    cluster: &Cluster,
    served: &ServedApis,
    at: &Where<'_>,
    owned: &Owned,
) -> Result<Option<K>> {
    match owned.place(served, at) {
        Some(place) => read(cluster, &place).await,
        None => Ok(None),
    }
}

/// Every object of the owned kind `owned` in every namespace, as `K`;
/// empty when the cluster does not serve its kind. `expose` and `status`
/// read all Gateways this way, since istiod merges Gateways from every
/// namespace onto the same gateway pods.
pub async fn list_everywhere<K: Readable>(
    cluster: &Cluster,
    served: &ServedApis,
    owned: &Owned,
) -> Result<Vec<K>> {
    let Some(resource) = owned.resource(served) else {
        return Ok(Vec::new());
    };
    let everywhere: Api<K> = Api::all_with(cluster.client(), &resource);
    let action = format!(
        "list {}.{} in every namespace",
        resource.plural, resource.group
    );
    let list = cluster
        .call(&action, everywhere.list(&ListParams::default()))
        .await?;
    Ok(list.items)
}

/// Reads every object in `places` at once.
pub async fn read_live(
    cluster: &Cluster,
    places: impl IntoIterator<Item = ObjectRef>,
) -> Result<Live> {
    let reads = places.into_iter().map(|place| async move {
        let found = read::<DynamicObject>(cluster, &place).await?;
        Ok::<_, Error>((place.key(), found))
    });
    Ok(Live(
        futures::future::try_join_all(reads)
            .await?
            .into_iter()
            .collect(),
    ))
}

/// One object of a plan: as wanted, as found, and what writing it changes.
#[derive(Debug, Clone)]
pub struct Planned {
    pub desired: Desired,
    pub live: Option<DynamicObject>,
    pub preview: Preview,
}

/// What applying each of `objects` would do to what `live` holds.
pub fn plan(objects: Vec<Desired>, live: &Live) -> Vec<Planned> {
    objects
        .into_iter()
        .map(|desired| {
            let found = live.get(&desired.place).cloned();
            let preview = preview(found.as_ref(), &desired);
            Planned {
                desired,
                live: found,
                preview,
            }
        })
        .collect()
}

/// The wanted fields `live` lacks or holds with other values, and those
/// this plugin set earlier and no longer wants.
fn preview(live: Option<&DynamicObject>, desired: &Desired) -> Preview {
    let Some(current) = live else {
        return Preview::Create;
    };
    let current = serde_json::to_value(current).expect("objects serialise");
    let mut changes = differences(&current, &desired.object);
    changes.extend(no_longer_wanted(&current, &desired.object));
    if changes.is_empty() {
        Preview::Unchanged
    } else {
        Preview::Update(changes)
    }
}

/// Makes the planned object exist as described.
async fn apply(
    cluster: &Cluster,
    planned: &Planned,
    options: ApplyOptions,
    write: WriteOptions,
) -> Result<Outcome> {
    let Planned {
        desired,
        live: existing,
        preview,
    } = planned;
    let api = api::<DynamicObject>(cluster, &desired.place);
    let name = &desired.place.name;
    let shown = desired.display_name();
    // Nothing to send when every field we want is already there: a re-run
    // makes no write at all.
    if *preview == Preview::Unchanged {
        return Ok(Outcome::Unchanged);
    }
    let before = existing
        .as_ref()
        .and_then(|object| object.metadata.resource_version.clone());
    let written = match options.strategy {
        Strategy::ServerSide => {
            let mut params = PatchParams::apply(FIELD_MANAGER);
            params.dry_run = write.server_dry_run();
            params.force = options.force_conflicts;
            cluster
                .write(
                    &format!("apply {shown}"),
                    api.patch(name, &params, &Patch::Apply(&desired.object)),
                )
                .await?
        }
        Strategy::Update => {
            let params = write.post_params();
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

/// The fields of `want` that `have` lacks or holds with another value, as
/// paths under `at` (`spec.template` for a pod template).
pub fn field_changes(have: &Value, want: &Value, at: &str) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    collect_differences(have, want, at.to_owned(), &mut changes);
    changes
}

/// The fields of `want` that `have` lacks or holds with another value; none
/// when `have` holds all of `want` (a deep subset: lists must match element
/// by element, and a list of another length is one change).
fn differences(have: &Value, want: &Value) -> Vec<FieldChange> {
    field_changes(have, want, "")
}

fn collect_differences(have: &Value, want: &Value, path: String, changes: &mut Vec<FieldChange>) {
    match (have, want) {
        (Value::Object(have), Value::Object(want)) => {
            for (key, wanted) in want {
                let path = field_path(&path, key);
                match have.get(key) {
                    Some(live) => collect_differences(live, wanted, path, changes),
                    None => changes.push(FieldChange {
                        path,
                        live: None,
                        wanted: Some(wanted.clone()),
                    }),
                }
            }
        }
        (Value::Array(live), Value::Array(wanted)) if live.len() == wanted.len() => {
            for (index, (live, wanted)) in live.iter().zip(wanted).enumerate() {
                collect_differences(live, wanted, format!("{path}[{index}]"), changes);
            }
        }
        _ if have != want => changes.push(FieldChange {
            path,
            live: Some(have.clone()),
            wanted: Some(want.clone()),
        }),
        _ => {}
    }
}

/// The fields this plugin set on `live` earlier (its entries in
/// `metadata.managedFields`) that `want` no longer has: applying `want`
/// removes them, so an object that holds all of `want` may still need a
/// write. Fields inside lists count with the list, which `differences`
/// compares whole.
fn no_longer_wanted(live: &Value, want: &Value) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    let entries = live["metadata"]["managedFields"].as_array();
    for entry in entries.into_iter().flatten() {
        if entry["manager"] == FIELD_MANAGER
            && let Some(owned) = entry["fieldsV1"].as_object()
        {
            collect_unwanted(owned, live, want, String::new(), &mut changes);
        }
    }
    // The plugin may own a field twice: once from an apply, once from an
    // update made with `--apply-strategy update`.
    changes.sort_by(|a, b| a.path.cmp(&b.path));
    changes.dedup();
    changes
}

fn collect_unwanted(
    owned: &serde_json::Map<String, Value>,
    live: &Value,
    want: &Value,
    path: String,
    changes: &mut Vec<FieldChange>,
) {
    for (key, owned_below) in owned {
        let Some(name) = key.strip_prefix("f:") else {
            continue;
        };
        let Some(live_value) = live.get(name) else {
            continue;
        };
        let path = field_path(&path, name);
        match (want.get(name), owned_below.as_object()) {
            (None, _) => changes.push(FieldChange {
                path,
                live: Some(live_value.clone()),
                wanted: None,
            }),
            (Some(wanted @ Value::Object(_)), Some(owned_below)) => {
                collect_unwanted(owned_below, live_value, wanted, path, changes);
            }
            (Some(_), _) => {}
        }
    }
}

/// `parent.key`, or `parent["key"]` for keys such as annotation names.
fn field_path(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (parent.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{parent}.{key}"),
        (_, false) => format!("{parent}[{key:?}]"),
    }
}

/// What a command does with its planned objects: hands them to the journal
/// for `-o`, stops there on a client dry run, and otherwise writes those
/// that need it (the first alone, then the rest at once), telling the
/// journal one kubectl-style line per object. A failure says which writes
/// were done, which were sent without an answer, and which were not sent.
pub async fn write_all(
    cluster: &Cluster,
    planned: &[Planned],
    options: ApplyOptions,
    write: WriteOptions,
    journal: &dyn Journal,
) -> Result<()> {
    write_planned(cluster, planned, options, write, journal)
        .await
        .map_err(|(progress, cause)| progress.into_error(cause))
}

/// `write_all` for a longer batch: a failure comes back with the lists of
/// this part, for the caller to join with those of its other parts.
pub async fn write_planned(
    cluster: &Cluster,
    planned: &[Planned],
    options: ApplyOptions,
    write: WriteOptions,
    journal: &dyn Journal,
) -> std::result::Result<(), (Unfinished, Error)> {
    if let Some(format) = write.output {
        let shown = render(planned.iter().map(|object| &object.desired), format);
        journal
            .objects(&shown)
            .map_err(|cause| (Unfinished::default(), cause))?;
    }
    if write.client_dry_run() {
        for object in planned {
            let name = object.desired.display_name();
            journal.done(&match &object.preview {
                Preview::Create => format!("{name} would be created (dry run)"),
                Preview::Unchanged => format!("{name} unchanged (dry run)"),
                Preview::Update(changes) => {
                    let changes: Vec<String> = changes.iter().map(ToString::to_string).collect();
                    format!(
                        "{name} would be configured (dry run): {}",
                        changes.join("; ")
                    )
                }
            });
        }
        return Ok(());
    }
    let note = write.dry_run_note();
    let mut progress = Unfinished::default();
    let mut first_failure = None;
    for (object, sent) in planned
        .iter()
        .zip(send_all(cluster, planned, options, write).await)
    {
        let shown = object.desired.display_name();
        match sent {
            Some(Ok(outcome)) => {
                journal.done(&format!("{shown} {}{note}", outcome.verb()));
                if outcome != Outcome::Unchanged {
                    progress.done.push(shown);
                }
            }
            Some(Err(cause)) => {
                progress.file_failure(shown, &cause);
                first_failure.get_or_insert(cause);
            }
            None => progress.not_sent.push(shown),
        }
    }
    match first_failure {
        None if progress.done.is_empty() => {
            journal.done("nothing changed: every object was already as requested");
            Ok(())
        }
        None => Ok(()),
        Some(cause) => Err((progress, cause)),
    }
}

/// Sends the writes `planned` needs: the first object that changes alone,
/// so that when the cluster refuses it (an admission webhook, a field
/// another manager owns) nothing else is sent; then the rest together. One
/// answer per object, in order; `None` for a write never sent.
async fn send_all(
    cluster: &Cluster,
    planned: &[Planned],
    options: ApplyOptions,
    write: WriteOptions,
) -> Vec<Option<Result<Outcome>>> {
    let Some(first) = planned
        .iter()
        .position(|object| object.preview != Preview::Unchanged)
    else {
        return planned
            .iter()
            .map(|_| Some(Ok(Outcome::Unchanged)))
            .collect();
    };
    let mut first_answer = Some(apply(cluster, &planned[first], options, write).await);
    if matches!(first_answer, Some(Err(_))) {
        return planned
            .iter()
            .enumerate()
            .map(|(index, object)| match object.preview {
                _ if index == first => first_answer.take(),
                Preview::Unchanged => Some(Ok(Outcome::Unchanged)),
                _ => None,
            })
            .collect();
    }
    let writes = planned.iter().enumerate().map(|(index, object)| {
        let answer = (index == first).then(|| first_answer.take()).flatten();
        async move {
            match answer {
                Some(answer) => answer,
                None => apply(cluster, object, options, write).await,
            }
        }
    });
    futures::future::join_all(writes)
        .await
        .into_iter()
        .map(Some)
        .collect()
}

/// Renders objects for `-o`: YAML documents separated by `---`, or a JSON
/// `List`; both are accepted by `kubectl apply -f -`.
fn render<'a>(objects: impl IntoIterator<Item = &'a Desired>, format: Format) -> String {
    let objects: Vec<&Desired> = objects.into_iter().collect();
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
    use crate::objects::apis;
    use serde_json::json;

    fn sample() -> Desired {
        Desired::at(
            ObjectRef {
                resource: apis::api_resource("networking.istio.io", "v1", "Gateway", "gateways"),
                namespace: Some("kube-system".into()),
                name: "kmsgateway".into(),
            },
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
    fn differences_are_the_wanted_fields_not_held() {
        let have = json!({"metadata": {"name": "a", "uid": "u"}, "spec": {"ports": [{"number": 1, "name": "x"}]}});
        assert_eq!(
            differences(
                &have,
                &json!({"metadata": {"name": "a"}, "spec": {"ports": [{"number": 1}]}})
            ),
            []
        );
        let shown = |want: Value| {
            differences(&have, &want)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            shown(json!({"spec": {"ports": [{"number": 2}]}})),
            ["spec.ports[0].number: 1 -> 2"]
        );
        assert_eq!(
            shown(json!({"spec": {"ports": [{"number": 1}, {"number": 1}]}})),
            [r#"spec.ports: [{"name":"x","number":1}] -> [{"number":1},{"number":1}]"#]
        );
        assert_eq!(
            shown(json!({"spec": {"missing": true}, "metadata": {"annotations": {"a.io/b": "c"}}})),
            [
                r#"metadata.annotations: (absent) -> {"a.io/b":"c"}"#,
                "spec.missing: (absent) -> true"
            ]
        );
        assert_eq!(
            shown(json!({"metadata": {"uid": "v"}, "spec": {"ports": "x".repeat(200)}})),
            [
                r#"metadata.uid: "u" -> "v""#.to_owned(),
                format!(
                    r#"spec.ports: [{{"name":"x","number":1}}] -> "{}..."#,
                    "x".repeat(99)
                )
            ]
        );
    }

    #[test]
    fn fields_this_plugin_set_and_no_longer_wants_are_removals() {
        let live = json!({
            "metadata": {"name": "c", "managedFields": [
                {"manager": FIELD_MANAGER, "operation": "Apply", "fieldsV1": {"f:spec": {
                    "f:dnsNames": {}, "f:ipAddresses": {}, "f:issuerRef": {"f:kind": {}, "f:name": {}}}}},
                {"manager": FIELD_MANAGER, "operation": "Update", "fieldsV1": {"f:spec": {"f:dnsNames": {}}}},
                {"manager": "someone-else", "operation": "Update", "fieldsV1": {"f:spec": {"f:duration": {}}}}
            ]},
            "spec": {"dnsNames": ["kms.example.com"], "ipAddresses": ["10.1.1.1"], "duration": "1h",
                     "issuerRef": {"kind": "ClusterIssuer", "name": "ca"}}
        });
        let want = json!({"spec": {"ipAddresses": ["10.1.1.1"], "issuerRef": {"name": "ca"}}});
        assert_eq!(differences(&live, &want), []);
        let removed: Vec<String> = no_longer_wanted(&live, &want)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            removed,
            [
                r#"spec.dnsNames: ["kms.example.com"] -> (removed)"#,
                r#"spec.issuerRef.kind: "ClusterIssuer" -> (removed)"#
            ]
        );
        let everything = json!({"spec": {"dnsNames": ["kms.example.com"], "ipAddresses": ["10.1.1.1"],
                                         "issuerRef": {"kind": "ClusterIssuer", "name": "ca"}}});
        assert_eq!(no_longer_wanted(&live, &everything), []);
    }

    #[test]
    fn keys_that_are_not_plain_names_are_quoted_in_paths() {
        assert_eq!(field_path("", "spec"), "spec");
        assert_eq!(field_path("spec", "tls-mode"), "spec.tls-mode");
        assert_eq!(
            field_path("metadata.annotations", "a.io/b"),
            r#"metadata.annotations["a.io/b"]"#
        );
    }

    #[test]
    fn yaml_render_is_a_multi_document_stream() {
        let a = sample();
        let text = render([&a, &a], Format::Yaml);
        assert_eq!(text.matches("---\n").count(), 1);
        assert_eq!(text.matches("kind: Gateway").count(), 2);
    }
}
