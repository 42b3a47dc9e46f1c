//! A Deployment's pod template, written in place as one update that rolls
//! the pods over under the Deployment's own strategy. `inject` writes the
//! injected template this way; the template without the sidecar goes back
//! with `restore` (the rollback of a failed injection) or `put_back`
//! (`inject --undo`, `uninstall`), which also waits for the rollout and
//! checks every pod.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use kube::Api;

use crate::cluster::Cluster;
use crate::cluster::apply::WriteOptions;
use crate::cluster::rollout;
use crate::cluster::unless_changed::{self, Written};
use crate::error::{Error, Result};
use crate::objects::injection_record;
use crate::objects::place::without_managed_fields;
use crate::values::sidecar;

pub fn of(deployment: &Deployment) -> PodTemplateSpec {
    deployment
        .spec
        .as_ref()
        .map(|spec| spec.template.clone())
        .unwrap_or_default()
}

fn set(deployment: &mut Deployment, template: PodTemplateSpec) {
    if let Some(spec) = deployment.spec.as_mut() {
        spec.template = template;
    }
}

/// `read` with `template` in place, as it is sent.
pub fn with_template(read: &Deployment, template: PodTemplateSpec) -> Deployment {
    let mut updated = as_written(read);
    set(&mut updated, template);
    updated
}

/// The Deployment as a client writes it: without the server's bookkeeping
/// (managed fields, status).
pub fn as_written(deployment: &Deployment) -> Deployment {
    let mut written = without_managed_fields(deployment.clone());
    written.status = None;
    written
}

/// Replaces the Deployment as `read` with `updated` (the same Deployment
/// with another pod template, and its annotations as they should be);
/// returns it as written (as it would be, under a client dry run). The write
/// carries the resourceVersion read: a refusal caused by the controllers
/// writing the Deployment's status is sent again against the fresh version,
/// a change by another client to what was read is refused, never
/// overwritten.
pub async fn replace(
    cluster: &Cluster,
    read: &Deployment,
    mut updated: Deployment,
    write: WriteOptions,
) -> Result<Deployment> {
    let namespace = read.metadata.namespace.clone().unwrap_or_default();
    let name = read.metadata.name.clone().unwrap_or_default();
    if write.client_dry_run() {
        return Ok(updated);
    }
    let deployments: Api<Deployment> = Api::namespaced(cluster.client(), &namespace);
    let shown = format!("deployment {namespace}/{name}");
    let params = write.post_params();
    let send = async |latest: &Deployment| {
        updated.metadata.resource_version = latest.metadata.resource_version.clone();
        unless_changed::with_controller_annotations(latest, &mut updated);
        let written = cluster
            .write(
                &format!("update {shown}"),
                deployments.replace(&name, &params, &updated),
            )
            .await?;
        Ok(written.ok())
    };
    match unless_changed::write(cluster, &deployments, (read, &shown), send).await? {
        Written::Done(written) => Ok(written),
        Written::Gone => Err(Error::Missing {
            kind: "Deployment",
            namespace,
            name,
            hint: "it was deleted while being updated; run the command again".into(),
        }),
        Written::Changed { attempts } => Err(Error::Conflict {
            kind: "Deployment",
            namespace,
            name,
            attempts,
        }),
    }
}

/// Puts `template` (one without the sidecar) back in place on the
/// Deployment as `read`, and takes the record of the injection off.
pub async fn restore(
    cluster: &Cluster,
    read: &Deployment,
    template: PodTemplateSpec,
    write: WriteOptions,
) -> Result<Deployment> {
    let restored = injection_record::cleared(with_template(read, template));
    replace(cluster, read, restored, write).await
}

/// `restore`s `template`, waits for the rollout and checks that no pod runs
/// the sidecar any more. Returns the Deployment as written.
pub async fn put_back(
    cluster: &Cluster,
    read: &Deployment,
    template: PodTemplateSpec,
    write: WriteOptions,
    timeout: Duration,
) -> Result<Deployment> {
    let written = restore(cluster, read, template, write).await?;
    if write.dry_run.is_none() {
        let namespace = read.metadata.namespace.clone().unwrap_or_default();
        let name = read.metadata.name.clone().unwrap_or_default();
        rollout::wait(cluster, &namespace, &name, timeout).await?;
        live_pods_all(cluster, &written, Sidecar::Absent).await?;
    }
    Ok(written)
}

/// Whether the pods should run the sidecar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sidecar {
    Present,
    Absent,
}

/// Counts the Deployment's live pods, failing with their names if any of
/// them does not have the sidecar as `wanted`: absent, or present with the
/// proxy image of the Deployment's template.
pub async fn live_pods_all(
    cluster: &Cluster,
    deployment: &Deployment,
    wanted: Sidecar,
) -> Result<usize> {
    let namespace = deployment.metadata.namespace.clone().unwrap_or_default();
    let pods = rollout::pods(cluster, &namespace, deployment).await?;
    let live: Vec<&Pod> = pods
        .iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
        .collect();
    let template = of(deployment);
    let image = sidecar::template_proxy_image(&template);
    let as_wanted = |pod: &Pod| match wanted {
        Sidecar::Present => pod.spec.as_ref().and_then(sidecar::proxy_image) == image,
        Sidecar::Absent => !sidecar::pod_has_sidecar(pod),
    };
    let wrong: Vec<String> = live
        .iter()
        .filter(|pod| !as_wanted(pod))
        .filter_map(|pod| pod.metadata.name.clone())
        .collect();
    if wrong.is_empty() {
        return Ok(live.len());
    }
    let reason = match wanted {
        Sidecar::Present => match image {
            Some(image) => &format!("pods without the istio-proxy sidecar of image {image}"),
            None => "pods without the istio-proxy sidecar",
        },
        Sidecar::Absent => "pods still run the istio-proxy sidecar",
    };
    Err(Error::RolloutFailed {
        kind: "Deployment",
        namespace,
        name: deployment.metadata.name.clone().unwrap_or_default(),
        reason: format!("{reason}: {}", wrong.join(", ")),
    })
}
