//! Injection, the runbook's steps 1-4 without the downtime. The runbook
//! saves the KMS Deployment, runs `istioctl kube-inject`, deletes the
//! Deployment and re-creates it; here the injected pod template replaces the
//! old one in place, so the Deployment rolls its pods over as usual and is
//! never absent.
//!
//! `fetch` reads the permissions, the Deployment and the control planes
//! installed in one concurrent batch, chooses the revision, then has
//! `istioctl kube-inject` inject the Deployment: its own template when it
//! has no sidecar, the never-injected template its injection recorded when
//! its sidecar is stale (the revision's injector changed since, after an
//! in-place Istio upgrade, or another revision is asked for). A sidecar
//! that is current is left alone (kube-inject would add a second one).
//! `plan` decides from that alone and holds the injected Deployment, so its
//! field changes can be shown, or lists every unmet prerequisite; `apply`
//! saves the original to a backup file (not on a refresh: the first one
//! stays), writes the injected template, awaits the rollout and checks every
//! new pod for the sidecar. A rollout that fails or times out is undone by
//! restoring what was there before. `--undo` has the same three parts:
//! the Deployment and its newest backup, a plan, the rollout back.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::Api;

use crate::cluster::apply::{self, FieldChange, WriteOptions};
use crate::cluster::injector;
use crate::cluster::permissions::{self, Command, Scope};
use crate::cluster::pod_template::{self, Sidecar};
use crate::cluster::rollout;
use crate::cluster::run::Run;
use crate::cluster::{Cluster, Target};
use crate::error::{Error, Result, Unfinished};
use crate::files::backup;
use crate::istioctl::{self, InjectorConfig};
use crate::objects::injection_record::{self, Record};
use crate::objects::place::without_managed_fields;
use crate::terminal::output;
use crate::terminal::wording::count;
use crate::values::revision::DEFAULT_REVISION;
use crate::values::sidecar;

/// What `inject` is asked to do.
#[derive(Debug, Clone)]
pub struct InjectOptions {
    /// The KMS Deployment, in the KMS namespace.
    pub deployment: String,
    /// istioctl to run; the first on PATH when absent.
    pub istioctl: Option<PathBuf>,
    /// Where the original is saved; the default directory of the context when absent.
    pub backup_dir: Option<PathBuf>,
    /// The control plane's revision whose injector to use; when absent, the
    /// one `cluster::injector` chooses (the Deployment's own, the default
    /// tag's, the only one installed).
    pub revision: Option<String>,
    /// How long the rollout may take.
    pub timeout: Duration,
    /// Leave a failed rollout as it is instead of restoring the original.
    pub no_rollback: bool,
}

impl InjectOptions {
    pub fn backup_dir(&self, cluster: &Cluster) -> PathBuf {
        self.backup_dir
            .clone()
            .unwrap_or_else(|| backup::default_dir(cluster.context()))
    }
}

/// What the cluster (and this machine) hold that injection depends on.
pub struct Found {
    deployment: Option<Deployment>,
    /// The Deployment as `istioctl kube-inject` makes it now with the
    /// revision's injector configuration: from its template, when it has
    /// no sidecar; from the never-injected template its injection recorded,
    /// when it was injected from another configuration or revision. `None`
    /// when the sidecar it carries is current (or was not injected by this
    /// plugin, so no never-injected template is known). A missing
    /// configuration or istioctl is an unmet prerequisite.
    injected: Result<Option<Deployment>>,
}

/// What injection will do.
pub enum Plan {
    /// The Deployment already carries the sidecar the revision injects now:
    /// nothing to write, but an earlier run may have been cut off during
    /// its rollout.
    AlreadyInjected(Box<Deployment>),
    /// Replace the pod template of `original` with the one of `injected`.
    Inject {
        original: Box<Deployment>,
        injected: Box<Deployment>,
    },
    /// The sidecar of `current` is stale (the revision's injector changed
    /// since, or another revision is asked for): replace its template with
    /// `refreshed`, the never-injected template injected again now.
    Refresh {
        current: Box<Deployment>,
        refreshed: Box<Deployment>,
    },
}

