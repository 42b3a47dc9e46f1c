//! Which secrets pods mount, and where: what a gateway pod can load as a
//! file, what kms-api's pods serve, what a Deployment's pods will mount.
//! Pure functions of the pod specs read.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, PodSpec, Secret};

/// Whether every one of `pods` mounts the secret `secret` at `dir`; false
/// when there is no pod.
pub fn pods_mount(pods: &[Pod], secret: &str, dir: &str) -> bool {
    !pods.is_empty() && pods.iter().all(|pod| pod_mounts(pod, secret, dir))
}

fn pod_mounts(pod: &Pod, secret: &str, dir: &str) -> bool {
    secret_mounted_at(pod, dir).as_deref() == Some(secret)
}

/// The secret a pod mounts at `dir`, by name.
pub fn secret_mounted_at(pod: &Pod, dir: &str) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let mount = spec
        .containers
        .iter()
        .flat_map(|c| c.volume_mounts.iter().flatten())
        .find(|m| m.mount_path.trim_end_matches('/') == dir)?;
    spec.volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)?
        .secret
        .as_ref()?
        .secret_name
        .clone()
}

/// The data of `key` in a secret, when present and not empty.
pub fn secret_data<'a>(secret: &'a Secret, key: &str) -> Option<&'a [u8]> {
    let value = secret.data.as_ref()?.get(key)?;
    (!value.0.is_empty()).then_some(value.0.as_slice())
}

/// The names of the secrets a pod mounts as volumes, in order.
pub fn mounted_secrets(pod: &Pod) -> Vec<String> {
    pod.spec.iter().flat_map(volume_secrets).collect()
}

/// The secrets a pod spec's volumes name.
fn volume_secrets(spec: &PodSpec) -> Vec<String> {
    spec.volumes
        .iter()
        .flatten()
        .filter_map(|v| v.secret.as_ref()?.secret_name.clone())
        .collect()
}

/// The secrets a Deployment's pod template mounts: those its pods will.
pub fn template_secrets(deployment: &Deployment) -> Vec<String> {
    deployment
        .spec
        .iter()
        .flat_map(|spec| spec.template.spec.iter())
        .flat_map(volume_secrets)
        .collect()
}
