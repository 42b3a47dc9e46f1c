//! `uninstall`: takes the setup back out, in the reverse order of the
//! runbook, deleting only what the plugin itself created.
//!
//! `fetch` reads in two concurrent rounds (the objects of the owned-object
//! table, the Deployment and the user's permissions; then what those name),
//! then `plan` (a pure function) decides each object's fate: deleted when
//! its only field manager, status aside, is `kubectl-kms-sts`; kept, with
//! the other managers named, when anyone else owns fields of it; and which
//! of the permissions it needs the user lacks. The Certificate's issued secret
//! and the API key Secret are deleted only when asked for, and the token
//! adapter is not restarted. The sidecar is taken out of the KMS Deployment
//! in place: its pod template is put back from the record `inject` left on
//! the Deployment (checked against the backup and the Deployment), else from
//! the newest backup `inject` saved, else from the Deployment's own earlier
//! ReplicaSet without the sidecar (what `kubectl rollout undo` would use),
//! and the rollout is awaited and checked. `apply` (after the command's one
//! confirmation) sends the deletions with the uid and resourceVersion that
//! were read as preconditions, so an object changed in between is refused,
//! not deleted.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::Api;
use kube::api::{DeleteParams, DynamicObject, ListParams, Preconditions};
use kube::core::ApiResource;
use serde_json::Value;

use crate::cluster::apply::{self, DryRun, WriteOptions};
use crate::cluster::permissions::{self, Permission, Scope};
use crate::cluster::pod_template;
use crate::cluster::rollout::FIELD_MANAGER;
use crate::cluster::run::Run;
use crate::cluster::unless_changed::{self, Written};
use crate::cluster::{Cluster, Target};
use crate::error::{Error, Result, Unfinished};
use crate::files::backup;
use crate::objects::apis::ServedApis;
use crate::objects::injection_record;
use crate::objects::owned::{self, Owned, Removal, Request, Where};
use crate::objects::place::{ObjectRef, without_managed_fields};
use crate::objects::schemas::Certificate;
use crate::steps::injection;
use crate::values::sidecar;

/// One object the setup may have left, as read.
#[derive(Debug, Clone)]
pub struct Held {
    pub resource: ApiResource,
    pub namespace: String,
    pub name: String,
    /// Its row of the table of owned objects, which says when it may go.
    pub owned: Owned,
    pub object: Option<DynamicObject>,
}

impl Held {
    /// `kind.group/name`, as kubectl names objects.
    pub fn object_name(&self) -> String {
        let kind = self.resource.kind.to_lowercase();
        if self.resource.group.is_empty() {
            format!("{kind}/{}", self.name)
        } else {
            format!("{kind}.{}/{}", self.resource.group, self.name)
        }
    }

    pub fn display_name(&self) -> String {
        format!("{} in {}", self.object_name(), self.namespace)
    }
}

/// What will happen to one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    Absent,
    Delete { because: String },
    Keep { because: String },
}

/// What will happen to the KMS Deployment's sidecar.
#[derive(Debug, Clone, PartialEq)]
pub enum SidecarFate {
    NoDeployment,
    NotInjected,
    Restore {
        template: Box<PodTemplateSpec>,
        from: String,
    },
    Keep {
        because: String,
    },
}

/// Every decision, in the order the writes are made.
#[derive(Debug, Clone)]
pub struct Plan {
    pub objects: Vec<(Held, Fate)>,
    pub sidecar: SidecarFate,
    /// The KMS Deployment as read.
    pub deployment: Option<Deployment>,
    /// The permissions carrying out this plan needs that the user lacks.
    pub lacking: Vec<Permission>,
}

impl Plan {
    pub fn writes(&self) -> usize {
        let deletes = self
            .objects
            .iter()
            .filter(|(_, fate)| matches!(fate, Fate::Delete { .. }))
            .count();
        deletes + usize::from(matches!(self.sidecar, SidecarFate::Restore { .. }))
    }
}

/// The field managers other than the plugin that own fields of `object`;
/// status written by controllers does not count.
pub fn other_managers(object: &DynamicObject) -> Vec<String> {
    let mut managers: Vec<String> = object
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|entry| entry.subresource.as_deref().unwrap_or("").is_empty())
        .filter_map(|entry| entry.manager.clone())
        .filter(|manager| manager != FIELD_MANAGER)
        .collect();
    managers.sort();
    managers.dedup();
    managers
}