impl Plan {
    /// What writing the plan changes in the Deployment, field by field.
    pub fn changes(&self) -> Vec<FieldChange> {
        let (before, after) = match self {
            Plan::AlreadyInjected(_) => return Vec::new(),
            Plan::Inject { original, injected } => (original, injected),
            Plan::Refresh { current, refreshed } => (current, refreshed),
        };
        let value = |deployment: &Deployment| {
            serde_json::json!({
                "metadata": {"annotations": deployment.metadata.annotations},
                "spec": {"template": pod_template::of(deployment)},
            })
        };
        apply::field_changes(&value(before), &value(after), "")
    }

    /// For a refresh, what it changes: `istio-proxy OLD -> NEW, revision R`.
    pub fn refresh(&self) -> Option<String> {
        match self {
            Plan::Refresh { current, refreshed } => Some(proxy_change(current, refreshed)),
            Plan::AlreadyInjected(_) | Plan::Inject { .. } => None,
        }
    }
}

/// Reads what injection depends on: the Deployment and the control planes
/// installed, then injects from the revision chosen. A user who lacks a permission it needs is told so, with
/// every missing one, before anything else.
pub async fn fetch(run: Run<'_>, options: &InjectOptions) -> Result<Found> {
    let Run {
        cluster,
        target,
        write,
        ..
    } = run;
    let planes = injector::read(cluster, &target.istio_namespace);
    let (deployment, planes) =
        read_deployment_with(cluster, target, options, write, planes).await?;
    let config = planes
        .choose(
            options.revision.as_deref(),
            deployment
                .as_ref()
                .and_then(injection_record::injected_revision)
                .as_deref(),
        )
        .and_then(|(revision, _)| planes.config(&revision));
    let source = deployment
        .as_ref()
        .map(|d| source_of(d, config.as_ref().ok()))
        .transpose()?;
    let original = match source {
        Some(Source::Template(original) | Source::Stale(original)) => original,
        None | Some(Source::Current | Source::Unrecorded) => {
            return Ok(Found {
                deployment,
                injected: Ok(None),
            });
        }
    };
    let injected = match (config, istioctl::locate(options.istioctl.as_deref())) {
        (Ok(config), Ok(istioctl)) => {
            Ok(Some(inject(&istioctl, target, &original, &config).await?))
        }
        (config, istioctl) => Err(Error::together(
            [istioctl.err(), config.err()]
                .into_iter()
                .flatten()
                .collect(),
        )),
    };
    Ok(Found {
        deployment,
        injected,
    })
}

/// What injection starts from.
enum Source {
    /// The Deployment has no sidecar: its own template.
    Template(Deployment),
    /// Its sidecar came from another injector configuration or revision:
    /// the Deployment with the never-injected template its injection
    /// recorded.
    Stale(Deployment),
    /// Its sidecar is what `config` injects now.
    Current,
    /// It carries a sidecar this plugin did not record injecting.
    Unrecorded,
}

/// Where injecting `deployment` with `config` (`None`: the revision's
/// configuration is missing) starts from. A recorded template that no longer
/// matches what the Deployment carries (another client changed its
/// containers since) is refused: injecting it again would undo that change.
fn source_of(deployment: &Deployment, config: Option<&InjectorConfig>) -> Result<Source> {
    let template = pod_template::of(deployment);
    if !sidecar::template_is_injected(&template) {
        return Ok(Source::Template(deployment.clone()));
    }
    let refused = |reason: String| Error::UnrestorableRecord {
        namespace: deployment.metadata.namespace.clone().unwrap_or_default(),
        name: deployment.metadata.name.clone().unwrap_or_default(),
        reason,
    };
    let Some(record) = injection_record::recorded(deployment).map_err(refused)? else {
        return Ok(Source::Unrecorded);
    };
    if config.is_some_and(|config| {
        config.revision == record.revision && config.fingerprint() == record.fingerprint
    }) {
        return Ok(Source::Current);
    }
    injection_record::check(&record.original, &template, None).map_err(refused)?;
    Ok(Source::Stale(pod_template::with_template(
        deployment,
        record.original,
    )))
}

