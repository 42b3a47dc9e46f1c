//! The api key category: the Secret holds a key, and the token adapter's
//! pods started after it was last written.

use k8s_openapi::api::core::v1::Pod;

use crate::checks::snapshot::{Names, Snapshot, pod_ready};
use crate::checks::{Check, CheckId};
use crate::terminal::wording::count;

pub fn checks(s: &Snapshot, names: &Names) -> Vec<Check> {
    let secret_name = format!("{}/{}", names.istio_namespace, names.secret);
    let set_apikey = format!("run {}", names.command("set-apikey", ""));
    let value = s
        .apikey_secret
        .as_ref()
        .and_then(|secret| secret.fingerprint.as_ref());
    let mut checks = vec![match (&s.apikey_secret, value) {
        (None, _) => Check::fail(
            CheckId::ApiKeySecret,
            format!("{secret_name} does not exist"),
            set_apikey.clone(),
        ),
        (Some(_), None) => Check::fail(
            CheckId::ApiKeySecret,
            format!("{secret_name} has no value for key {}", names.secret_key),
            set_apikey,
        ),
        (Some(_), Some(fingerprint)) => Check::pass(
            CheckId::ApiKeySecret,
            format!("{secret_name} holds key {fingerprint}"),
        ),
    }];
    let adapter = format!("{}/{}", names.istio_namespace, names.token_adapter);
    let ready: Vec<&Pod> = s
        .token_adapter_pods
        .iter()
        .filter(|p| pod_ready(p))
        .collect();
    let changed = s
        .apikey_secret
        .as_ref()
        .and_then(|secret| secret.last_changed);
    let stale = ready
        .iter()
        .filter(|pod| {
            let started = pod
                .status
                .as_ref()
                .and_then(|st| st.start_time.as_ref())
                .map(|t| t.0.as_second());
            matches!((started, changed), (Some(started), Some(changed)) if started < changed)
        })
        .count();
    checks.push(if s.token_adapter.is_none() {
        Check::fail(
            CheckId::TokenAdapter,
            format!("deployment {adapter} does not exist"),
            "install STS, or name the deployment with --token-adapter",
        )
    } else if ready.is_empty() {
        Check::fail(
            CheckId::TokenAdapter,
            format!("no ready pod of {adapter}"),
            format!("check `kubectl get pods -n {}`", names.istio_namespace),
        )
    } else if stale > 0 && value.is_some() {
        Check::warn(
            CheckId::TokenAdapter,
            format!(
                "restart needed: {stale} of {} started before the key last changed",
                count(ready.len() as i64, "ready pod", "ready pods")
            ),
            format!(
                "run {} with the same key",
                names.command("set-apikey", " --restart")
            ),
        )
    } else {
        Check::pass(
            CheckId::TokenAdapter,
            format!(
                "{}, started after the key last changed",
                count(ready.len() as i64, "ready pod", "ready pods")
            ),
        )
    });
    checks
}