/// Decides each object's fate and the sidecar's, and which permissions
/// that takes; pure.
pub fn plan(found: Found, options: &UninstallOptions) -> Plan {
    let sidecar = match &found.deployment {
        None => SidecarFate::NoDeployment,
        Some(deployment) => sidecar_fate(
            deployment,
            found.backup.clone(),
            &found.replica_sets,
            &found.backup_dir,
        ),
    };
    let objects = found
        .objects
        .into_iter()
        .map(|held| {
            let fate = fate(&held, options);
            (held, fate)
        })
        .collect();
    let mut plan = Plan {
        objects,
        sidecar,
        deployment: found.deployment,
        lacking: Vec::new(),
    };
    let needed = needs(&plan, &found.scope_needs);
    plan.lacking = found
        .lacking
        .into_iter()
        .filter(|lacking| needed.contains(lacking))
        .collect();
    plan
}

fn fate(found: &Held, options: &UninstallOptions) -> Fate {
    let Some(object) = &found.object else {
        return Fate::Absent;
    };
    match found.owned.removal {
        Removal::OnRequest(request) if options.deletes(request) => Fate::Delete {
            because: request.flag().into(),
        },
        Removal::OnRequest(request) => Fate::Keep {
            because: format!("{}; {} deletes it", request.kept_because(), request.flag()),
        },
        Removal::WhenOnlyThePluginOwnsIt => {
            let others = other_managers(object);
            let plugin_owns = object
                .metadata
                .managed_fields
                .iter()
                .flatten()
                .any(|entry| entry.manager.as_deref() == Some(FIELD_MANAGER));
            if !plugin_owns {
                Fate::Keep {
                    because: "kubectl-kms-sts did not create it".into(),
                }
            } else if others.is_empty() {
                Fate::Delete {
                    because: "created by kubectl-kms-sts".into(),
                }
            } else {
                Fate::Keep {
                    because: format!("also owned by {}", others.join(", ")),
                }
            }
        }
    }
}

/// What `uninstall` is asked to take out, and how.
#[derive(Debug, Clone)]
pub struct UninstallOptions {
    /// The KMS Deployment whose sidecar goes.
    pub deployment: String,
    pub policy: String,
    /// The API-key Secret, deleted only with `delete_apikey`.
    pub secret: String,
    pub delete_certificate_secret: bool,
    pub delete_apikey: bool,
    /// Where inject's backups are; the context's default directory when absent.
    pub backup_dir: Option<PathBuf>,
    /// How long the Deployment's rollout may take.
    pub timeout: Duration,
    /// Go ahead without asking.
    pub yes: bool,
    pub write: WriteOptions,
}

impl UninstallOptions {
    /// Whether the flag of `request` was given.
    pub fn deletes(&self, request: Request) -> bool {
        match request {
            Request::IssuedSecret => self.delete_certificate_secret,
            Request::ApiKey => self.delete_apikey,
        }
    }
}

/// What the cluster (and the backup directory) hold that uninstall decides
/// on, read in two concurrent rounds: the objects by name, the Deployment and
/// the review of the user's permissions; then what the first round names
/// (the Certificate's issued secret, the Deployment's ReplicaSets).
pub struct Found {
    objects: Vec<Held>,
    deployment: Option<Deployment>,
    /// The newest backup of the Deployment without the sidecar.
    backup: Option<(PathBuf, PodTemplateSpec)>,
    backup_dir: PathBuf,
    /// The Deployment's ReplicaSets, listed when it carries the sidecar
    /// and no backup does without it.
    replica_sets: Vec<ReplicaSet>,
    /// What of everything `uninstall` may need the user lacks.
    lacking: Vec<Permission>,
    scope_needs: Vec<Permission>,
}