/// `original` with the pod template `istioctl kube-inject` makes of it, and
/// the record of what it was made from.
async fn inject(
    istioctl: &Path,
    target: &Target,
    original: &Deployment,
    config: &InjectorConfig,
) -> Result<Deployment> {
    let input = sidecar::injection_input(original);
    let injected = istioctl::kube_inject(istioctl, target, &input, config).await?;
    let template = pod_template::of(&injected);
    if !sidecar::template_is_injected(&template) {
        return Err(Error::ToolFailed {
            tool: "istioctl",
            detail: "kube-inject returned the Deployment without an istio-proxy container".into(),
        });
    }
    let record = Record {
        revision: config.revision.clone(),
        fingerprint: config.fingerprint(),
        inputs: Some(config.inputs.clone()).filter(|inputs| !inputs.is_empty()),
        original: pod_template::of(original),
    };
    Ok(injection_record::with_record(
        pod_template::with_template(original, template),
        &record,
    ))
}

/// What `--undo` decides on: the Deployment, and the newest backup of it.
pub struct UndoFound {
    deployment: Option<Deployment>,
    backup: Option<(PathBuf, PodTemplateSpec)>,
    backup_dir: PathBuf,
}

/// What `--undo` will do.
pub enum UndoPlan {
    NotInjected,
    /// Put back the pod template from before injection, found where `from`
    /// says.
    Restore {
        current: Box<Deployment>,
        template: Box<PodTemplateSpec>,
        from: String,
    },
}

/// Reads the Deployment, for `--undo`, and the newest backup of it.
pub async fn fetch_for_undo(run: Run<'_>, options: &InjectOptions) -> Result<UndoFound> {
    let Run {
        cluster,
        target,
        write,
        ..
    } = run;
    let backup_dir = options.backup_dir(cluster);
    let (deployment, ()) =
        read_deployment_with(cluster, target, options, write, async { Ok(()) }).await?;
    let backup = backed_up_template(&backup_dir, &target.kms_namespace, &options.deployment)?;
    Ok(UndoFound {
        deployment,
        backup,
        backup_dir,
    })
}

/// What `--undo` will do, or why it cannot.
pub fn plan_undo(found: UndoFound, target: &Target, options: &InjectOptions) -> Result<UndoPlan> {
    let Some(current) = found.deployment else {
        return Err(missing_deployment(target, options));
    };
    if !sidecar::template_is_injected(&pod_template::of(&current)) {
        return Ok(UndoPlan::NotInjected);
    }
    let (template, from) = match original_template(&current, found.backup)? {
        Some(found) => found,
        None => {
            return Err(Error::Missing {
                kind: "backup of Deployment",
                namespace: target.kms_namespace.clone(),
                name: options.deployment.clone(),
                hint: format!(
                    "it carries no record of its injection and there is no backup in {}; name \
                     the directory with --backup-dir",
                    found.backup_dir.display()
                ),
            });
        }
    };
    Ok(UndoPlan::Restore {
        current: Box::new(current),
        template: Box::new(template),
        from,
    })
}

/// The pod template `deployment` had before injection, and where it was
/// found: the record its injection left on it (checked against `backup` and
/// against the Deployment), else the backup; `None` without either.
pub fn original_template(
    deployment: &Deployment,
    backup: Option<(PathBuf, PodTemplateSpec)>,
) -> Result<Option<(PodTemplateSpec, String)>> {
    let refused = |reason: String| Error::UnrestorableRecord {
        namespace: deployment.metadata.namespace.clone().unwrap_or_default(),
        name: deployment.metadata.name.clone().unwrap_or_default(),
        reason,
    };
    let Some(record) = injection_record::recorded(deployment).map_err(refused)? else {
        return Ok(
            backup.map(|(path, template)| (template, format!("the backup {}", path.display())))
        );
    };
    let current = pod_template::of(deployment);
    let backup_template = backup.as_ref().map(|(_, template)| template);
    injection_record::check(&record.original, &current, backup_template).map_err(refused)?;
    let from = match &backup {
        Some((path, _)) => format!(
            "the template its injection recorded (the same as the backup {})",
            path.display()
        ),
        None => "the template its injection recorded".to_owned(),
    };
    Ok(Some((record.original, from)))
}

