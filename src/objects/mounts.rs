//! Which secrets pods mount, and where: what a gateway pod can load as a
//! file, what kms-api's pods serve, what a Deployment's pods will mount.
//! Pure functions of the pod specs read, and the one way a pod spec is
//! reduced to what the plugin reads of it (`without_unread_parts`).

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

/// Drops from a pod spec what no part of the plugin reads: its containers'
/// environments (whose literal values may be credentials) and the volumes
/// that are not secrets. Parsed, every volume takes 3 KB whatever its
/// source, and an injected pod has a dozen: most of what `status` holds of
/// each pod and pod template for every context in flight.
pub fn without_unread_parts(spec: &mut PodSpec) {
    let environments = spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
        .map(|container| &mut container.env)
        .chain(
            spec.ephemeral_containers
                .iter_mut()
                .flatten()
                .map(|container| &mut container.env),
        );
    for env in environments {
        *env = None;
    }
    if let Some(volumes) = spec.volumes.as_mut() {
        volumes.retain(|volume| volume.secret.is_some());
        volumes.shrink_to_fit();
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_spec_without_its_unread_parts_still_says_what_it_mounts_where() {
        let mut pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "gw"},
            "spec": {
                "containers": [{"name": "istio-proxy",
                    "env": [{"name": "ISTIO_META_X", "value": "1"}],
                    "volumeMounts": [{"name": "certs", "mountPath": "/etc/certs/"},
                                     {"name": "data", "mountPath": "/var/data"}]}],
                "volumes": [{"name": "data", "emptyDir": {}},
                            {"name": "certs", "secret": {"secretName": "gw-certs"}},
                            {"name": "token", "projected": {"sources": []}}]
            }
        }))
        .unwrap();
        without_unread_parts(pod.spec.as_mut().unwrap());
        let spec = pod.spec.as_ref().unwrap();
        assert!(spec.containers[0].env.is_none());
        assert_eq!(spec.containers[0].volume_mounts.as_ref().unwrap().len(), 2);
        let volumes = spec.volumes.as_ref().unwrap();
        assert_eq!((volumes.len(), volumes.capacity()), (1, 1));
        assert_eq!(
            secret_mounted_at(&pod, "/etc/certs").as_deref(),
            Some("gw-certs")
        );
        assert_eq!(secret_mounted_at(&pod, "/var/data"), None);
        assert_eq!(mounted_secrets(&pod), ["gw-certs"]);
    }
}