/// Reads everything the plan is made from.
pub async fn fetch(run: Run<'_>, options: &UninstallOptions) -> Result<Found> {
    let Run {
        cluster,
        target,
        served,
        write,
        ..
    } = run;
    let at = place_of_run(target, options);
    let backup_dir = options
        .backup_dir
        .clone()
        .unwrap_or_else(|| backup::default_dir(cluster.context()));
    let backup =
        injection::backed_up_template(&backup_dir, &target.kms_namespace, &options.deployment)?;
    let scope_needs = permissions::for_writes(
        &permissions::for_uninstall(&Scope::of(target, served)),
        write,
    );
    let deployments: Api<Deployment> = Api::namespaced(cluster.client(), &target.kms_namespace);
    let read_deployment = format!(
        "read deployment {}/{}",
        target.kms_namespace, options.deployment
    );
    let (objects, deployment, lacking) = tokio::try_join!(
        read_targets(cluster, targets(served, &at)),
        cluster.call(&read_deployment, deployments.get_opt(&options.deployment)),
        permissions::missing(cluster, &scope_needs),
    )?;
    let lists_replica_sets = deployment.as_ref().is_some_and(|deployment| {
        sidecar::template_is_injected(&pod_template::of(deployment))
            && backup.is_none()
            && matches!(injection_record::recorded(deployment), Ok(None))
            && !lacking.iter().any(|p| p.resource == "replicasets")
    });
    let (objects, replica_sets) =
        tokio::try_join!(with_issued_secret(cluster, served, &at, objects), async {
            match lists_replica_sets {
                true => replica_sets(cluster, &target.kms_namespace).await,
                false => Ok(Vec::new()),
            }
        },)?;
    Ok(Found {
        objects,
        deployment,
        backup,
        backup_dir,
        replica_sets,
        lacking,
        scope_needs,
    })
}

async fn replica_sets(cluster: &Cluster, namespace: &str) -> Result<Vec<ReplicaSet>> {
    let replica_sets: Api<ReplicaSet> = Api::namespaced(cluster.client(), namespace);
    let listed = cluster
        .call(
            &format!("list replicasets in {namespace}"),
            replica_sets.list(&ListParams::default()),
        )
        .await?;
    Ok(listed.items)
}

/// Every object of the table the plugin may have written whose name is
/// known before reading (the issued secret's is not), at the API versions
/// the cluster serves, in the order they go.
fn targets(served: &ServedApis, at: &Where) -> Vec<(ObjectRef, Owned)> {
    owned::ALL
        .iter()
        .filter_map(|owned| Some((owned.place(served, at)?, *owned)))
        .collect()
}

/// The run's namespaces and the names of the policy and the key Secret.
fn place_of_run<'a>(target: &'a Target, options: &'a UninstallOptions) -> Where<'a> {
    Where {
        kms_namespace: &target.kms_namespace,
        istio_namespace: &target.istio_namespace,
        policy: Some(&options.policy),
        apikey_secret: Some(&options.secret),
    }
}

fn api(cluster: &Cluster, resource: &ApiResource, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(cluster.client(), namespace, resource)
}

/// Reads every target at once.
async fn read_targets(cluster: &Cluster, targets: Vec<(ObjectRef, Owned)>) -> Result<Vec<Held>> {
    let reads = targets.into_iter().map(|(place, owned)| async move {
        let object = apply::read(cluster, &place).await?;
        Ok(Held {
            resource: place.resource,
            namespace: place.namespace.unwrap_or_default(),
            name: place.name,
            owned,
            object,
        })
    });
    futures::future::try_join_all(reads).await
}

/// Adds the secret the Certificate names (`spec.secretName`), read after
/// the Certificate since its name comes from there; placed right after it.
async fn with_issued_secret(
    cluster: &Cluster,
    served: &ServedApis,
    at: &Where<'_>,
    mut found: Vec<Held>,
) -> Result<Vec<Held>> {
    let Some(position) = found
        .iter()
        .position(|f| f.owned == owned::CERTIFICATE_OBJECT && f.object.is_some())
    else {
        return Ok(found);
    };
    let certificate = &found[position];
    let Some(name) = certificate
        .object
        .clone()
        .and_then(|object| object.try_parse::<Certificate>().ok())
        .map(|certificate| certificate.spec.secret_name)
        .filter(|name| !name.is_empty())
    else {
        return Ok(found);
    };
    let Some(place) = owned::ISSUED_SECRET.place_named(served, at, &name) else {
        return Ok(found);
    };
    let object = apply::read(cluster, &place).await?;
    found.insert(
        position + 1,
        Held {
            resource: place.resource,
            namespace: place.namespace.unwrap_or_default(),
            name: place.name,
            owned: owned::ISSUED_SECRET,
            object,
        },
    );
    Ok(found)
}