/// Reads the Deployment together with `also` and the permission reviews of
/// `inject`.
async fn read_deployment_with<T>(
    cluster: &Cluster,
    target: &Target,
    options: &InjectOptions,
    write: WriteOptions,
    also: impl Future<Output = Result<T>>,
) -> Result<(Option<Deployment>, T)> {
    let namespace = &target.kms_namespace;
    let needs =
        permissions::for_writes(&permissions::for_inject(&Scope::namespaces(target)), write);
    let deployments: Api<Deployment> = Api::namespaced(cluster.client(), namespace);
    let read_deployment = format!("read deployment {namespace}/{}", options.deployment);
    let reads = async {
        tokio::try_join!(
            cluster.call(&read_deployment, deployments.get_opt(&options.deployment)),
            also,
        )
    };
    permissions::reads_allowed(cluster, Command::Inject, &needs, reads).await
}

/// What injection will do, or every prerequisite that is not met.
pub fn plan(found: Found, target: &Target, options: &InjectOptions) -> Result<Plan> {
    let Some(original) = found.deployment else {
        return Err(missing_deployment(target, options));
    };
    match found.injected? {
        Some(refreshed) if sidecar::template_is_injected(&pod_template::of(&original)) => {
            Ok(Plan::Refresh {
                current: Box::new(original),
                refreshed: Box::new(refreshed),
            })
        }
        Some(injected) => Ok(Plan::Inject {
            original: Box::new(original),
            injected: Box::new(injected),
        }),
        None => Ok(Plan::AlreadyInjected(Box::new(original))),
    }
}

fn missing_deployment(target: &Target, options: &InjectOptions) -> Error {
    Error::Missing {
        kind: "Deployment",
        namespace: target.kms_namespace.clone(),
        name: options.deployment.clone(),
        hint: "name the KMS Deployment with --deployment, or its namespace with --kms-namespace"
            .into(),
    }
}

/// Carries out the plan, as `write` says.
pub async fn apply(run: Run<'_>, options: &InjectOptions, plan: Plan) -> Result<()> {
    let (before, after) = match plan {
        Plan::AlreadyInjected(current) => return already_injected(run, options, &current).await,
        Plan::Inject { original, injected } => (*original, *injected),
        Plan::Refresh { current, refreshed } => (*current, *refreshed),
    };
    let Run {
        cluster,
        target,
        write,
        journal,
        ..
    } = run;
    let namespace = &target.kms_namespace;
    let name = &options.deployment;
    // A refresh starts from a Deployment that already has the sidecar; its
    // backup, from before the first injection, stays the one to keep.
    let refresh = sidecar::template_is_injected(&pod_template::of(&before));
    let verb = if refresh {
        format!("refreshed ({})", proxy_change(&before, &after))
    } else {
        "injected".to_owned()
    };
    if write.dry_run.is_some() {
        let shown = pod_template::replace(cluster, &before, after, write).await?;
        show_object(&shown, run)?;
        journal.done(&format!("deployment/{name} {verb}{}", write.dry_run_note()));
        return Ok(());
    }
    if !refresh {
        let backup_path = save_backup(cluster, options, &before)?;
        journal.done(&format!(
            "original deployment/{name} saved to {}",
            backup_path.display()
        ));
    }
    let written = format!("deployment {namespace}/{name} {verb}");
    let applied = match pod_template::replace(cluster, &before, after, write).await {
        Ok(applied) => applied,
        Err(cause) => {
            return Err(Unfinished::within(
                Vec::new(),
                Unfinished::of(written, cause),
                Vec::new(),
            ));
        }
    };
    let verified = match rollout::wait(cluster, namespace, name, options.timeout).await {
        Ok(_) => pod_template::live_pods_all(cluster, &applied, Sidecar::Present).await,
        Err(err) => Err(err),
    };
    let cause = match verified {
        Ok(pods) => {
            show_object(&applied, run)?;
            journal.done(&format!(
                "deployment/{name} {verb}: {pods} pods run the istio-proxy sidecar"
            ));
            return Ok(());
        }
        Err(cause) if options.no_rollback => return Err(cause),
        Err(cause) => cause,
    };
    match roll_back(cluster, namespace, name, &before).await {
        Ok(()) => Err(Error::RolledBack {
            what: format!(
                "{} deployment {namespace}/{name} failed",
                if refresh { "refreshing" } else { "injecting" }
            ),
            cause: Box::new(cause),
        }),
        Err(rollback) => {
            let mut progress = Unfinished {
                done: vec![written],
                ..Unfinished::default()
            };
            progress.file_failure(
                format!(
                    "rollback of deployment {namespace}/{name} to the template before ({rollback})"
                ),
                &rollback,
            );
            Err(progress.into_error(cause))
        }
    }
}

