//! One ingress gateway serves many applications. istiod merges every Gateway
//! whose selector matches a gateway pod, in any namespace, oldest first
//! (creation time, then name, then namespace); on one port, a TLS server that
//! names a host an earlier server already named (with the same `bind`) is
//! dropped, and a TLS server beside a plain-text one on the same port is
//! dropped too. `istioctl analyze` reports the first as IST0145
//! (ConflictingGateways). This module finds, among every Gateway read, the
//! servers that conflict with KMS's, and which of the two Istio keeps: `expose`
//! refuses to write a server that would conflict, `status` fails on one.
//!
//! Hosts are compared as the gateway matches them, by SNI: a host's namespace
//! part (`ns/host`) is left off, and `*` is the chain a client that sends no
//! name (or a name no other server claims) lands on.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use crate::objects::place::carries_labels;
use crate::objects::schemas::{Gateway, GatewaySpec, Server};

/// A server of another Gateway that collides with one of KMS's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// `namespace/name` of the other Gateway.
    pub gateway: String,
    pub port: u32,
    /// The other server's hosts, as written.
    pub hosts: Vec<String>,
    /// The hosts both servers claim; empty when the other server is plain
    /// text (it takes the whole port).
    pub shared: Vec<String>,
    /// Whether Istio keeps KMS's server (the other one is dropped).
    pub kms_kept: bool,
}

impl Conflict {
    /// The conflict in a sentence: the other Gateway, its server and which
    /// one Istio serves.
    pub fn describe(&self) -> String {
        let what = if self.shared.is_empty() {
            format!(
                "serves plain text on port {} (hosts {})",
                self.port,
                self.hosts.join(", ")
            )
        } else {
            format!(
                "claims {} on port {} (its hosts: {})",
                self.shared.join(", "),
                self.port,
                self.hosts.join(", ")
            )
        };
        let kept = if self.kms_kept {
            "Istio keeps KMS's server and drops that one, being older"
        } else {
            "Istio keeps that one, being older, and drops KMS's"
        };
        format!("Gateway {} {what}: {kept}", self.gateway)
    }
}

/// A Gateway as istiod orders and merges it.
#[derive(Debug, Clone, Copy)]
pub struct Merged<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    /// `None` for one not written yet: it will be the newest.
    pub created: Option<Timestamp>,
    pub spec: &'a GatewaySpec,
}

impl<'a> Merged<'a> {
    pub fn of(gateway: &'a Gateway) -> Merged<'a> {
        Merged {
            namespace: gateway.metadata.namespace.as_deref().unwrap_or_default(),
            name: gateway.metadata.name.as_deref().unwrap_or_default(),
            created: gateway.metadata.creation_timestamp.as_ref().map(|t| t.0),
            spec: &gateway.spec,
        }
    }

    /// Whether istiod merges this one before `other`.
    fn older_than(&self, other: &Merged) -> bool {
        let by_time = match (self.created, other.created) {
            (Some(mine), Some(theirs)) => mine.cmp(&theirs),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        by_time
            .then_with(|| self.name.cmp(other.name))
            .then_with(|| self.namespace.cmp(other.namespace))
            == Ordering::Less
    }

    fn same_object(&self, other: &Merged) -> bool {
        self.namespace == other.namespace && self.name == other.name
    }

    /// Whether `other`, another Gateway, is merged with this one onto the
    /// gateway pods this one selects (`pods`; when none are known, whether
    /// both select the same labels). An empty selector matches every
    /// gateway pod, as istiod applies it.
    pub fn shares_pods_with(&self, other: &Merged, pods: &[Pod]) -> bool {
        if self.same_object(other) {
            return false;
        }
        if pods.is_empty() {
            return other.spec.selector == self.spec.selector;
        }
        pods.iter()
            .any(|pod| carries_labels(pod, &other.spec.selector))
    }
}

/// The servers of `others` that conflict with those of `kms` on the gateway
/// pods `kms` selects (`pods`). KMS's own Gateway among `others` is skipped:
/// it is the one being checked or rewritten.
pub fn conflicts(kms: &Merged, others: &[Gateway], pods: &[Pod]) -> Vec<Conflict> {
    let mut found = Vec::new();
    for other in others.iter().map(Merged::of) {
        if !kms.shares_pods_with(&other, pods) {
            continue;
        }
        for ours in &kms.spec.servers {
            for theirs in &other.spec.servers {
                if let Some(shared) = collision(ours, theirs) {
                    found.push(Conflict {
                        gateway: format!("{}/{}", other.namespace, other.name),
                        port: theirs.port.number.unwrap_or_default(),
                        hosts: theirs.hosts.clone(),
                        shared,
                        kms_kept: kms.older_than(&other),
                    });
                }
            }
        }
    }
    found
}

/// The hosts two servers both claim, when they collide: same port and bind,
/// and either the same host on two TLS servers or a plain-text server beside
/// a TLS one (an empty list).
fn collision(ours: &Server, theirs: &Server) -> Option<Vec<String>> {
    if ours.port.number != theirs.port.number || bind(ours) != bind(theirs) {
        return None;
    }
    match (ours.tls.is_some(), theirs.tls.is_some()) {
        (true, true) => {
            let shared: Vec<String> = sni_hosts(ours)
                .intersection(&sni_hosts(theirs))
                .map(|host| (*host).to_owned())
                .collect();
            (!shared.is_empty()).then_some(shared)
        }
        (true, false) | (false, true) => Some(Vec::new()),
        (false, false) => None,
    }
}

fn bind(server: &Server) -> &str {
    server
        .rest
        .get("bind")
        .and_then(|bind| bind.as_str())
        .unwrap_or_default()
}

/// A server's hosts as the gateway matches them by SNI.
fn sni_hosts(server: &Server) -> BTreeSet<&str> {
    server
        .hosts
        .iter()
        .map(|host| host.rsplit('/').next().unwrap_or(host))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn gateway(namespace: &str, name: &str, created: &str, servers: serde_json::Value) -> Gateway {
        serde_json::from_value(json!({
            "apiVersion": "networking.istio.io/v1", "kind": "Gateway",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": created},
            "spec": {"selector": {"istio": "ingressgateway"}, "servers": servers},
        }))
        .unwrap()
    }

    fn https(hosts: &[&str]) -> serde_json::Value {
        json!([{"port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                "hosts": hosts, "tls": {"mode": "SIMPLE", "credentialName": "c"}}])
    }

    fn pod(labels: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"labels": labels}})).unwrap()
    }

    const KMS_CREATED: &str = "2026-01-02T00:00:00Z";

    fn check(kms_hosts: &[&str], other: &Gateway) -> Vec<Conflict> {
        let kms = gateway("kube-system", "kmsgateway", KMS_CREATED, https(kms_hosts));
        let pods = [pod(json!({"istio": "ingressgateway", "app": "gw"}))];
        conflicts(&Merged::of(&kms), std::slice::from_ref(other), &pods)
    }

    #[test]
    fn the_same_host_on_the_same_port_conflicts_and_the_older_is_kept() {
        let older = gateway("shop", "shop", "2026-01-01T00:00:00Z", https(&["*"]));
        let found = check(&["*"], &older);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].gateway, "shop/shop");
        assert_eq!(found[0].shared, ["*"]);
        assert!(!found[0].kms_kept);
        assert!(found[0].describe().contains("drops KMS's"), "{found:?}");