/// Where the pod template without the sidecar comes from: the record its
/// injection left on the Deployment (checked against the backup and the
/// Deployment), else the newest backup `inject` saved, else the Deployment's
/// newest earlier ReplicaSet without it.
fn sidecar_fate(
    deployment: &Deployment,
    backup: Option<(PathBuf, PodTemplateSpec)>,
    replica_sets: &[ReplicaSet],
    backup_dir: &Path,
) -> SidecarFate {
    if !sidecar::template_is_injected(&pod_template::of(deployment)) {
        return SidecarFate::NotInjected;
    }
    match injection::original_template(deployment, backup) {
        Ok(Some((template, from))) => {
            return SidecarFate::Restore {
                template: Box::new(template),
                from,
            };
        }
        Err(refused) => {
            return SidecarFate::Keep {
                because: refused.to_string(),
            };
        }
        Ok(None) => {}
    }
    earlier_template(deployment, replica_sets).map_or_else(
        || SidecarFate::Keep {
            because: format!(
                "no backup in {} and no earlier ReplicaSet without the sidecar; \
                 name the backup directory with --backup-dir",
                backup_dir.display()
            ),
        },
        |(revision, template)| SidecarFate::Restore {
            template: Box::new(template),
            from: format!("its revision {revision} (an earlier ReplicaSet)"),
        },
    )
}

/// The pod template of the newest ReplicaSet that `deployment` owns and that
/// runs no sidecar, without the hash label the controller adds; with its
/// revision.
pub fn earlier_template(
    deployment: &Deployment,
    replica_sets: &[ReplicaSet],
) -> Option<(i64, PodTemplateSpec)> {
    let uid = deployment.metadata.uid.as_deref()?;
    replica_sets
        .iter()
        .filter(|rs| {
            rs.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|owner| owner.uid == uid && owner.controller == Some(true))
        })
        .filter_map(|rs| {
            let revision = rs
                .metadata
                .annotations
                .as_ref()?
                .get("deployment.kubernetes.io/revision")?
                .parse::<i64>()
                .ok()?;
            let mut template = rs.spec.as_ref()?.template.clone()?;
            if sidecar::template_is_injected(&template) {
                return None;
            }
            if let Some(labels) = template
                .metadata
                .as_mut()
                .and_then(|meta| meta.labels.as_mut())
            {
                labels.remove("pod-template-hash");
            }
            Some((revision, template))
        })
        .max_by_key(|(revision, _)| *revision)
}

/// What carrying out `plan` needs: of everything `uninstall` may need
/// (`permissions::for_uninstall`, which `rbac --for uninstall` grants), the
/// reads of every object found, the deletes of those it deletes, and the
/// Deployment's update, watch and pods only when its template is restored.
fn needs(plan: &Plan, scope_needs: &[Permission]) -> Vec<Permission> {
    let restores = matches!(plan.sidecar, SidecarFate::Restore { .. });
    scope_needs
        .iter()
        .filter(|need| match (need.group.as_str(), need.resource) {
            ("apps", "deployments") => need.verb == "get" || restores,
            ("", "pods") => restores,
            ("apps", "replicasets") => true,
            (group, resource) => plan.objects.iter().any(|(found, fate)| {
                found.resource.group == group
                    && found.resource.plural == resource
                    && need.namespace.as_ref() == Some(&found.namespace)
                    && (need.verb == "get" || matches!(fate, Fate::Delete { .. }))
            }),
        })
        .cloned()
        .collect()
}

/// The plan as a person reads it: one line per object, in write order.
pub fn plan_text(plan: &Plan, target: &Target, options: &UninstallOptions) -> String {
    let current_template = plan
        .deployment
        .as_ref()
        .map(pod_template::of)
        .unwrap_or_default();
    let mut text = String::new();
    for (found, fate) in &plan.objects {
        let line = match fate {
            Fate::Absent => format!("  absent   {}", found.display_name()),
            Fate::Delete { because } => format!("  delete   {} ({because})", found.display_name()),
            Fate::Keep { because } => format!("  keep     {} ({because})", found.display_name()),
        };
        text += &line;
        text.push('\n');
    }
    let deployment = format!(
        "deployment.apps/{} in {}",
        options.deployment, target.kms_namespace
    );
    text += &match &plan.sidecar {
        SidecarFate::NoDeployment => format!("  absent   {deployment}\n"),
        SidecarFate::NotInjected => format!("  as is    {deployment} (no Istio sidecar)\n"),
        SidecarFate::Restore { from, template } => {
            let removed = removed_from_template(&current_template, template);
            format!(
                "  change   {deployment}: pod template from {from}, rolled out\n{}",
                removed
                    .iter()
                    .map(|line| format!("             - {line}\n"))
                    .collect::<String>()
            )
        }
        SidecarFate::Keep { because } => format!("  keep     {deployment} sidecar ({because})\n"),
    };
    text
}