/// A Deployment whose sidecar is current: nothing is written, but an
/// earlier run may have been cut off during its rollout, so that is awaited
/// and every pod checked.
async fn already_injected(
    run: Run<'_>,
    options: &InjectOptions,
    current: &Deployment,
) -> Result<()> {
    let name = &options.deployment;
    if run.write.dry_run.is_some() {
        run.journal.done(&format!(
            "deployment/{name} already carries the Istio sidecar; nothing to do"
        ));
        return Ok(());
    }
    let namespace = &run.target.kms_namespace;
    rollout::wait(run.cluster, namespace, name, options.timeout).await?;
    let pods = pod_template::live_pods_all(run.cluster, current, Sidecar::Present).await?;
    run.journal.done(&format!(
        "deployment/{name} already carries the Istio sidecar: {} it",
        count(pods as i64, "pod runs", "pods run")
    ));
    Ok(())
}

/// `istio-proxy OLD -> NEW, revision R`: what a refresh changes.
fn proxy_change(before: &Deployment, after: &Deployment) -> String {
    let image = |deployment: &Deployment| {
        sidecar::template_proxy_image(&pod_template::of(deployment))
            .unwrap_or("(no image)")
            .to_owned()
    };
    let revision = injection_record::recorded(after)
        .ok()
        .flatten()
        .map(|record| record.revision)
        .unwrap_or_else(|| DEFAULT_REVISION.to_owned());
    format!(
        "istio-proxy {} -> {}, revision {revision}",
        image(before),
        image(after)
    )
}

/// Saves the Deployment as read to a backup file, without the server's
/// bookkeeping.
fn save_backup(
    cluster: &Cluster,
    options: &InjectOptions,
    original: &Deployment,
) -> Result<PathBuf> {
    let saved = pod_template::as_written(original);
    backup::save(
        &options.backup_dir(cluster),
        "Deployment",
        saved.metadata.namespace.as_deref().unwrap_or_default(),
        &options.deployment,
        &output::render(&saved, output::Format::Yaml),
    )
}

/// Puts the pod template and injection record of `before` back after a
/// failed write, on the Deployment as it is now (the controllers have moved
/// it on since).
async fn roll_back(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    before: &Deployment,
) -> Result<()> {
    let deployments: Api<Deployment> = Api::namespaced(cluster.client(), namespace);
    let action = format!("read deployment {namespace}/{name}");
    let current = cluster.call(&action, deployments.get(name)).await?;
    let template = pod_template::with_template(&current, pod_template::of(before));
    let restored = match injection_record::recorded(before) {
        Ok(Some(record)) => injection_record::with_record(template, &record),
        _ => injection_record::cleared(template),
    };
    pod_template::replace(cluster, &current, restored, WriteOptions::default()).await?;
    Ok(())
}

