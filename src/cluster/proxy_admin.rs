//! What a gateway proxy says of its own configuration: Envoy's admin
//! interface, which a gateway pod serves on its loopback only (port 15000),
//! read through a port-forward as `istioctl proxy-config` reads it. Neither
//! `pods/proxy` (it reaches the pod's address, not its loopback) nor the
//! agent's status port (no configuration there) can. Port-forwards take a
//! WebSocket, which the API server upgrades over HTTP/1.1 alone, hence the
//! cluster's tunnel client.

use std::borrow::Cow;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::cluster::{Cluster, http1, pod_port};
use crate::error::{Error, Result};

/// Where Envoy's admin interface listens in an Istio proxy's pod.
pub const ADMIN_PORT: u16 = 15000;

/// Reads pod `namespace/pod`'s configuration as istiod sent it and as its
/// proxy took it, endpoints included (`/config_dump?include_eds`), of the
/// resources whose names match the regular expression `names` (and the
/// bootstrap, which Envoy always sends): one request over one port-forward.
pub async fn config_dump(
    cluster: &Cluster,
    namespace: &str,
    pod: &str,
    names: &str,
) -> Result<Value> {
    let stream = pod_port::open(cluster, namespace, pod, ADMIN_PORT).await?;
    let failed = |detail: String| Error::ToolFailed {
        tool: "the gateway proxy's admin interface",
        detail: format!("{namespace}/{pod}: {detail}"),
    };
    let path = format!(
        "/config_dump?include_eds&name_regex={}",
        utf8_percent_encode(names, NON_ALPHANUMERIC)
    );
    let answer = http1::get(stream, "localhost", &path);
    let answer = match cluster.request_timeout() {
        Some(limit) => tokio::time::timeout(limit, answer)
            .await
            .map_err(|_| failed("no answer from /config_dump in time".into()))?,
        None => answer.await,
    }
    .map_err(|err| failed(format!("reading /config_dump: {err}")))?;
    if !answer.status.is_success() {
        return Err(failed(format!("/config_dump answered {}", answer.status)));
    }
    without_bootstrap(&answer.body).map_err(|err| failed(format!("reading /config_dump: {err}")))
}

/// A config dump, sections unparsed.
#[derive(Deserialize)]
struct Sections<'a> {
    #[serde(borrow)]
    configs: Vec<&'a RawValue>,
}

/// What kind of section a config dump's section is.
#[derive(Deserialize)]
struct SectionKind<'a> {
    #[serde(rename = "@type", borrow)]
    kind: Cow<'a, str>,
}

/// The config dump `body` without its bootstrap section, which Envoy sends
/// whatever resources are asked for and which the checks do not read: the
/// largest part of what is left, so it is never parsed.
fn without_bootstrap(body: &[u8]) -> serde_json::Result<Value> {
    let sections: Sections = serde_json::from_slice(body)?;
    let mut kept = Vec::with_capacity(sections.configs.len());
    for section in sections.configs {
        let SectionKind { kind } = serde_json::from_str(section.get())?;
        if !kind.ends_with(".BootstrapConfigDump") {
            kept.push(serde_json::from_str::<Value>(section.get())?);
        }
    }
    Ok(serde_json::json!({ "configs": kept }))
}
