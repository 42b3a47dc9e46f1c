//! Injection, the runbook's steps 1-4 without the downtime. The runbook
//! saves the KMS Deployment, runs `istioctl kube-inject`, deletes the
//! Deployment and re-creates it; here the injected pod template replaces the
//! old one in place, so the Deployment rolls its pods over as usual and is
//! never absent.
//!
//! `fetch` reads the permissions, the Deployment and the injector's
//! configuration in one concurrent batch; `plan` decides from that alone
//! (a Deployment that already carries the sidecar is left alone, since
//! kube-inject would add a second one), listing every unmet prerequisite;
//! `apply` saves the original to a backup file, writes the injected
//! template, awaits the rollout and checks every new pod for the sidecar. A
//! rollout that fails or times out is undone by restoring the original.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PodTemplateSpec};
use kube::Api;

use crate::cluster::apply::WriteOptions;
use crate::cluster::permissions::{self, Command, Scope};
use crate::cluster::pod_template::{self, Sidecar};
use crate::cluster::rollout;
use crate::cluster::run::Run;
use crate::cluster::{Cluster, Target};
use crate::error::{Error, Result};
use crate::files::backup;
use crate::istioctl::{self, InjectorConfig};
use crate::terminal::output;
use crate::terminal::wording::count;
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
    /// A missing one is an unmet prerequisite.
    config: Result<InjectorConfig>,
    istioctl: Result<PathBuf>,
}

/// What injection will do.
pub enum Plan {
    /// The Deployment already carries the sidecar: nothing to write, but an
    /// earlier run may have been cut off during its rollout.
    AlreadyInjected(Deployment),
    /// Inject the Deployment with the cluster's injector configuration.
    Inject {
        original: Deployment,
        config: InjectorConfig,
        istioctl: PathBuf,
    },
}

/// Reads what injection depends on: the Deployment and the injector
/// configuration. A user who lacks a permission it needs is told so, with
/// every missing one, before anything else.
pub async fn fetch(run: Run<'_>, options: &InjectOptions) -> Result<Found> {
    let Run {
        cluster,
        target,
        write,
        ..
    } = run;
    let config = async {
        match injector_config(cluster, &target.istio_namespace).await {
            Ok(config) => Ok(Ok(config)),
            Err(missing @ Error::Missing { .. }) => Ok(Err(missing)),
            Err(other) => Err(other),
        }
    };
    let (deployment, config) =
        read_deployment_with(cluster, target, options, write, config).await?;
    Ok(Found {
        deployment,
        config,
        istioctl: istioctl::locate(options.istioctl.as_deref()),
    })
}