/// `--undo`: puts back the pod template of the newest backup and waits for
/// the rollout, so the sidecar is removed by the same rolling update.
pub async fn undo(run: Run<'_>, options: &InjectOptions, plan: UndoPlan) -> Result<()> {
    let name = &options.deployment;
    let UndoPlan::Restore {
        current,
        template,
        from,
    } = plan
    else {
        run.journal.done(&format!(
            "deployment/{name} carries no Istio sidecar; nothing to undo"
        ));
        return Ok(());
    };
    let restored =
        pod_template::put_back(run.cluster, &current, *template, run.write, options.timeout)
            .await?;
    show_object(&restored, run)?;
    run.journal.done(&format!(
        "deployment/{name} restored from {from}{}",
        run.write.dry_run_note()
    ));
    Ok(())
}

/// The pod template of the newest backup of the Deployment in `dir`, which
/// must be a Deployment manifest without the sidecar; `None` without backup.
pub fn backed_up_template(
    dir: &Path,
    namespace: &str,
    name: &str,
) -> Result<Option<(PathBuf, PodTemplateSpec)>> {
    let Some(path) = backup::newest(dir, "Deployment", namespace, name)? else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&path).map_err(|source| Error::LocalFile {
        action: "read",
        path: path.clone(),
        source,
    })?;
    let saved: Deployment = serde_saphyr::from_str(&text).map_err(|err| Error::InvalidBackup {
        path: path.clone(),
        reason: format!("it is not a Deployment manifest: {err}"),
    })?;
    let template = pod_template::of(&saved);
    if sidecar::template_is_injected(&template) {
        return Err(Error::InvalidBackup {
            path,
            reason: "it carries the sidecar too".into(),
        });
    }
    Ok(Some((path, template)))
}

