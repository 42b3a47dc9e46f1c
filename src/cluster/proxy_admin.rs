//! What a gateway proxy says of its own configuration: Envoy's admin
//! interface, which a gateway pod serves on its loopback only (port 15000),
//! read through a port-forward as `istioctl proxy-config` reads it. Neither
//! `pods/proxy` (it reaches the pod's address, not its loopback) nor the
//! agent's status port (no configuration there) can. Port-forwards take a
//! WebSocket, which the API server upgrades over HTTP/1.1 alone, hence the
//! cluster's tunnel client.

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use serde_json::Value;

use crate::cluster::{Cluster, http1};
use crate::error::{Error, Result};

/// Where Envoy's admin interface listens in an Istio proxy's pod.
pub const ADMIN_PORT: u16 = 15000;

/// Reads pod `namespace/pod`'s configuration as istiod sent it and as its
/// proxy took it, endpoints included (`/config_dump?include_eds`): one
/// request over one port-forward.
pub async fn config_dump(cluster: &Cluster, namespace: &str, pod: &str) -> Result<Value> {
    let pods: Api<Pod> = Api::namespaced(cluster.tunnel_client()?, namespace);
    let action = format!("forward port {ADMIN_PORT} of pod {namespace}/{pod}");
    let mut forward = cluster
        .call(&action, pods.portforward(pod, &[ADMIN_PORT]))
        .await?;
    let stream = forward
        .take_stream(ADMIN_PORT)
        .expect("the port asked for is forwarded");
    let failed = |detail: String| Error::ToolFailed {
        tool: "the gateway proxy's admin interface",
        detail: format!("{namespace}/{pod}: {detail}"),
    };
    let path = "/config_dump?include_eds";
    let answer = http1::get(stream, "localhost", path);
    let answer = match cluster.request_timeout() {
        Some(limit) => tokio::time::timeout(limit, answer)
            .await
            .map_err(|_| failed(format!("GET {path}: no answer in time")))?,
        None => answer.await,
    }
    .map_err(|err| failed(format!("GET {path}: {err}")))?;
    forward.abort();
    if !answer.status.is_success() {
        return Err(failed(format!("GET {path} answered {}", answer.status)));
    }
    serde_json::from_slice(&answer.body).map_err(|err| failed(format!("GET {path}: {err}")))
}
