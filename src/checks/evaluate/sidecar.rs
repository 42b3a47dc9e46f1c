//! The sidecar category: the KMS Deployment's template and every pod of it
//! carry the Istio sidecar.

use k8s_openapi::api::core::v1::Pod;

use crate::checks::snapshot::{Names, Snapshot, pod_ready};
use crate::checks::{Check, CheckId};
use crate::objects::rollout_state::{RolloutState, rollout_state};
use crate::values::sidecar;

pub fn checks(s: &Snapshot, names: &Names) -> Vec<Check> {
    let name = format!("{}/{}", names.kms_namespace, names.deployment);
    let Some(kms) = &s.kms else {
        return vec![Check::fail(
            CheckId::KmsDeployment,
            format!("{name} does not exist"),
            "install KMS, or name it with --deployment",
        )];
    };
    let mut checks = vec![match rollout_state(kms) {
        RolloutState::Complete { ready } => Check::pass(
            CheckId::KmsDeployment,
            format!("{name} rolled out, {ready} available"),
        ),
        RolloutState::InProgress(text) => Check::warn(
            CheckId::KmsDeployment,
            format!("{name} is rolling out: {text}"),
            "wait, or check `kubectl rollout status`",
        ),
        RolloutState::Failed(reason) => Check::fail(
            CheckId::KmsDeployment,
            format!("{name}: {reason}"),
            "check the pods' events",
        ),
    }];
    let template = kms
        .spec
        .as_ref()
        .map(|spec| spec.template.clone())
        .unwrap_or_default();
    let ready: Vec<&Pod> = s.kms_pods.iter().filter(|p| pod_ready(p)).collect();
    let without: Vec<String> = ready
        .iter()
        .filter(|pod| !sidecar::pod_has_sidecar(pod))
        .filter_map(|pod| pod.metadata.name.clone())
        .collect();
    checks.push(if !sidecar::template_is_injected(&template) {
        Check::fail(
            CheckId::Sidecar,
            format!("{name} has no istio-proxy sidecar"),
            format!("run {}", names.command("inject", "")),
        )
    } else if !without.is_empty() {
        Check::fail(
            CheckId::Sidecar,
            format!("ready pods without istio-proxy: {}", without.join(", ")),
            format!(
                "wait for the rollout, or run {} again",
                names.command("inject", "")
            ),
        )
    } else {
        Check::pass(
            CheckId::Sidecar,
            match ready.len() {
                1 => "the 1 ready pod runs istio-proxy".to_owned(),
                n => format!("all {n} ready pods run istio-proxy"),
            },
        )
    });
    checks
}
