//! What a gateway proxy holds for KMS, read from its own admin interface
//! (`cluster::proxy_admin`): the filter chains of KMS's gateway server (the
//! names they answer and the certificate they serve), KMS's route, the
//! kms-api cluster with its TLS and endpoints, and what the proxy rejected.
//! Only these parts of the proxy's configuration are kept: a gateway shared
//! by many applications holds theirs too, and a snapshot must stay small and
//! hold nothing of theirs beyond what the checks need. The certificates
//! kept are public (a serial number); Envoy redacts private keys itself.

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::manifests::exposure::KMS_SERVICE;
use crate::values::certificate;

/// One gateway proxy's account of KMS's part of its configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyReading {
    pub pod: String,
    /// The filter chains whose HTTP route is KMS's.
    pub chains: Vec<ChainReading>,
    /// The routes of KMS's route configuration; empty when the proxy holds
    /// none by that name.
    pub routes: Vec<RouteReading>,
    /// Whether the proxy holds KMS's route configuration at all.
    pub route_config: bool,
    /// The kms-api clusters (one per port) the proxy holds.
    pub clusters: Vec<ClusterReading>,
    /// What the proxy refused of what istiod sent, in Envoy's words.
    pub rejected: Vec<String>,
    /// Why the proxy could not be read; everything else is then empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

/// What the gateway proxies said of KMS's part of their configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum GatewayProxies {
    /// One reading per ready gateway pod.
    Read(Vec<ProxyReading>),
    /// Not read: why, and what would allow it.
    #[serde(rename_all = "camelCase")]
    Skipped { reason: String, hint: String },
}

