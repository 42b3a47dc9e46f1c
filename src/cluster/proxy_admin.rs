//! What a gateway proxy says of its own configuration: Envoy's admin
//! interface, which a gateway pod serves on its loopback only (port 15000),
//! read through a port-forward as `istioctl proxy-config` reads it. Neither
//! `pods/proxy` (it reaches the pod's address, not its loopback) nor the
//! agent's status port (no configuration there) can. Port-forwards take a
//! WebSocket, which the API server upgrades over HTTP/1.1 alone, hence the
//! cluster's tunnel client; through it, the admin interface is spoken to
//! over HTTP/2, so that one forwarded connection carries a request per
//! section at once.

use http::StatusCode;
use http_body_util::BodyExt;
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde_json::Value;

use crate::cluster::{Cluster, USER_AGENT, pod_port};
use crate::error::{Error, Result};

/// Where Envoy's admin interface listens in an Istio proxy's pod.
pub const ADMIN_PORT: u16 = 15000;

/// The sections of a config dump that the checks read: the field of
/// Envoy's `/config_dump` each is asked for by (`resource=`), and the type
/// of the dump it belongs to. Asked for one by one, they come without
/// Envoy's bootstrap, which a whole dump always carries and which is most
/// of it (86 KB of a gateway's 137 KB on the test cluster).
const SECTIONS: [(&str, &str); 5] = [
    ("dynamic_listeners", "ListenersConfigDump"),
    ("dynamic_route_configs", "RoutesConfigDump"),
    ("dynamic_active_clusters", "ClustersConfigDump"),
    ("dynamic_endpoint_configs", "EndpointsConfigDump"),
    ("dynamic_active_secrets", "SecretsConfigDump"),
];

/// Reads pod `namespace/pod`'s configuration as istiod sent it and as its
/// proxy took it, endpoints included, of the resources whose names match
/// the regular expression `names`: a request per section, all at once over
/// one port-forward. Returns the sections as `/config_dump` arranges them
/// (`{"configs": [{"@type": ...ListenersConfigDump, "dynamic_listeners":
/// [...]}, ...]}`).
pub async fn config_dump(
    cluster: &Cluster,
    namespace: &str,
    pod: &str,
    names: &str,
) -> Result<Value> {
    let failed = |detail: String| Error::ToolFailed {
        tool: "the gateway proxy's admin interface",
        detail: format!("{namespace}/{pod}: {detail}"),
    };
    let stream = pod_port::open(cluster, namespace, pod, ADMIN_PORT).await?;
    let names = utf8_percent_encode(names, NON_ALPHANUMERIC).to_string();
    let sections = read_sections(stream, &names);
    let sections = match cluster.request_timeout() {
        Some(limit) => tokio::time::timeout(limit, sections)
            .await
            .map_err(|_| failed("no answer from /config_dump in time".into()))?,
        None => sections.await,
    }
    .map_err(failed)?;
    Ok(serde_json::json!({ "configs": sections }))
}

/// What `/config_dump?resource=` answers: the entries of that field.
#[derive(Deserialize)]
struct Entries {
    #[serde(default)]
    configs: Vec<Value>,
}

/// Asks for every section of `SECTIONS` over `stream` at once and returns
/// each as a dump of its type holding the entries whose names match
/// `names` (percent-encoded); `Err` says which failed and how.
async fn read_sections(stream: pod_port::PodPort, names: &str) -> Result<Vec<Value>, String> {
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|err| format!("opening HTTP/2 to the admin interface: {err}"))?;
    let connection = tokio::spawn(connection);
    let sections = futures::future::try_join_all(SECTIONS.map(|(field, dump)| {
        let mut sender = sender.clone();
        async move {
            let path = format!("/config_dump?include_eds&resource={field}&name_regex={names}");
            let request = http::Request::get(format!("http://localhost{path}"))
                .header(http::header::USER_AGENT, USER_AGENT)
                .body(http_body_util::Empty::<Bytes>::new())
                .expect("a GET request is well formed");
            let reading = |err: hyper::Error| format!("reading {path}: {err}");
            let (head, body) = sender
                .send_request(request)
                .await
                .map_err(reading)?
                .into_parts();
            let body = body.collect().await.map_err(reading)?.to_bytes();
            if head.status != StatusCode::OK {
                return Err(format!("{path} answered {}", head.status));
            }
            let entries: Entries =
                serde_json::from_slice(&body).map_err(|err| format!("reading {path}: {err}"))?;
            Ok(serde_json::json!({
                "@type": format!("type.googleapis.com/envoy.admin.v3.{dump}"),
                field: entries.configs,
            }))
        }
    }))
    .await;
    connection.abort();
    sections
}
