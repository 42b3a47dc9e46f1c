//! `inject`: the runbook's steps 1-4 without the downtime. The runbook saves
//! the KMS Deployment, runs `istioctl kube-inject`, deletes the Deployment and
//! re-creates it; here the injected pod template replaces the old one in
//! place, so the Deployment rolls its pods over as usual and is never absent.
//!
//! Before the write the original is saved to a backup file. After it, the
//! rollout is awaited and every new pod checked for the sidecar; a rollout
//! that fails or times out is undone by restoring the original template.
//! A Deployment that already carries the sidecar is left alone, since
//! kube-inject would add a second one.

use std::path::PathBuf;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodTemplateSpec};
use kube::Api;
use kube::api::PostParams;

use crate::apply::DryRun;
use crate::backup;
use crate::cli::InjectArgs;
use crate::cluster::{Cluster, Target};
use crate::error::{Error, Result};
use crate::istioctl::{self, InjectorConfig};
use crate::output;
use crate::permissions::{self, Scope};
use crate::rollout::{self, FIELD_MANAGER};
use crate::sidecar;
use crate::wording::count;

pub async fn run(target: &Target, args: &InjectArgs) -> Result<()> {
    let cluster = Cluster::connect(target).await?;
    inject(&cluster, target, args).await
}

/// The whole command over `cluster` (the wizard passes its own).
pub async fn inject(cluster: &Cluster, target: &Target, args: &InjectArgs) -> Result<()> {
    let namespace = &target.kms_namespace;
    let name = &args.deployment;
    let scope = Scope {
        kms: namespace,
        istio: &target.istio_namespace,
        cert_manager: None,
    };
    permissions::require(
        cluster,
        permissions::Command::Inject,
        &permissions::for_inject(&scope),
        args.write.options(),
    )
    .await?;
    let deployments: Api<Deployment> = Api::namespaced(cluster.client(), namespace);

    let original = cluster
        .call(
            &format!("read deployment {namespace}/{name}"),
            deployments.get_opt(name),
        )
        .await?
        .ok_or_else(|| Error::Missing {
            kind: "Deployment",
            namespace: namespace.clone(),
            name: name.clone(),
            hint:
                "name the KMS Deployment with --deployment, or its namespace with --kms-namespace"
                    .into(),
        })?;
    let original_template = pod_template(&original);
    let backup_dir = args
        .tools
        .backup_dir
        .clone()
        .unwrap_or_else(|| backup::default_dir(cluster.context()));
    if args.undo {
        return undo(cluster, &deployments, &original, &backup_dir, args).await;
    }
    if sidecar::template_is_injected(&original_template) {
        // Nothing to write; an earlier run may have been cut off during its
        // rollout, so see that one through (reads only).
        if args.write.dry_run.is_none() {
            rollout::wait(cluster, namespace, name, args.timeout).await?;
            let pods = verify_sidecars(cluster, namespace, &original).await?;
            eprintln!(
                "deployment/{name} already carries the Istio sidecar: {} it",
                count(pods as i64, "pod runs", "pods run")
            );
        } else {
            eprintln!("deployment/{name} already carries the Istio sidecar; nothing to do");
        }
        return Ok(());
    }

    let istioctl = istioctl::locate(args.tools.istioctl.as_deref())?;
    let config = injector_config(cluster, &target.istio_namespace).await?;
    let injected = istioctl::kube_inject(
        &istioctl,
        target,
        &sidecar::injection_input(&original),
        &config,
    )
    .await?;
    let injected_template = pod_template(&injected);
    if !sidecar::template_is_injected(&injected_template) {
        return Err(Error::ToolFailed {
            tool: "istioctl",
            detail: "kube-inject returned the Deployment without an istio-proxy container".into(),
        });
    }

    let mut updated = original.clone();
    set_pod_template(&mut updated, injected_template);
    updated.metadata.managed_fields = None;
    updated.status = None;
    let note = args.write.options().dry_run_note();

    if args.write.dry_run == Some(DryRun::Client) {
        print_object(&updated, args)?;
        eprintln!("deployment/{name} injected{note}");
        return Ok(());
    }

    let backup_path = if args.write.dry_run.is_none() {
        let mut saved = original.clone();
        saved.metadata.managed_fields = None;
        saved.status = None;
        let yaml = output::render(&saved, output::Format::Yaml);
        Some(backup::save(
            &backup_dir,
            "Deployment",
            namespace,
            name,
            &yaml,
        )?)
    } else {
        None
    };
    if let Some(path) = &backup_path {
        eprintln!("original deployment/{name} saved to {}", path.display());
    }

    let params = PostParams {
        dry_run: args.write.options().server_dry_run(),
        field_manager: Some(FIELD_MANAGER.into()),
    };
    let applied =
        replace_unless_changed(cluster, &deployments, &original, updated, &params).await?;
    if args.write.dry_run.is_some() {
        print_object(&applied, args)?;
        eprintln!("deployment/{name} injected{note}");
        return Ok(());
    }

    let verified = match rollout::wait(cluster, namespace, name, args.timeout).await {
        Ok(_) => verify_sidecars(cluster, namespace, &applied).await,
        Err(err) => Err(err),
    };
    match verified {
        Ok(pods) => {
            print_object(&applied, args)?;
            eprintln!("deployment/{name} injected: {pods} pods run the istio-proxy sidecar");
            Ok(())
        }
        Err(cause) if args.no_rollback => Err(cause),
        Err(cause) => {
            let restored =
                restore_template(cluster, &deployments, namespace, name, original_template).await;
            match restored {
                Ok(()) => Err(Error::RolledBack {
                    what: format!("injecting deployment {namespace}/{name} failed"),
                    cause: Box::new(cause),
                }),
                Err(rollback) => Err(Error::Incomplete {
                    done: vec![
                        format!(
                            "original saved to {}",
                            backup_path
                                .as_deref()
                                .map(|p| p.display().to_string())
                                .unwrap_or_default()
                        ),
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
    }
}

/// How often a write refused only because the Deployment's status moved on
/// is sent again.
const STATUS_ONLY_RETRIES: u32 = 3;

/// Replaces the Deployment read as `original` with `updated`. A 409 caused
/// by the controllers writing its status (the object's resourceVersion
/// moves on, its spec and metadata do not) is retried against the fresh
/// version; a change by another client to what was read is refused, never
/// overwritten.
pub async fn replace_unless_changed(
    cluster: &Cluster,
    deployments: &Api<Deployment>,
    original: &Deployment,
    mut updated: Deployment,
    params: &PostParams,
) -> Result<Deployment> {
    let namespace = original.metadata.namespace.clone().unwrap_or_default();
    let name = original.metadata.name.clone().unwrap_or_default();
    let conflict = |attempts| Error::Conflict {
        kind: "Deployment",
        namespace: namespace.clone(),
        name: name.clone(),
        attempts,
    };
    let mut attempts = 0;
    loop {
        attempts += 1;
        let written = cluster
            .write(
                &format!("update deployment {namespace}/{name}"),
                deployments.replace(&name, params, &updated),
            )
            .await?;
        if let Ok(applied) = written {
            return Ok(applied);
        }
        if attempts > STATUS_ONLY_RETRIES {
            return Err(conflict(attempts));
        }
        let Some(current) = cluster
            .call(
                &format!("read deployment {namespace}/{name}"),
                deployments.get_opt(&name),
            )
            .await?
        else {
            return Err(conflict(attempts));
        };
        let unchanged = current.spec == original.spec
            && current.metadata.labels == original.metadata.labels
            && current.metadata.annotations == original.metadata.annotations;
        if !unchanged {
            return Err(conflict(attempts));
        }
        updated.metadata.resource_version = current.metadata.resource_version;
    }
}

/// `--undo`: puts back the pod template of the newest backup and waits for
/// the rollout, so the sidecar is removed by the same rolling update.
async fn undo(
    cluster: &Cluster,
    deployments: &Api<Deployment>,
    current: &Deployment,
    backup_dir: &std::path::Path,
    args: &InjectArgs,
) -> Result<()> {
    let namespace = current.metadata.namespace.clone().unwrap_or_default();
    let name = &args.deployment;
    if !sidecar::template_is_injected(&pod_template(current)) {
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
    let mut restored = current.clone();
    set_pod_template(&mut restored, template);
    restored.metadata.managed_fields = None;
    restored.status = None;
    let note = args.write.options().dry_run_note();
    if args.write.dry_run != Some(DryRun::Client) {
        let params = PostParams {
            dry_run: args.write.options().server_dry_run(),
            field_manager: Some(FIELD_MANAGER.into()),
        };
        restored = cluster
            .call(
                &format!("restore deployment {namespace}/{name}"),
                deployments.replace(name, &params, &restored),
            )
            .await?;
    }
    if args.write.dry_run.is_none() {
        rollout::wait(cluster, &namespace, name, args.timeout).await?;
    }
    print_object(&restored, args)?;
    eprintln!("deployment/{name} restored from {}{note}", path.display());
    Ok(())
}

/// The pod template of the newest backup of the Deployment in `dir`, which
/// must be a Deployment manifest without the sidecar; `None` without backup.
pub fn backed_up_template(
    dir: &std::path::Path,
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
    let template = pod_template(&saved);
    if sidecar::template_is_injected(&template) {
        return Err(Error::InvalidBackup {
            path,
            reason: "it carries the sidecar too".into(),
        });
    }
    Ok(Some((path, template)))
}

fn print_object(deployment: &Deployment, args: &InjectArgs) -> Result<()> {
    let Some(format) = args.write.output else {
        return Ok(());
    };
    let mut shown = deployment.clone();
    shown.metadata.managed_fields = None;
    output::print(&output::render(&shown, format))
}

pub fn pod_template(deployment: &Deployment) -> PodTemplateSpec {
    deployment
        .spec
        .as_ref()
        .map(|spec| spec.template.clone())
        .unwrap_or_default()
}

pub fn set_pod_template(deployment: &mut Deployment, template: PodTemplateSpec) {
    if let Some(spec) = deployment.spec.as_mut() {
        spec.template = template;
    }
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
    let injector = read("istio-sidecar-injector", &["config", "values"]).await?;
    let mesh = read("istio", &["mesh"]).await?;
    let [template, values] = <[String; 2]>::try_from(injector).expect("two keys asked");
    let [mesh] = <[String; 1]>::try_from(mesh).expect("one key asked");
    Ok(InjectorConfig {
        template,
        values,
        mesh,
    })
}

/// Counts the Deployment's live pods, failing if any lacks the sidecar.
async fn verify_sidecars(
    cluster: &Cluster,
    namespace: &str,
    deployment: &Deployment,
) -> Result<usize> {
    let pods = rollout::pods(cluster, namespace, deployment).await?;
    let live: Vec<&Pod> = pods
        .iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
        .collect();
    let missing: Vec<String> = live
        .iter()
        .filter(|pod| !sidecar::pod_has_sidecar(pod))
        .filter_map(|pod| pod.metadata.name.clone())
        .collect();
    if !missing.is_empty() {
        return Err(Error::RolloutFailed {
            kind: "Deployment",
            namespace: namespace.to_owned(),
            name: deployment.metadata.name.clone().unwrap_or_default(),
            reason: format!(
                "pods without the istio-proxy sidecar: {}",
                missing.join(", ")
            ),
        });
    }
    Ok(live.len())
}

/// Puts the original pod template back (a rollback by the same rolling update).
async fn restore_template(
    cluster: &Cluster,
    deployments: &Api<Deployment>,
    namespace: &str,
    name: &str,
    template: PodTemplateSpec,
) -> Result<()> {
    let action = format!("restore deployment {namespace}/{name}");
    let mut current = cluster.call(&action, deployments.get(name)).await?;
    set_pod_template(&mut current, template);
    current.metadata.managed_fields = None;
    let params = PostParams {
        dry_run: false,
        field_manager: Some(FIELD_MANAGER.into()),
    };
    cluster
        .call(&action, deployments.replace(name, &params, &current))
        .await?;
    Ok(())
}
