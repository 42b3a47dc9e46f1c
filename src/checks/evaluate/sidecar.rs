//! The sidecar category: the KMS Deployment's template and every pod of it
//! carry the Istio sidecar, and it is the sidecar the control plane would
//! inject now: current for its revision, within Istio's supported version
//! skew, from a revision still installed, the same proxy in every pod.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;

use crate::checks::snapshot::{Injector, Names, Snapshot, pod_ready};
use crate::checks::{Check, CheckId};
use crate::objects::injection_record;
use crate::objects::rollout_state::{RolloutState, rollout_state};
use crate::values::proxy::{self, Skew};
use crate::values::revision::ChosenBy;
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
    let injected = sidecar::template_is_injected(&template);
    checks.push(if !injected {
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
    if injected && let Some(injector) = &s.injector {
        checks.push(proxy_version(names, kms, &ready, injector));
    }
    checks
}

/// Whether KMS's sidecar is the one `injector` would inject now.
fn proxy_version(names: &Names, kms: &Deployment, ready: &[&Pod], injector: &Injector) -> Check {
    let id = CheckId::ProxyVersion;
    let running = kms
        .spec
        .as_ref()
        .and_then(|spec| sidecar::template_proxy_image(&spec.template))
        .unwrap_or("(no image)");
    let injected_with = injection_record::injected_revision(kms);
    if let Some(mixed) = mixed_proxies(names, kms, ready, running) {
        return mixed;
    }
    let (revision, chosen_by, fingerprint, wanted) = match injector {
        Injector::Unavailable { problem, hint } => {
            return without_control_plane(names, injected_with, running, problem, hint);
        }
        Injector::Now {
            revision,
            chosen_by,
            fingerprint,
            proxy_image,
        } => (revision, *chosen_by, fingerprint, proxy_image.as_deref()),
    };
    let wanted_text = wanted.unwrap_or("an image its values do not name");
    if let Some(old) = injected_with
        .as_ref()
        .filter(|old| *old != revision && chosen_by != ChosenBy::Flag)
    {
        return Check::fail(
            id,
            format!(
                "KMS was injected by revision {old}, which is no longer installed; revision \
                 {revision} ({}) injects {wanted_text}",
                chosen_by.reason()
            ),
            format!(
                "run {} to move it there in place",
                names.command("inject", &format!(" --revision {revision}"))
            ),
        );
    }
    let recorded = injection_record::injected_fingerprint(kms);
    let on_revision = injected_with.as_ref() == Some(revision);
    // What this plugin injected is current by its fingerprint; a sidecar
    // injected otherwise, by its image.
    let current = match recorded {
        Some(recorded) => on_revision && recorded == fingerprint,
        None => wanted == Some(running),
    };
    if current {
        return Check::pass(
            id,
            format!("istio-proxy {running} is what revision {revision} injects now"),
        );
    }
    let now = match wanted {
        Some(image) if image == running => format!(
            "revision {revision}'s injector configuration changed since KMS was injected (its \
             proxy image did not)"
        ),
        _ if on_revision => format!(
            "revision {revision}'s injector changed since KMS was injected: istio-proxy \
             {running}, now {wanted_text}"
        ),
        _ => format!(
            "KMS runs istio-proxy {running}; revision {revision} ({}) injects {wanted_text}",
            chosen_by.reason()
        ),
    };
    judged_by_skew(
        now,
        refresh_hint(names, recorded.is_some()),
        running,
        wanted,
    )
}

/// No revision to compare with: a failure when the one KMS was injected
/// with is gone, a warning when none could be chosen.
fn without_control_plane(
    names: &Names,
    injected_with: Option<String>,
    running: &str,
    problem: &str,
    hint: &str,
) -> Check {
    match (injected_with, &names.revision) {
        (Some(old), None) => Check::fail(
            CheckId::ProxyVersion,
            format!("KMS was injected by revision {old}, which is gone: {problem}"),
            hint,
        ),
        _ => Check::warn(
            CheckId::ProxyVersion,
            format!("no control plane to compare istio-proxy {running} with: {problem}"),
            hint,
        ),
    }
}

/// How a stale sidecar is made current: `inject` refreshes what it
/// injected (`recorded`); for one injected otherwise, the never-injected
/// template must come back first.
fn refresh_hint(names: &Names, recorded: bool) -> String {
    let inject = names.command("inject", "");
    if recorded {
        format!("run {inject} to refresh it in place")
    } else {
        format!(
            "it was not injected by this plugin, so its never-injected template is unknown: put \
             the original manifest back and run {inject}"
        )
    }
}

/// A finished rollout whose ready pods run more than one proxy image.
fn mixed_proxies(names: &Names, kms: &Deployment, ready: &[&Pod], running: &str) -> Option<Check> {
    let images: BTreeSet<&str> = ready
        .iter()
        .filter_map(|pod| pod.spec.as_ref().and_then(sidecar::proxy_image))
        .collect();
    let finished = matches!(rollout_state(kms), RolloutState::Complete { .. });
    (finished && images.len() > 1).then(|| {
        Check::fail(
            CheckId::ProxyVersion,
            format!(
                "the rollout finished, yet KMS's pods run different proxies: {}",
                Vec::from_iter(images).join(", ")
            ),
            format!(
                "restart them onto the template's {running}: `kubectl rollout restart \
                 deployment/{} -n {}{}`",
                names.deployment, names.kms_namespace, names.kubectl_flags
            ),
        )
    })
}

/// A stale sidecar: a warning while the proxy `running` is within Istio's
/// supported skew of the image `wanted` the control plane injects now, a
/// failure outside it.
fn judged_by_skew(now: String, hint: String, running: &str, wanted: Option<&str>) -> Check {
    let id = CheckId::ProxyVersion;
    let unsupported = |why: String| {
        Check::fail(
            id,
            format!("{now}: {why}, which Istio does not support"),
            hint.clone(),
        )
    };
    match wanted.map_or(Skew::Unknown, |image| proxy::skew(running, image)) {
        Skew::ProxyNewer { proxy, control } => unsupported(format!(
            "proxy {proxy} is newer than the control plane's {control}"
        )),
        Skew::TooFarBehind { proxy, control } => unsupported(format!(
            "proxy {proxy} is more than one minor version behind the control plane's {control}"
        )),
        Skew::Supported => Check::warn(id, now, hint),
        Skew::Unknown => Check::warn(
            id,
            format!("{now} (their tags name no version, so the skew could not be judged)"),
            hint,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Outcome;
    use serde_json::json;

    const FINGERPRINT: &str = "sha256:injected";

    /// KMS rolled out with `replicas` pods, injected by `revision` with
    /// `image`, recorded by `inject` when `recorded`.
    fn kms(revision: &str, image: &str, recorded: bool) -> Deployment {
        let annotations = if recorded {
            json!({
                injection_record::REVISION: revision,
                injection_record::FINGERPRINT: FINGERPRINT,
            })
        } else {
            json!({})
        };
        serde_json::from_value(json!({
            "metadata": {"name": "key-management-api", "generation": 2, "annotations": annotations},
            "spec": {
                "replicas": 1,
                "selector": {},
                "template": {
                    "metadata": {"annotations": {
                        sidecar::STATUS_ANNOTATION: json!({"revision": revision}).to_string()
                    }},
                    "spec": {"containers": [
                        {"name": "key-management-api", "image": "kms:2"},
                        {"name": "istio-proxy", "image": image}
                    ]}
                }
            },
            "status": {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1,
                       "availableReplicas": 1, "readyReplicas": 1}
        }))
        .unwrap()
    }

    fn pod(image: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": format!("kms-{}", image.len())},
            "spec": {"containers": [
                {"name": "key-management-api", "image": "kms:2"},
                {"name": "istio-proxy", "image": image}
            ]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap()
    }

    fn now(revision: &str, fingerprint: &str, image: &str, chosen_by: ChosenBy) -> Injector {
        Injector::Now {
            revision: revision.into(),
            chosen_by,
            fingerprint: fingerprint.into(),
            proxy_image: Some(image.into()),
        }
    }

    fn judged(kms: Deployment, pods: &[&str], injector: Injector, names: &Names) -> Check {
        let snapshot = Snapshot {
            kms_pods: pods.iter().map(|image| pod(image)).collect(),
            kms: Some(kms),
            injector: Some(injector),
            ..Snapshot::default()
        };
        checks(&snapshot, names)
            .into_iter()
            .find(|check| check.id == CheckId::ProxyVersion)
            .expect("a proxy version check")
    }

    const OLD: &str = "docker.io/istio/proxyv2:1.30.4";
    const NEW: &str = "docker.io/istio/proxyv2:1.31.2";

    #[test]
    fn a_current_injection_passes_and_a_changed_injector_warns_with_the_refresh() {
        let names = Names::runbook(" --context prod");
        let current = judged(
            kms("default", NEW, true),
            &[NEW],
            now("default", FINGERPRINT, NEW, ChosenBy::Injected),
            &names,
        );
        assert_eq!(current.result, Outcome::Pass, "{current:?}");
        let stale = judged(
            kms("default", OLD, true),
            &[OLD],
            now("default", "sha256:upgraded", NEW, ChosenBy::Injected),
            &names,
        );
        assert_eq!(stale.result, Outcome::Warn, "{stale:?}");
        assert!(
            stale.message.contains(OLD) && stale.message.contains(NEW),
            "{stale:?}"
        );
        assert_eq!(
            stale.hint.as_deref(),
            Some("run `kubectl kms-sts inject --context prod` to refresh it in place")
        );
    }

    #[test]
    fn a_proxy_outside_the_supported_skew_fails() {
        let names = Names::runbook("");
        let behind = judged(
            kms("default", "docker.io/istio/proxyv2:1.29.0", true),
            &["docker.io/istio/proxyv2:1.29.0"],
            now("default", "sha256:upgraded", NEW, ChosenBy::Injected),
            &names,
        );
        assert_eq!(behind.result, Outcome::Fail, "{behind:?}");
        assert!(
            behind
                .message
                .contains("more than one minor version behind")
        );
        let ahead = judged(
            kms("default", "docker.io/istio/proxyv2:1.32.0", true),
            &["docker.io/istio/proxyv2:1.32.0"],
            now("default", "sha256:downgraded", NEW, ChosenBy::Injected),
            &names,
        );
        assert_eq!(ahead.result, Outcome::Fail, "{ahead:?}");
        assert!(
            ahead
                .message
                .contains("newer than the control plane's 1.31.2")
        );
        let unknown = judged(
            kms("default", "registry.istio.io/testing/proxyv2:latest", true),
            &["registry.istio.io/testing/proxyv2:latest"],
            now("default", "sha256:upgraded", NEW, ChosenBy::Injected),
            &names,
        );
        assert_eq!(unknown.result, Outcome::Warn);
        assert!(
            unknown.message.contains("could not be judged"),
            "{unknown:?}"
        );
    }

    #[test]
    fn a_revision_that_is_gone_fails_with_the_move_to_the_one_installed() {
        let names = Names::runbook("");
        let moved = judged(
            kms("1-30", OLD, true),
            &[OLD],
            now("canary", "sha256:canary", NEW, ChosenBy::DefaultTag),
            &names,
        );
        assert_eq!(moved.result, Outcome::Fail, "{moved:?}");
        assert!(
            moved
                .message
                .contains("revision 1-30, which is no longer installed")
        );
        assert_eq!(
            moved.hint.as_deref(),
            Some("run `kubectl kms-sts inject --revision canary` to move it there in place")
        );
        let nothing = judged(
            kms("1-30", OLD, true),
            &[OLD],
            Injector::Unavailable {
                problem:
                    "ConfigMap istio-system/istio-sidecar-injector (key config) does not exist"
                        .into(),
                hint: "is Istio installed?".into(),
            },
            &names,
        );
        assert_eq!(nothing.result, Outcome::Fail);
        // Asked to compare with another revision, the hint carries the flag.
        let asked = Names {
            revision: Some("canary".into()),
            ..Names::runbook("")
        };
        let other = judged(
            kms("1-30", OLD, true),
            &[OLD],
            now("canary", "sha256:canary", NEW, ChosenBy::Flag),
            &asked,
        );
        assert_eq!(other.result, Outcome::Warn, "{other:?}");
        assert_eq!(
            other.hint.as_deref(),
            Some("run `kubectl kms-sts inject --revision canary` to refresh it in place")
        );
    }

    #[test]
    fn pods_running_different_proxies_after_the_rollout_fail() {
        let names = Names::runbook("");
        let mut deployment = kms("default", NEW, true);
        deployment.status.as_mut().unwrap().replicas = Some(2);
        deployment.status.as_mut().unwrap().updated_replicas = Some(2);
        deployment.status.as_mut().unwrap().available_replicas = Some(2);
        deployment.spec.as_mut().unwrap().replicas = Some(2);
        let mixed = judged(
            deployment,
            &[NEW, "docker.io/istio/proxyv2:1.30.40"],
            now("default", FINGERPRINT, NEW, ChosenBy::Injected),
            &names,
        );
        assert_eq!(mixed.result, Outcome::Fail, "{mixed:?}");
        assert!(
            mixed
                .hint
                .unwrap()
                .contains("kubectl rollout restart deployment/key-management-api -n kube-system")
        );
    }

    #[test]
    fn a_sidecar_injected_outside_the_plugin_is_compared_by_image() {
        let names = Names::runbook("");
        let same = judged(
            kms("default", NEW, false),
            &[NEW],
            now("default", "sha256:any", NEW, ChosenBy::Injected),
            &names,
        );
        assert_eq!(same.result, Outcome::Pass, "{same:?}");
        let older = judged(
            kms("default", OLD, false),
            &[OLD],
            now("default", "sha256:any", NEW, ChosenBy::Injected),
            &names,
        );
        assert_eq!(older.result, Outcome::Warn);
        assert!(older.hint.unwrap().contains("not injected by this plugin"));
    }
}