        let newer = gateway("shop", "shop", "2026-02-01T00:00:00Z", https(&["shop/*"]));
        let found = check(&["*"], &newer);
        assert!(found[0].kms_kept, "{found:?}");
    }

    #[test]
    fn a_host_of_its_own_lives_beside_a_wildcard() {
        let wildcard = gateway("shop", "shop", "2026-01-01T00:00:00Z", https(&["*"]));
        assert_eq!(check(&["kms.example.com"], &wildcard), []);
        let other_port = gateway(
            "shop",
            "shop",
            "2026-01-01T00:00:00Z",
            json!([{"port": {"number": 8443, "name": "https", "protocol": "HTTPS"},
                    "hosts": ["*"], "tls": {"mode": "SIMPLE"}}]),
        );
        assert_eq!(check(&["*"], &other_port), []);
    }

    #[test]
    fn plain_text_on_the_port_conflicts_whatever_the_hosts() {
        let plain = gateway(
            "shop",
            "shop",
            "2026-01-01T00:00:00Z",
            json!([{"port": {"number": 443, "name": "http", "protocol": "HTTP"}, "hosts": ["a.b"]}]),
        );
        let found = check(&["kms.example.com"], &plain);
        assert_eq!(found.len(), 1);
        assert!(found[0].describe().contains("plain text"), "{found:?}");
    }

    #[test]
    fn only_gateways_on_the_same_pods_and_never_kms_own() {
        let mut elsewhere = gateway("shop", "shop", "2026-01-01T00:00:00Z", https(&["*"]));
        elsewhere.spec.selector =
            std::collections::BTreeMap::from([("istio".into(), "egress".into())]);
        assert_eq!(check(&["*"], &elsewhere), []);
        let itself = gateway("kube-system", "kmsgateway", KMS_CREATED, https(&["*"]));
        assert_eq!(check(&["*"], &itself), []);
        let mut everywhere = elsewhere.clone();
        everywhere.spec.selector.clear();
        assert_eq!(check(&["*"], &everywhere).len(), 1);
    }

    #[test]
    fn a_gateway_not_written_yet_is_the_newest() {
        let spec: GatewaySpec = serde_json::from_value(
            json!({"selector": {"istio": "ingressgateway"}, "servers": https(&["*"])}),
        )
        .unwrap();
        let kms = Merged {
            namespace: "kube-system",
            name: "kmsgateway",
            created: None,
            spec: &spec,
        };
        let other = gateway("shop", "zzz", "2030-01-01T00:00:00Z", https(&["*"]));
        let found = conflicts(&kms, &[other], &[]);
        assert_eq!(found.len(), 1);
        assert!(!found[0].kms_kept);
    }
}