/// What the pod template loses going from `current` to `restored`, field
/// by field: containers, init containers, volumes, labels and annotations.
pub fn removed_from_template(current: &PodTemplateSpec, restored: &PodTemplateSpec) -> Vec<String> {
    fn gone(what: &str, current: Vec<String>, restored: &[String]) -> Option<String> {
        let gone: Vec<String> = current
            .into_iter()
            .filter(|name| !restored.contains(name))
            .collect();
        (!gone.is_empty()).then(|| format!("{what} {}", gone.join(", ")))
    }
    let parts = |template: &PodTemplateSpec| {
        let spec = template.spec.clone().unwrap_or_default();
        let meta = template.metadata.clone().unwrap_or_default();
        [
            spec.containers.iter().map(|c| c.name.clone()).collect(),
            spec.init_containers
                .iter()
                .flatten()
                .map(|c| c.name.clone())
                .collect(),
            spec.volumes
                .iter()
                .flatten()
                .map(|v| v.name.clone())
                .collect(),
            meta.labels.unwrap_or_default().into_keys().collect(),
            meta.annotations.unwrap_or_default().into_keys().collect(),
        ]
    };
    let [containers, init, volumes, labels, annotations]: [Vec<String>; 5] = parts(current);
    let kept = parts(restored);
    [
        gone("containers", containers, &kept[0]),
        gone("init containers", init, &kept[1]),
        gone("volumes", volumes, &kept[2]),
        gone("pod labels", labels, &kept[3]),
        gone("pod annotations", annotations, &kept[4]),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// What `-o` prints: each object that would be deleted, as read (secret
/// values redacted), and the Deployment as it would be.
pub fn shown(plan: &Plan) -> Value {
    let mut items: Vec<Value> = plan
        .objects
        .iter()
        .filter(|(_, fate)| matches!(fate, Fate::Delete { .. }))
        .filter_map(|(found, _)| found.object.as_ref())
        .map(|object| {
            let mut value =
                serde_json::to_value(without_managed_fields(object.clone())).unwrap_or_default();
            for field in ["data", "stringData"] {
                if let Some(data) = value[field].as_object_mut() {
                    for entry in data.values_mut() {
                        *entry = Value::from("<redacted>");
                    }
                }
            }
            value
        })
        .collect();
    if let (SidecarFate::Restore { template, .. }, Some(deployment)) =
        (&plan.sidecar, &plan.deployment)
    {
        let restored = pod_template::with_template(deployment, (**template).clone());
        items.push(serde_json::to_value(restored).unwrap_or_default());
    }
    serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items})
}

/// Deletes what the plan deletes and puts the pod template back, each write
/// reported as it is made. A failure says which writes were done, which
/// were sent without an answer, and which were not sent.
pub async fn apply(run: Run<'_>, plan: Plan, options: &UninstallOptions) -> Result<()> {
    let cluster = run.cluster;
    let note = options.write.dry_run_note();
    let sends = options.write.dry_run != Some(DryRun::Client);
    let deletes: Vec<(&Held, &DynamicObject)> = plan
        .objects
        .iter()
        .filter_map(|(found, fate)| match (fate, &found.object) {
            (Fate::Delete { .. }, Some(object)) => Some((found, object)),
            _ => None,
        })
        .collect();
    let restore = match (&plan.sidecar, plan.deployment.as_ref()) {
        (SidecarFate::Restore { template, from }, Some(current)) => Some((template, from, current)),
        _ => None,
    };
    let restored = format!(
        "restore deployment/{} without the Istio sidecar",
        options.deployment
    );
    // Each write is told to the journal as it is made, so a failure part-way
    // leaves a record of what was already done; a re-run plans from there.
    let mut progress = Unfinished::default();
    for (index, (found, object)) in deletes.iter().enumerate() {
        let deleted = format!("delete {}", found.display_name());
        if sends && let Err(cause) = delete(cluster, found, object, options.write).await {
            progress.file_failure(deleted, &cause);
            progress.not_sent.extend(
                deletes[index + 1..]
                    .iter()
                    .map(|(later, _)| format!("delete {}", later.display_name())),
            );
            progress
                .not_sent
                .extend(restore.is_some().then(|| restored.clone()));
            return Err(progress.into_error(cause));
        }
        run.journal
            .done(&format!("{} deleted{note}", found.display_name()));
        progress.done.push(deleted);
    }
    if let Some((template, from, current)) = restore {
        if sends
            && let Err(cause) = pod_template::put_back(
                cluster,
                current,
                (**template).clone(),
                options.write,
                options.timeout,
            )
            .await
        {
            progress.file_failure(restored, &cause);
            return Err(progress.into_error(cause));
        }
        run.journal.done(&format!(
            "deployment/{} restored from {from} without the Istio sidecar{note}",
            options.deployment
        ));
    }
    Ok(())
}

