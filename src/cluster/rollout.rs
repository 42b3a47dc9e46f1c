//! Restarting a Deployment the way `kubectl rollout restart` does (a new
//! `restartedAt` annotation on the pod template, so the Deployment replaces
//! its pods as a rolling update) and waiting, like `kubectl rollout status`,
//! until every replica runs the new template and is available.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use serde_json::json;

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::objects::mounts;
use crate::objects::place::{carries_labels, without_managed_fields};
use crate::objects::rollout_state::{RolloutState, rollout_state};
use crate::terminal::progress::Progress;
use crate::values::duration;

pub const FIELD_MANAGER: &str = "kubectl-kms-sts";
const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
/// The longest a single watch stays open before it is started again.
const MAX_WATCH: Duration = Duration::from_secs(290);

/// Triggers a rolling restart of a Deployment, as `kubectl rollout restart`.
pub async fn restart(cluster: &Cluster, namespace: &str, name: &str, dry_run: bool) -> Result<()> {
    let api: Api<Deployment> = Api::namespaced(cluster.client(), namespace);
    let stamp = restart_stamp(jiff::Timestamp::now());
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}});
    let params = PatchParams {
        dry_run,
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    cluster
        .call(
            &format!("restart deployment {namespace}/{name}"),
            api.patch(name, &params, &Patch::Strategic(&patch)),
        )
        .await?;
    Ok(())
}

/// The `restartedAt` value for a restart at `now`: RFC 3339 with the fraction
/// of a second, because two restarts within one second must still differ, or
/// the second changes no template and starts no rollout.
fn restart_stamp(now: jiff::Timestamp) -> String {
    now.to_string()
}