/// Hands the Deployment as written to the journal, when `-o` asked for it.
fn show_object(deployment: &Deployment, run: Run<'_>) -> Result<()> {
    let Some(format) = run.write.output else {
        return Ok(());
    };
    let shown = without_managed_fields(deployment.clone());
    run.journal.objects(&output::render(&shown, format))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(containers: &[&str]) -> Deployment {
        let containers: Vec<serde_json::Value> = containers
            .iter()
            .map(|name| serde_json::json!({"name": name, "image": name}))
            .collect();
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "key-management-api", "namespace": "kube-system"},
            "spec": {
                "selector": {"matchLabels": {"app": "kms"}},
                "template": {
                    "metadata": {"labels": {"app": "kms"}},
                    "spec": {"containers": containers},
                },
            },
        }))
        .unwrap()
    }

    fn options() -> InjectOptions {
        InjectOptions {
            deployment: "key-management-api".into(),
            istioctl: None,
            backup_dir: None,
            revision: None,
            timeout: Duration::from_secs(60),
            no_rollback: false,
        }
    }

    #[test]
    fn the_plan_holds_the_injected_deployment_and_shows_what_changes() {
        let target = Target::default();
        let plain = deployment(&["kms"]);
        let found = Found {
            deployment: Some(plain.clone()),
            injected: Ok(Some(deployment(&["kms", "istio-proxy"]))),
        };
        let planned = plan(found, &target, &options()).unwrap();
        let changes: Vec<String> = planned.changes().iter().map(|c| c.path.clone()).collect();
        assert_eq!(changes, ["spec.template.spec.containers"]);
        assert!(matches!(&planned, Plan::Inject { original, .. } if **original == plain));

        let carrying = deployment(&["kms", "istio-proxy"]);
        let found = Found {
            deployment: Some(carrying),
            injected: Ok(None),
        };
        let planned = plan(found, &target, &options()).unwrap();
        assert!(planned.changes().is_empty());
        assert!(matches!(planned, Plan::AlreadyInjected(_)));

        let absent = Found {
            deployment: None,
            injected: Ok(None),
        };
        let err = plan(absent, &target, &options()).err().unwrap();
        assert!(err.to_string().contains("key-management-api"), "{err}");

        let unconfigured = Found {
            deployment: Some(plain),
            injected: Err(Error::ToolFailed {
                tool: "istioctl",
                detail: "not found".into(),
            }),
        };
        assert!(plan(unconfigured, &target, &options()).is_err());
    }

    #[test]
    fn undo_restores_from_the_backup_or_says_where_none_was_found() {
        let target = Target::default();
        let found = |deployment: Deployment, backup: bool| UndoFound {
            deployment: Some(deployment),
            backup: backup.then(|| {
                let plain = pod_template::of(&self::deployment(&["kms"]));
                (PathBuf::from("/backups/kms.yaml"), plain)
            }),
            backup_dir: PathBuf::from("/backups"),
        };
        let plain = plan_undo(found(deployment(&["kms"]), true), &target, &options()).unwrap();
        assert!(matches!(plain, UndoPlan::NotInjected));
        let injected = deployment(&["kms", "istio-proxy"]);
        let restore = plan_undo(found(injected.clone(), true), &target, &options()).unwrap();
        assert!(
            matches!(restore, UndoPlan::Restore { from, .. } if from == "the backup /backups/kms.yaml")
        );
        let err = plan_undo(found(injected, false), &target, &options())
            .err()
            .unwrap();
        let hint = err.hint().unwrap_or_default();
        assert!(hint.contains("no backup in /backups"), "{hint}");
    }

    fn config(revision: &str, values: &str) -> InjectorConfig {
        InjectorConfig {
            revision: revision.into(),
            template: "template".into(),
            values: values.into(),
            mesh: "mesh".into(),
            inputs: "istio-sidecar-injector@1,istio@1".into(),
        }
    }

    /// `deployment(containers)` injected from `config`, its never-injected
    /// template recorded.
    fn injected_from(config: &InjectorConfig, containers: &[&str]) -> Deployment {
        let original = deployment(containers);
        let mut carrying: Vec<&str> = containers.to_vec();
        carrying.push("istio-proxy");
        let record = Record {
            revision: config.revision.clone(),
            fingerprint: config.fingerprint(),
            inputs: Some(config.inputs.clone()),
            original: pod_template::of(&original),
        };
        injection_record::with_record(deployment(&carrying), &record)
    }

    #[test]
    fn a_sidecar_from_another_configuration_or_revision_is_refreshed_from_the_recorded_template() {
        let old = config("default", r#"{"global": {"tag": "1.30.4"}}"#);
        let injected = injected_from(&old, &["kms"]);
        assert!(matches!(
            source_of(&injected, Some(&old)).unwrap(),
            Source::Current
        ));
        let never_injected = pod_template::of(&deployment(&["kms"]));
        let upgraded = config("default", r#"{"global": {"tag": "1.31.2"}}"#);
        let canary = config("canary", r#"{"global": {"tag": "1.30.4"}}"#);
        for now in [Some(&upgraded), Some(&canary), None] {
            let Source::Stale(start) = source_of(&injected, now).unwrap() else {
                panic!("not refreshed from the recorded template");
            };
            assert_eq!(pod_template::of(&start), never_injected);
        }
        let plain = deployment(&["kms"]);
        assert!(
            matches!(source_of(&plain, Some(&old)).unwrap(), Source::Template(d) if d == plain)
        );
        let by_hand = deployment(&["kms", "istio-proxy"]);
        assert!(matches!(
            source_of(&by_hand, Some(&upgraded)).unwrap(),
            Source::Unrecorded
        ));

        // Another client changed the KMS container since: refreshing from
        // the record would take that change back.
        let mut changed = injected.clone();
        let spec = changed
            .spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap();
        spec.containers[0].image = Some("kms:2".into());
        let Err(err) = source_of(&changed, Some(&upgraded)) else {
            panic!("a changed Deployment was refreshed");
        };
        assert!(err.to_string().contains("kms -> kms:2"), "{err}");

        // The plan of a stale sidecar is a refresh, showing what changes.
        let found = Found {
            deployment: Some(injected.clone()),
            injected: Ok(Some(injected_from(&upgraded, &["kms"]))),
        };
        let planned = plan(found, &Target::default(), &options()).unwrap();
        assert!(matches!(planned, Plan::Refresh { .. }));
        let changes: Vec<String> = planned.changes().iter().map(|c| c.path.clone()).collect();
        assert_eq!(
            changes,
            [format!(
                "metadata.annotations[{:?}]",
                injection_record::FINGERPRINT
            )]
        );
    }
}
