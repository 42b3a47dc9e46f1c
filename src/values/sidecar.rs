//! What "injected" means, decided from objects alone: whether a pod template
//! or pod already carries Istio's sidecar, and the cleaned manifest that
//! `istioctl kube-inject` is given. Pure functions, tested without a cluster.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, PodSpec, PodTemplateSpec};

/// The sidecar container's name; injection may place it among the init
/// containers (a native sidecar) or the regular ones.
pub const PROXY_CONTAINER: &str = "istio-proxy";
/// The annotation injection leaves on the pod template.
pub const STATUS_ANNOTATION: &str = "sidecar.istio.io/status";

fn spec_has_proxy(spec: &PodSpec) -> bool {
    spec.containers.iter().any(|c| c.name == PROXY_CONTAINER)
        || spec
            .init_containers
            .iter()
            .flatten()
            .any(|c| c.name == PROXY_CONTAINER)
}

/// The image of the istio-proxy container in `spec`, native sidecar or not.
pub fn proxy_image(spec: &PodSpec) -> Option<&str> {
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == PROXY_CONTAINER)
        .and_then(|c| c.image.as_deref())
}

/// The proxy image of a pod template; `None` without the sidecar.
pub fn template_proxy_image(template: &PodTemplateSpec) -> Option<&str> {
    template.spec.as_ref().and_then(proxy_image)
}

/// Whether a pod template was already injected (kube-inject run on it again
/// would add a second sidecar).
pub fn template_is_injected(template: &PodTemplateSpec) -> bool {
    let annotated = template
        .metadata
        .as_ref()
        .and_then(|meta| meta.annotations.as_ref())
        .is_some_and(|annotations| annotations.contains_key(STATUS_ANNOTATION));
    annotated || template.spec.as_ref().is_some_and(spec_has_proxy)
}

/// The revision `sidecar.istio.io/status` on `template` names: what Istio
/// itself records of the control plane that injected it.
pub fn status_revision(template: &PodTemplateSpec) -> Option<String> {
    let status = template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(STATUS_ANNOTATION)?;
    let status: serde_json::Value = serde_json::from_str(status).ok()?;
    status
        .get("revision")?
        .as_str()
        .filter(|revision| !revision.is_empty())
        .map(str::to_owned)
}

pub fn pod_has_sidecar(pod: &Pod) -> bool {
    pod.spec.as_ref().is_some_and(spec_has_proxy)
}

/// The Deployment as kube-inject should see it: its spec only, without the
/// server-owned fields (status, managedFields, resourceVersion, uid).
pub fn injection_input(deployment: &Deployment) -> Deployment {
    let mut input = Deployment {
        metadata: deployment.metadata.clone(),
        spec: deployment.spec.clone(),
        status: None,
    };
    let meta = &mut input.metadata;
    meta.managed_fields = None;
    meta.resource_version = None;
    meta.uid = None;
    meta.creation_timestamp = None;
    meta.generation = None;
    input
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(value: serde_json::Value) -> PodTemplateSpec {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn plain_template_is_not_injected() {
        let t = template(json!({"spec": {"containers": [{"name": "key-management-api"}]}}));
        assert!(!template_is_injected(&t));
    }

    #[test]
    fn proxy_container_or_status_annotation_means_injected() {
        let regular =
            template(json!({"spec": {"containers": [{"name": "app"}, {"name": "istio-proxy"}]}}));
        let native = template(json!({"spec": {"containers": [{"name": "app"}],
                                               "initContainers": [{"name": "istio-proxy", "restartPolicy": "Always"}]}}));
        let annotated = template(
            json!({"metadata": {"annotations": {"sidecar.istio.io/status": "{}"}},
                                        "spec": {"containers": [{"name": "app"}]}}),
        );
        assert!(template_is_injected(&regular));
        assert!(template_is_injected(&native));
        assert!(template_is_injected(&annotated));
    }

    #[test]
    fn injection_input_drops_server_fields() {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "kms", "namespace": "kube-system", "resourceVersion": "7", "uid": "u",
                         "generation": 2, "managedFields": [{"manager": "x"}]},
            "spec": {"selector": {}, "template": {}},
            "status": {"replicas": 2}
        }))
        .unwrap();
        let input = injection_input(&d);
        assert_eq!(input.metadata.name.as_deref(), Some("kms"));
        assert!(input.metadata.resource_version.is_none());
        assert!(input.metadata.managed_fields.is_none());
        assert!(input.status.is_none());
        assert!(input.spec.is_some());
    }
}