/// Reads the Deployment alone, for `--undo`: the backup holds the rest.
pub async fn fetch_for_undo(run: Run<'_>, options: &InjectOptions) -> Result<Option<Deployment>> {
    let Run {
        cluster,
        target,
        write,
        ..
    } = run;
    let (deployment, ()) =
        read_deployment_with(cluster, target, options, write, async { Ok(()) }).await?;
    Ok(deployment)
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
    let needs = permissions::for_writes(&permissions::for_inject(&Scope::of(target, None)), write);
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
    if sidecar::template_is_injected(&pod_template::of(&original)) {
        return Ok(Plan::AlreadyInjected(original));
    }
    match (found.config, found.istioctl) {
        (Ok(config), Ok(istioctl)) => Ok(Plan::Inject {
            original,
            config,
            istioctl,
        }),
        (config, istioctl) => Err(Error::together(
            [istioctl.err(), config.err()]
                .into_iter()
                .flatten()
                .collect(),
        )),
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
    let Run {
        cluster,
        target,
        write,
        ..
    } = run;
    let namespace = &target.kms_namespace;
    let name = &options.deployment;
    let (original, config, istioctl) = match plan {
        Plan::AlreadyInjected(original) => {
            if write.dry_run.is_none() {
                rollout::wait(cluster, namespace, name, options.timeout).await?;
                let pods =
                    pod_template::live_pods_all(cluster, &original, Sidecar::Present).await?;
                eprintln!(
                    "deployment/{name} already carries the Istio sidecar: {} it",
                    count(pods as i64, "pod runs", "pods run")
                );
            } else {
                eprintln!("deployment/{name} already carries the Istio sidecar; nothing to do");
            }
            return Ok(());
        }
        Plan::Inject {
            original,
            config,
            istioctl,
        } => (original, config, istioctl),
    };
    let original_template = pod_template::of(&original);
    let injected = istioctl::kube_inject(
        &istioctl,
        target,
        &sidecar::injection_input(&original),
        &config,
    )
    .await?;
    let injected_template = pod_template::of(&injected);
    if !sidecar::template_is_injected(&injected_template) {
        return Err(Error::ToolFailed {
            tool: "istioctl",
            detail: "kube-inject returned the Deployment without an istio-proxy container".into(),
        });
    }
    if write.dry_run.is_some() {
        let shown = pod_template::replace(cluster, &original, injected_template, write).await?;
        print_object(&shown, write)?;
        eprintln!("deployment/{name} injected{}", write.dry_run_note());
        return Ok(());
    }

    let backup_path = save_backup(cluster, options, &original)?;
    eprintln!(
        "original deployment/{name} saved to {}",
        backup_path.display()
    );
    let applied = pod_template::replace(cluster, &original, injected_template, write).await?;
    let verified = match rollout::wait(cluster, namespace, name, options.timeout).await {
        Ok(_) => pod_template::live_pods_all(cluster, &applied, Sidecar::Present).await,
        Err(err) => Err(err),
    };
    let cause = match verified {
        Ok(pods) => {
            print_object(&applied, write)?;
            eprintln!("deployment/{name} injected: {pods} pods run the istio-proxy sidecar");
            return Ok(());
        }
        Err(cause) if options.no_rollback => return Err(cause),
        Err(cause) => cause,
    };
    match roll_back(cluster, namespace, name, original_template).await {
        Ok(()) => Err(Error::RolledBack {
            what: format!("injecting deployment {namespace}/{name} failed"),
            cause: Box::new(cause),
        }),
        Err(rollback) => Err(Error::Incomplete {
            done: vec![
                format!("original saved to {}", backup_path.display()),
                format!("deployment {namespace}/{name} updated with the sidecar"),
            ],
            not_done: vec![
                "rollout confirmed".into(),
                format!("rollback to the original ({rollback})"),
            ],
            cause: Box::new(cause),
        }),
    }
}

/// Saves the Deployment as read to a backup file, without the server's
/// bookkeeping.
fn save_backup(
    cluster: &Cluster,
    options: &InjectOptions,
    original: &Deployment,
) -> Result<PathBuf> {
    let mut saved = original.clone();
    saved.metadata.managed_fields = None;
    saved.status = None;
    backup::save(
        &options.backup_dir(cluster),
        "Deployment",
        saved.metadata.namespace.as_deref().unwrap_or_default(),
        &options.deployment,
        &output::render(&saved, output::Format::Yaml),
    )
}

/// Puts the original pod template back after a failed injection, on the
/// Deployment as it is now (the controllers have moved it on since).
async fn roll_back(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    template: PodTemplateSpec,
) -> Result<()> {
    let deployments: Api<Deployment> = Api::namespaced(cluster.client(), namespace);
    let action = format!("read deployment {namespace}/{name}");
    let current = cluster.call(&action, deployments.get(name)).await?;
    pod_template::replace(cluster, &current, template, WriteOptions::default()).await?;
    Ok(())
}

/// `--undo`: puts back the pod template of the newest backup and waits for
/// the rollout, so the sidecar is removed by the same rolling update.
pub async fn undo(
    run: Run<'_>,
    options: &InjectOptions,
    deployment: Option<Deployment>,
) -> Result<()> {
    let Run {
        cluster,
        target,
        write,
        ..
    } = run;
    let Some(current) = &deployment else {
        return Err(missing_deployment(target, options));
    };
    let backup_dir = &options.backup_dir(cluster);
    let namespace = current.metadata.namespace.clone().unwrap_or_default();
    let name = &options.deployment;
    if !sidecar::template_is_injected(&pod_template::of(current)) {
        eprintln!("deployment/{name} carries no Istio sidecar; nothing to undo");
        return Ok(());
    }
    let (path, template) =
        backed_up_template(backup_dir, &namespace, name)?.ok_or_else(|| Error::Missing {
            kind: "backup of Deployment",
            namespace: namespace.clone(),
            name: name.clone(),
            hint: format!(
                "no backup in {}; name the directory with --backup-dir",
                backup_dir.display()
            ),
        })?;
    let restored =
        pod_template::put_back(cluster, current, template, write, options.timeout).await?;
    print_object(&restored, write)?;
    eprintln!(
        "deployment/{name} restored from {}{}",
        path.display(),
        write.dry_run_note()
    );
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

fn print_object(deployment: &Deployment, write: WriteOptions) -> Result<()> {
    let Some(format) = write.output else {
        return Ok(());
    };
    let mut shown = deployment.clone();
    shown.metadata.managed_fields = None;
    output::print(&output::render(&shown, format))
}

/// The cluster's injector configuration; both ConfigMaps come with Istio.
pub async fn injector_config(cluster: &Cluster, namespace: &str) -> Result<InjectorConfig> {
    let configmaps: Api<ConfigMap> = Api::namespaced(cluster.client(), namespace);
    let read = async |name: &str, keys: &[&str]| -> Result<Vec<String>> {
        let found = cluster
            .call(
                &format!("read configmap {namespace}/{name}"),
                configmaps.get_opt(name),
            )
            .await?;
        let data = found.and_then(|cm| cm.data).unwrap_or_default();
        keys.iter()
            .map(|key| {
                data.get(*key).cloned().ok_or_else(|| Error::Missing {
                    kind: "ConfigMap",
                    namespace: namespace.to_owned(),
                    name: format!("{name} (key {key})"),
                    hint: "Istio's injector configuration is missing: is Istio installed in \
                           --istio-namespace?"
                        .into(),
                })
            })
            .collect()
    };
    let (injector, mesh) = tokio::try_join!(
        read("istio-sidecar-injector", &["config", "values"]),
        read("istio", &["mesh"]),
    )?;
    let [template, values] = <[String; 2]>::try_from(injector).expect("two keys asked");
    let [mesh] = <[String; 1]>::try_from(mesh).expect("one key asked");
    Ok(InjectorConfig {
        template,
        values,
        mesh,
    })
}