/// Waits until the Deployment's rollout is complete; returns its ready
/// replicas. Reads the Deployment, then watches it from that version, so each
/// change the controllers make is seen as it happens; a watch the server
/// ends (its time limit, a compaction) is started again from a fresh read.
pub async fn wait(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<i32> {
    let api: Api<Deployment> = Api::namespaced(cluster.client(), namespace);
    let mut progress = Progress::start(&format!("waiting for deployment {namespace}/{name}"));
    let deadline = tokio::time::Instant::now() + timeout;
    let action = format!("read deployment {namespace}/{name}");
    let timed_out = |progress: String| Error::RolloutTimeout {
        kind: "Deployment",
        namespace: namespace.into(),
        name: name.into(),
        timeout: duration::display(timeout),
        progress,
    };
    loop {
        let deployment = cluster.call(&action, api.get(name)).await?;
        let mut last = match observe(&deployment, namespace, name)? {
            ControlFlow::Break(ready) => return Ok(ready),
            ControlFlow::Continue(text) => text,
        };
        progress.update(&format!("deployment {namespace}/{name}: {last}"));
        let version = deployment
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default();
        let params = WatchParams::default()
            .fields(&format!("metadata.name={name}"))
            .timeout(watch_seconds(cluster, deadline));
        let mut changes = cluster
            .call(&action, api.watch(&params, &version))
            .await?
            .boxed();
        loop {
            let next = match tokio::time::timeout_at(deadline, changes.next()).await {
                Ok(next) => next,
                Err(_) => return Err(timed_out(last)),
            };
            match next {
                Some(Ok(WatchEvent::Added(deployment) | WatchEvent::Modified(deployment))) => {
                    last = match observe(&deployment, namespace, name)? {
                        ControlFlow::Break(ready) => return Ok(ready),
                        ControlFlow::Continue(text) => text,
                    };
                    progress.update(&format!("deployment {namespace}/{name}: {last}"));
                }
                Some(Ok(WatchEvent::Deleted(_))) => {
                    return Err(Error::RolloutFailed {
                        kind: "Deployment",
                        namespace: namespace.into(),
                        name: name.into(),
                        reason: "the Deployment was deleted while its rollout was awaited".into(),
                    });
                }
                Some(Ok(WatchEvent::Bookmark(_))) => {}
                // The watch ended, expired or broke: read again (a server
                // that stopped answering fails that read in time) and watch
                // anew.
                Some(Ok(WatchEvent::Error(_)) | Err(_)) | None => break,
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(timed_out(last));
        }
    }
}

/// How long one watch may stay open: until the deadline, but under the
/// request timeout (a watch with no change sends nothing) and the server's
/// usual limit.
fn watch_seconds(cluster: &Cluster, deadline: tokio::time::Instant) -> u32 {
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    let quiet_limit = cluster.request_timeout().map_or(MAX_WATCH, |limit| {
        limit.saturating_sub(Duration::from_secs(1))
    });
    left.min(quiet_limit)
        .min(MAX_WATCH)
        .as_secs()
        .clamp(1, MAX_WATCH.as_secs()) as u32
}

/// The ready replicas once the rollout is complete (`Break`), how far it
/// got while it goes on (`Continue`), or the controller's reason once it failed.
fn observe(
    deployment: &Deployment,
    namespace: &str,
    name: &str,
) -> Result<ControlFlow<i32, String>> {
    match rollout_state(deployment) {
        RolloutState::Complete { ready } => Ok(ControlFlow::Break(ready)),
        RolloutState::InProgress(text) => Ok(ControlFlow::Continue(text)),
        RolloutState::Failed(reason) => Err(Error::RolloutFailed {
            kind: "Deployment",
            namespace: namespace.into(),
            name: name.into(),
            reason,
        }),
    }
}

/// The pods a Deployment's selector matches, terminating ones included.
pub async fn pods(cluster: &Cluster, namespace: &str, deployment: &Deployment) -> Result<Vec<Pod>> {
    pods_with_labels(cluster, namespace, &selector_labels(deployment)).await
}

/// The labels a Deployment selects its pods by.
pub fn selector_labels(deployment: &Deployment) -> BTreeMap<String, String> {
    deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.selector.match_labels.clone())
        .unwrap_or_default()
}

/// The pods each selector selects (those carrying every one of its labels,
/// as a list by those labels would have them; `None` selects none), in the
/// selectors' order. Each pod is moved to where it is selected, copied only
/// when two selectors select it; the rest are dropped.
pub fn select<const N: usize>(
    pods: Vec<Pod>,
    selectors: [Option<&BTreeMap<String, String>>; N],
) -> [Vec<Pod>; N] {
    let mut selected: [Vec<Pod>; N] = std::array::from_fn(|_| Vec::new());
    for pod in pods {
        let by: Vec<usize> = (0..N)
            .filter(|&index| selectors[index].is_some_and(|labels| carries_labels(&pod, labels)))
            .collect();
        if let Some((&last, others)) = by.split_last() {
            for &index in others {
                selected[index].push(pod.clone());
            }
            selected[last].push(pod);
        }
    }
    selected
}

/// The pods of `namespace` that carry every one of `labels` (every pod
/// when there are none), as the plugin reads them (`as_read`).
pub async fn pods_with_labels(
    cluster: &Cluster,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> Result<Vec<Pod>> {
    let selector = labels
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(",");
    let api: Api<Pod> = Api::namespaced(cluster.client(), namespace);
    let action = if selector.is_empty() {
        format!("list pods in {namespace}")
    } else {
        format!("list pods {selector} in {namespace}")
    };
    let list = cluster
        .call(&action, api.list(&ListParams::default().labels(&selector)))
        .await?;
    Ok(list.items.into_iter().map(as_read).collect())
}

/// `pod` without what the plugin never reads of a pod: its managed fields
/// and the parts `mounts::without_unread_parts` drops.
fn as_read(pod: Pod) -> Pod {
    let mut pod = without_managed_fields(pod);
    if let Some(spec) = pod.spec.as_mut() {
        mounts::without_unread_parts(spec);
    }
    pod
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_a_millisecond_apart_get_different_stamps() {
        let first: jiff::Timestamp = "2026-11-29T10:36:14.001Z".parse().unwrap();
        let second = first + jiff::SignedDuration::from_millis(1);
        assert_eq!(restart_stamp(first), "2026-11-29T10:36:14.001Z");
        assert_eq!(restart_stamp(second), "2026-11-29T10:36:14.002Z");
    }

    fn pod(name: &str, labels: &[(&str, &str)]) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some(name.to_owned());
        pod.metadata.labels = Some(
            labels
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect(),
        );
        pod
    }

    fn names(pods: &[Pod]) -> Vec<&str> {
        pods.iter()
            .map(|pod| pod.metadata.name.as_deref().unwrap())
            .collect()
    }

    #[test]
    fn selected_pods_go_where_every_label_matches_and_a_pod_both_select_goes_to_both() {
        let pods = vec![
            pod("gateway", &[("istio", "ingressgateway"), ("app", "gw")]),
            pod("adapter", &[("app", "tokenadapter")]),
            pod("other", &[("istio", "ingressgateway")]),
            pod(
                "shared",
                &[("istio", "ingressgateway"), ("app", "tokenadapter")],
            ),
        ];
        let gateway = BTreeMap::from([
            ("istio".to_owned(), "ingressgateway".to_owned()),
            ("app".to_owned(), "gw".to_owned()),
        ]);
        let adapter = BTreeMap::from([("app".to_owned(), "tokenadapter".to_owned())]);
        let [gateway_pods, adapter_pods] = select(pods.clone(), [Some(&gateway), Some(&adapter)]);
        assert_eq!(names(&gateway_pods), ["gateway"]);
        assert_eq!(names(&adapter_pods), ["adapter", "shared"]);

        let wide = BTreeMap::from([("istio".to_owned(), "ingressgateway".to_owned())]);
        let [wide_pods, adapter_pods] = select(pods.clone(), [Some(&wide), Some(&adapter)]);
        assert_eq!(names(&wide_pods), ["gateway", "other", "shared"]);
        assert_eq!(names(&adapter_pods), ["adapter", "shared"]);

        // No labels select every pod, as a list without a selector does;
        // no selector selects none.
        let [every, none] = select(pods, [Some(&BTreeMap::new()), None]);
        assert_eq!(every.len(), 4);
        assert!(none.is_empty());
    }
}
