//! What `status --probe` met at one exposed host: an answer relayed from
//! KMS through the gateway's route, one the gateway gave itself, or none.
//! The request is sent by `cluster::probe`; the checks judge this.

use serde::{Deserialize, Serialize};

/// What a probe of one host met.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    pub host: String,
    /// Where the request went, `ADDRESS:PORT`.
    pub address: String,
    pub outcome: ProbeOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ProbeOutcome {
    /// The gateway relayed an answer from its upstream.
    #[serde(rename_all = "camelCase")]
    Upstream {
        status: u16,
        millis: u64,
        upstream_millis: Option<u64>,
    },
    /// The gateway answered on its own: no route, or no upstream.
    #[serde(rename_all = "camelCase")]
    Gateway {
        status: u16,
        millis: u64,
        server: Option<String>,
    },
    /// No HTTP answer: the address, the TLS handshake or the request failed.
    Failed { error: String },
}