/// Deletes `object` if it is still the one read (same uid and
/// resourceVersion); already gone counts as deleted. A refusal caused only
/// by a controller writing status (cert-manager does, all the time) is
/// retried against the fresh version; any other change keeps the object.
pub async fn delete(
    cluster: &Cluster,
    found: &Held,
    object: &DynamicObject,
    write: WriteOptions,
) -> Result<()> {
    let action = format!("delete {}", found.display_name());
    let api = api(cluster, &found.resource, &found.namespace);
    let send = async |latest: &DynamicObject| {
        let params = DeleteParams {
            dry_run: write.server_dry_run(),
            preconditions: Some(Preconditions {
                uid: object.metadata.uid.clone(),
                resource_version: latest.metadata.resource_version.clone(),
            }),
            ..DeleteParams::default()
        };
        match cluster.bounded(api.delete(&found.name, &params)).await? {
            Ok(_) => Ok(Some(())),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(Some(())),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(None),
            Err(source) => Err(cluster.classify(&action, source)),
        }
    };
    match unless_changed::write(cluster, &api, (object, &found.display_name()), send).await? {
        Written::Done(()) | Written::Gone => Ok(()),
        Written::Changed { .. } => Err(Error::ChangedBeforeDelete {
            object: found.object_name(),
            namespace: found.namespace.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::defaults;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
        ManagedFieldsEntry, ObjectMeta, OwnerReference,
    };
    use std::collections::BTreeMap;

    fn options() -> UninstallOptions {
        UninstallOptions {
            deployment: defaults::DEPLOYMENT.into(),
            policy: defaults::POLICY.into(),
            secret: defaults::SECRET.into(),
            delete_certificate_secret: false,
            delete_apikey: false,
            backup_dir: None,
            timeout: Duration::from_secs(300),
            yes: false,
            write: WriteOptions::default(),
        }
    }

    fn entry(manager: &str, subresource: Option<&str>) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            subresource: subresource.map(Into::into),
            ..Default::default()
        }
    }

    fn found(owned: Owned, managers: Option<Vec<ManagedFieldsEntry>>) -> Held {
        let resource = owned.resource(&ServedApis::preferred()).unwrap();
        let object = managers.map(|entries| {
            let mut object = DynamicObject::new("kmsgateway", &resource);
            object.metadata.managed_fields = Some(entries);
            object
        });
        Held {
            resource,
            namespace: "kube-system".into(),
            name: "kmsgateway".into(),
            owned,
            object,
        }
    }

    #[test]
    fn only_what_the_plugin_alone_owns_is_deleted() {
        let options = options();
        let cases = [
            (found(owned::GATEWAY_OBJECT, None), "absent"),
            (
                found(
                    owned::GATEWAY_OBJECT,
                    Some(vec![entry(FIELD_MANAGER, None)]),
                ),
                "delete",
            ),
            (
                // A controller writing status does not own the object.
                found(
                    owned::GATEWAY_OBJECT,
                    Some(vec![
                        entry(FIELD_MANAGER, None),
                        entry("cert-manager-certificates", Some("status")),
                    ]),
                ),
                "delete",
            ),
            (
                found(
                    owned::GATEWAY_OBJECT,
                    Some(vec![
                        entry(FIELD_MANAGER, None),
                        entry("kubectl-edit", None),
                    ]),
                ),
                "keep: also owned by kubectl-edit",
            ),
            (
                found(
                    owned::GATEWAY_OBJECT,
                    Some(vec![entry("kubectl-client-side-apply", None)]),
                ),
                "keep: kubectl-kms-sts did not create it",
            ),
            (
                found(
                    owned::API_KEY_SECRET,
                    Some(vec![entry(FIELD_MANAGER, None)]),
                ),
                "keep: other workloads may use the key; --delete-apikey deletes it",
            ),
            (
                found(
                    owned::ISSUED_SECRET,
                    Some(vec![entry("cert-manager", None)]),
                ),
                "keep: cert-manager issued it; --delete-certificate-secret deletes it",
            ),
        ];
        for (found, expected) in cases {
            let described = match fate(&found, &options) {
                Fate::Absent => "absent".to_owned(),
                Fate::Delete { .. } => "delete".to_owned(),
                Fate::Keep { because } => format!("keep: {because}"),
            };
            assert_eq!(described, expected);
        }
        let mut asked = options;
        asked.delete_apikey = true;
        asked.delete_certificate_secret = true;
        for owned in [owned::API_KEY_SECRET, owned::ISSUED_SECRET] {
            let found = found(owned, Some(vec![entry("someone", None)]));
            assert!(matches!(fate(&found, &asked), Fate::Delete { .. }));
        }
    }

    #[test]
    fn the_plan_names_only_the_lacking_permissions_it_needs() {
        let options = options();
        let target = Target::default();
        let scope_needs = permissions::for_uninstall(&Scope::namespaces(&target));
        let lacking = |verb: &str, resource: &str| {
            scope_needs
                .iter()
                .find(|p| p.verb == verb && p.resource == resource)
                .cloned()
                .unwrap()
        };
        let found = Found {
            objects: vec![found(
                owned::GATEWAY_OBJECT,
                Some(vec![entry(FIELD_MANAGER, None)]),
            )],
            deployment: None,
            backup: None,
            backup_dir: PathBuf::from("/nowhere"),
            replica_sets: Vec::new(),
            // The gateway is deleted; nothing is restored.
            lacking: vec![
                lacking("delete", "gateways"),
                lacking("update", "deployments"),
            ],
            scope_needs: scope_needs.clone(),
        };
        let plan = plan(found, &options);
        assert_eq!(plan.sidecar, SidecarFate::NoDeployment);
        assert_eq!(plan.writes(), 1);
        assert_eq!(plan.lacking, vec![lacking("delete", "gateways")]);
    }

    fn replica_set(owner: &str, revision: &str, injected: bool) -> ReplicaSet {
        let mut containers = vec![serde_json::json!({"name": "kms", "image": "kms"})];
        if injected {
            containers.push(serde_json::json!({"name": "istio-proxy", "image": "proxy"}));
        }
        let template: PodTemplateSpec = serde_json::from_value(serde_json::json!({
            "metadata": {"labels": {"app": "kms", "pod-template-hash": revision}},
            "spec": {"containers": containers},
        }))
        .unwrap();
        ReplicaSet {
            metadata: ObjectMeta {
                annotations: Some(BTreeMap::from([(
                    "deployment.kubernetes.io/revision".to_owned(),
                    revision.to_owned(),
                )])),
                owner_references: Some(vec![OwnerReference {
                    uid: owner.into(),
                    controller: Some(true),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            spec: Some(k8s_openapi::api::apps::v1::ReplicaSetSpec {
                template: Some(template),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_newest_earlier_template_without_the_sidecar_is_found() {
        let deployment = Deployment {
            metadata: ObjectMeta {
                uid: Some("d1".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let sets = [
            replica_set("d1", "1", false),
            replica_set("d1", "2", false),
            replica_set("d1", "3", true),
            replica_set("other", "4", false),
        ];
        let (revision, template) = earlier_template(&deployment, &sets).unwrap();
        assert_eq!(revision, 2);
        let labels = template.metadata.unwrap().labels.unwrap();
        assert_eq!(labels, BTreeMap::from([("app".into(), "kms".into())]));
        assert!(earlier_template(&deployment, &sets[2..]).is_none());
    }
}