impl Default for GatewayProxies {
    fn default() -> Self {
        GatewayProxies::Skipped {
            reason: "not read".into(),
            hint: String::new(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainReading {
    pub listener: String,
    /// The names (SNI) the chain answers; empty for every name.
    pub server_names: Vec<String>,
    /// The serial of the certificate it serves; `None` when the proxy has
    /// not loaded it.
    pub certificate_serial: Option<String>,
    /// Where the proxy loads it from, as istiod named it.
    pub certificate_source: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteReading {
    pub domains: Vec<String>,
    pub prefix: Option<String>,
    pub rewrite: Option<String>,
    pub cluster: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterReading {
    pub name: String,
    /// The upstream TLS: the name sent, and the names its certificate must
    /// hold; `None` without TLS of the DestinationRule's (plain text, or
    /// Istio's own mutual TLS).
    pub sni: Option<String>,
    pub verified_names: Vec<String>,
    pub endpoints: usize,
    pub healthy_endpoints: usize,
}

/// The name Istio gives the route configuration of a Gateway's HTTPS
/// server: `https.PORT.PORT_NAME.GATEWAY.NAMESPACE`.
pub fn route_config_name(port: u32, port_name: &str, gateway: &str, namespace: &str) -> String {
    format!("https.{port}.{port_name}.{gateway}.{namespace}")
}

/// The end of the name Istio gives kms-api's clusters in namespace
/// `kms_namespace`, one per port: `outbound|PORT||kms-api.NS.svc.cluster.local`.
pub fn kms_cluster_suffix(kms_namespace: &str) -> String {
    format!("||{KMS_SERVICE}.{kms_namespace}.svc.cluster.local")
}

/// The names of the resources `extract` reads, as one regular expression
/// for Envoy's `config_dump?name_regex=`, so that a proxy shared by many
/// applications sends KMS's part of its configuration (with its bootstrap)
/// rather than every application's: every listener (KMS's filter chains are
/// among the others' there), the route configuration `route`, the clusters
/// (and their endpoints) whose names end in `cluster_suffix`, and the
/// secrets gateway certificates are loaded from.
pub fn config_names(route: &str, cluster_suffix: &str) -> String {
    format!(
        "(.*_[0-9]+|{}|outbound\\|[0-9]+{}|(kubernetes|file-cert|file-root):.*)",
        regex_escaped(route),
        regex_escaped(cluster_suffix)
    )
}

/// `text` as a regular expression that matches it alone.
fn regex_escaped(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// What `config_dump` (Envoy's `/config_dump?include_eds`) holds for the
/// route configuration `route` and the clusters whose names end in
/// `cluster_suffix` (`||kms-api.NS.svc.cluster.local`).
pub fn extract(pod: &str, config_dump: &Value, route: &str, cluster_suffix: &str) -> ProxyReading {
    let section = |kind: &str| {
        config_dump["configs"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|config| {
                config["@type"]
                    .as_str()
                    .and_then(|type_url| type_url.rsplit('.').next())
                    == Some(kind)
            })
            .cloned()
            .unwrap_or(Value::Null)
    };
    let listeners = section("ListenersConfigDump");
    let routes = section("RoutesConfigDump");
    let secrets = section("SecretsConfigDump");
    let cluster_dump = section("ClustersConfigDump");
    let endpoints = section("EndpointsConfigDump");
    let mut reading = ProxyReading {
        pod: pod.to_owned(),
        ..ProxyReading::default()
    };
    for listener in list(&listeners["dynamic_listeners"]) {
        let name = listener["name"].as_str().unwrap_or_default();
        let chains = list(&listener["active_state"]["listener"]["filter_chains"]);
        let ours: Vec<&Value> = chains
            .filter(|chain| route_of(chain) == Some(route))
            .collect();
        if let Some(error) = listener.get("error_state")
            && (!ours.is_empty() || listener["active_state"].is_null())
        {
            reading
                .rejected
                .push(format!("listener {name}: {}", error_details(error)));
        }
        for chain in ours {
            let source = chain["transport_socket"]["typed_config"]["common_tls_context"]
                ["tls_certificate_sds_secret_configs"][0]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            reading.chains.push(ChainReading {
                listener: name.to_owned(),
                server_names: strings(&chain["filter_chain_match"]["server_names"]),
                certificate_serial: served_serial(&secrets, &source),
                certificate_source: source,
            });
        }
    }
    for config in list(&routes["dynamic_route_configs"]) {
        let config = &config["route_config"];
        if config["name"].as_str() != Some(route) {
            continue;
        }
        reading.route_config = true;
        for host in list(&config["virtual_hosts"]) {
            for entry in list(&host["routes"]) {
                let target = &entry["route"];
                let rewrite = target["prefix_rewrite"]
                    .as_str()
                    .map(str::to_owned)
                    .or_else(|| {
                        target["regex_rewrite"]["substitution"]
                            .as_str()
                            .map(str::to_owned)
                    });
                reading.routes.push(RouteReading {
                    domains: strings(&host["domains"]),
                    prefix: entry["match"]["prefix"]
                        .as_str()
                        .or_else(|| entry["match"]["path_separated_prefix"].as_str())
                        .map(str::to_owned),
                    rewrite,
                    cluster: target["cluster"].as_str().map(str::to_owned),
                });
            }
        }
    }
    for entry in list(&cluster_dump["dynamic_active_clusters"]) {
        let cluster = &entry["cluster"];
        let name = cluster["name"].as_str().unwrap_or_default();
        if !name.ends_with(cluster_suffix) {
            continue;
        }
        let tls = &cluster["transport_socket"]["typed_config"];
        let hosts: Vec<&Value> = list(&endpoints["dynamic_endpoint_configs"])
            .map(|config| &config["endpoint_config"])
            .filter(|config| config["cluster_name"].as_str() == Some(name))
            .flat_map(|config| list(&config["endpoints"]))
            .flat_map(|locality| list(&locality["lb_endpoints"]))
            .collect();
        reading.clusters.push(ClusterReading {
            name: name.to_owned(),
            sni: tls["sni"].as_str().map(str::to_owned),
            verified_names: list(
                &tls["common_tls_context"]["combined_validation_context"]
                    ["default_validation_context"]["match_subject_alt_names"],
            )
            .filter_map(|matcher| matcher["exact"].as_str().map(str::to_owned))
            .collect(),
            endpoints: hosts.len(),
            // Envoy leaves out a status of UNKNOWN, which it treats as
            // healthy, as it does HEALTHY.
            healthy_endpoints: hosts
                .iter()
                .filter(|host| {
                    matches!(
                        host["health_status"].as_str(),
                        None | Some("HEALTHY" | "UNKNOWN")
                    )
                })
                .count(),
        });
        if let Some(error) = entry.get("error_state") {
            reading
                .rejected
                .push(format!("cluster {name}: {}", error_details(error)));
        }
    }
    reading
}

fn list(value: &Value) -> impl Iterator<Item = &Value> {
    value.as_array().into_iter().flatten()
}

fn strings(value: &Value) -> Vec<String> {
    list(value)
        .filter_map(|item| item.as_str().map(str::to_owned))
        .collect()
}

/// The route configuration a filter chain's HTTP connection manager asks
/// for.
fn route_of(chain: &Value) -> Option<&str> {
    list(&chain["filters"])
        .find_map(|filter| filter["typed_config"]["rds"]["route_config_name"].as_str())
}

/// The serial of the certificate the proxy loaded as secret `name`.
fn served_serial(secrets: &Value, name: &str) -> Option<String> {
    let secret = list(&secrets["dynamic_active_secrets"])
        .find(|secret| secret["name"].as_str() == Some(name))?;
    let encoded =
        secret["secret"]["tls_certificate"]["certificate_chain"]["inline_bytes"].as_str()?;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    certificate::parse(&pem).ok().map(|cert| cert.serial)
}

/// Envoy's `error_state`: the details of the update it refused.
fn error_details(error: &Value) -> String {
    error["details"]
        .as_str()
        .map_or_else(|| error.to_string(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::certificate::fixtures::LEAF;
    use serde_json::json;

    const ROUTE: &str = "https.443.https.kmsgateway.kube-system";
    const CLUSTER: &str = "outbound|28674||kms-api.kube-system.svc.cluster.local";

    fn dump(listener_error: Option<Value>) -> Value {
        let encoded = base64::engine::general_purpose::STANDARD.encode(LEAF);
        let chain = |names: Value, route: &str, secret: &str| {
            json!({"filter_chain_match": {"server_names": names},
                   "filters": [{"typed_config": {"rds": {"route_config_name": route}}}],
                   "transport_socket": {"typed_config": {"common_tls_context": {
                       "tls_certificate_sds_secret_configs": [{"name": secret}]}}}})
        };
        let mut listener = json!({"name": "0.0.0.0_8443", "active_state": {"listener": {"filter_chains": [
            chain(json!(["kms.example.com"]), ROUTE, "kubernetes://kms-certs"),
            chain(json!(["shop.example.com"]), "https.443.https.shop.shop", "kubernetes://shop"),
        ]}}});
        if let Some(error) = listener_error {
            listener["error_state"] = error;
        }
        json!({"configs": [
            {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
             "dynamic_listeners": [listener]},
            {"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump", "dynamic_route_configs": [
                {"route_config": {"name": ROUTE, "virtual_hosts": [{"domains": ["kms.example.com"], "routes": [
                    {"match": {"prefix": "/kms/api"},
                     "route": {"cluster": CLUSTER, "prefix_rewrite": "/api"}}]}]}},
                {"route_config": {"name": "https.443.https.shop.shop", "virtual_hosts": []}}]},
            {"@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump", "dynamic_active_secrets": [
                {"name": "kubernetes://kms-certs",
                 "secret": {"tls_certificate": {"certificate_chain": {"inline_bytes": encoded}}}}]},
            {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump", "dynamic_active_clusters": [
                {"cluster": {"name": CLUSTER, "transport_socket": {"typed_config": {
                    "sni": "kms-api.kube-system.svc.cluster.local",
                    "common_tls_context": {"combined_validation_context": {"default_validation_context": {
                        "match_subject_alt_names": [{"exact": "kms-api.kube-system.svc.cluster.local"}]}}}}}}},
                {"cluster": {"name": "outbound|80||shop.shop.svc.cluster.local"}}]},
            {"@type": "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump", "dynamic_endpoint_configs": [
                {"endpoint_config": {"cluster_name": CLUSTER, "endpoints": [{"lb_endpoints": [
                    {"health_status": "HEALTHY"}, {"health_status": "UNHEALTHY"}, {}]}]}}]},
        ]})
    }

    #[test]
    fn envoy_is_asked_for_kms_part_and_the_listeners_and_secrets() {
        let names = config_names(
            &route_config_name(443, "https", "kmsgateway", "kms"),
            &kms_cluster_suffix("kms"),
        );
        let asked = regex::Regex::new(&format!("^(?:{names})$")).unwrap();
        for name in [
            "0.0.0.0_8443",
            "[::]_443",
            "https.443.https.kmsgateway.kms",
            "outbound|28674||kms-api.kms.svc.cluster.local",
            "outbound|443||kms-api.kms.svc.cluster.local",
            "kubernetes://istio-ingressgateway-certs",
            "file-cert:/etc/istio/ingressgateway-certs/tls.crt~/etc/istio/ingressgateway-certs/tls.key",
            "file-root:/etc/istio/ingressgateway-ca-certs/ca.crt",
        ] {
            assert!(asked.is_match(name), "{name} is not asked for by {names}");
        }
        for name in [
            "https.443.https.other-app.shop",
            "https.443.https.kmsgatewayX.kms",
            "outbound|80||storefront.shop.svc.cluster.local",
            "outbound|28674||kms-api.kms2.svc.cluster.local",
            "outbound|28674||kms-api.kms.svc.cluster.localX",
            "BlackHoleCluster",
        ] {
            assert!(!asked.is_match(name), "{name} is asked for by {names}");
        }
    }

    #[test]
    fn only_kms_part_of_a_shared_gateway_is_kept() {
        let reading = extract(
            "gw-1",
            &dump(None),
            ROUTE,
            "||kms-api.kube-system.svc.cluster.local",
        );
        let serial = certificate::parse(LEAF.as_bytes()).unwrap().serial;
        assert_eq!(
            reading.chains,
            [ChainReading {
                listener: "0.0.0.0_8443".into(),
                server_names: vec!["kms.example.com".into()],
                certificate_serial: Some(serial),
                certificate_source: "kubernetes://kms-certs".into(),
            }]
        );
        assert!(reading.route_config);
        assert_eq!(
            reading.routes,
            [RouteReading {
                domains: vec!["kms.example.com".into()],
                prefix: Some("/kms/api".into()),
                rewrite: Some("/api".into()),
                cluster: Some(CLUSTER.into()),
            }]
        );
        assert_eq!(reading.clusters.len(), 1);
        let cluster = &reading.clusters[0];
        assert_eq!(
            cluster.sni.as_deref(),
            Some("kms-api.kube-system.svc.cluster.local")
        );
        assert_eq!((cluster.endpoints, cluster.healthy_endpoints), (3, 2));
        assert!(reading.rejected.is_empty());
    }

    #[test]
    fn a_rejected_listener_is_reported_in_envoys_words() {
        let error = json!({"details": "duplicate matcher is: {\"server_names\": \"*\"}"});
        let reading = extract("gw-1", &dump(Some(error)), ROUTE, "||kms-api");
        assert_eq!(reading.rejected.len(), 1);
        assert!(reading.rejected[0].starts_with("listener 0.0.0.0_8443: duplicate matcher"));
        let nothing = extract("gw-1", &json!({}), ROUTE, "||kms-api");
        assert_eq!(
            nothing,
            ProxyReading {
                pod: "gw-1".into(),
                ..ProxyReading::default()
            }
        );
    }
}
