//! Typed, partial schemas of the custom objects the plugin writes and reads:
//! the Certificate (the same fields in cert-manager's current and legacy
//! APIs), the Gateway, VirtualService and DestinationRule, and the
//! IdentityMappingPolicy. Each struct names the fields the plugin sets or
//! checks; every other field is kept as it came in `rest`, so an object read
//! and written back loses nothing. The manifests build these structs and the
//! checks read them: a field spelled differently in the two places does not
//! compile.
//!
//! The group and version are not part of the type (`kube::core::Object`
//! takes them from an `ApiResource` at run time), because which ones a
//! cluster serves is learnt from discovery.

use std::collections::BTreeMap;

use kube::core::Object;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The fields of an object the plugin neither sets nor reads.
pub type Rest = Map<String, Value>;

/// Fields absent from what was read stay absent in what is written.
fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

pub type Certificate = Object<CertificateSpec, CertificateStatus>;
pub type Gateway = Object<GatewaySpec, Value>;
pub type VirtualService = Object<VirtualServiceSpec, Value>;
pub type DestinationRule = Object<DestinationRuleSpec, Value>;
pub type IdentityMappingPolicy = Object<IdentityMappingPolicySpec, Value>;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateSpec {
    #[serde(default, skip_serializing_if = "is_default")]
    pub secret_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_name: Option<String>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub issuer_ref: IssuerRef,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_addresses: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_names: Vec<String>,
    #[serde(flatten)]
    pub rest: Rest,
}

impl CertificateSpec {
    /// The names and addresses the certificate is for, names first.
    pub fn hosts(&self) -> impl Iterator<Item = &String> {
        self.dns_names.iter().chain(&self.ip_addresses)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IssuerRef {
    #[serde(default, skip_serializing_if = "is_default")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CertificateStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    #[serde(rename = "type", default, skip_serializing_if = "is_default")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub status: String,
    #[serde(flatten)]
    pub rest: Rest,
}

/// Whether the Certificate says it is issued and current.
pub fn certificate_ready(certificate: &Certificate) -> bool {
    certificate
        .status
        .iter()
        .flat_map(|status| &status.conditions)
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GatewaySpec {
    #[serde(default, skip_serializing_if = "is_default")]
    pub selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub servers: Vec<Server>,
    #[serde(flatten)]
    pub rest: Rest,
}

impl GatewaySpec {
    /// The HTTPS server: the one on port 443, else the first.
    pub fn https_server(&self) -> Option<&Server> {
        self.servers
            .iter()
            .find(|server| server.port.number == Some(443))
            .or_else(|| self.servers.first())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Server {
    #[serde(default, skip_serializing_if = "is_default")]
    pub port: ServerPort,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTls>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub hosts: Vec<String>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerPort {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// How a Gateway's server terminates TLS: with a credential loaded by name,
/// or with files its pods mount.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerTls {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VirtualServiceSpec {
    #[serde(default, skip_serializing_if = "is_default")]
    pub hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub gateways: Vec<String>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub http: Vec<HttpRoute>,
    #[serde(flatten)]
    pub rest: Rest,
}

impl VirtualServiceSpec {
    /// Where the first HTTP route sends requests.
    pub fn first_destination(&self) -> Option<&Destination> {
        let route = self.http.first()?.route.first()?;
        Some(&route.destination)
    }

    /// The path prefix the first HTTP route matches.
    pub fn first_prefix(&self) -> Option<&str> {
        let matched = self.http.first()?.matches.first()?;
        matched.uri.as_ref()?.prefix.as_deref()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpRoute {
    #[serde(rename = "match", default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<HttpMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<Rewrite>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub route: Vec<RouteDestination>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<UriMatch>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UriMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rewrite {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteDestination {
    #[serde(default, skip_serializing_if = "is_default")]
    pub destination: Destination,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Destination {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
    #[serde(flatten)]
    pub rest: Rest,
}

impl Destination {
    pub fn port_number(&self) -> Option<u32> {
        self.port.as_ref()?.number
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PortSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u32>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationRuleSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
    #[serde(flatten)]
    pub rest: Rest,
}

impl DestinationRuleSpec {
    /// How the gateway opens TLS to the host, when the rule says.
    pub fn tls(&self) -> Option<&ClientTls> {
        self.traffic_policy.as_ref()?.tls.as_ref()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrafficPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTls>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// How a client (the gateway) opens TLS to an upstream and verifies it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientTls {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityMappingPolicySpec {
    #[serde(default, skip_serializing_if = "is_default")]
    pub identity_mapping: IdentityMapping,
    #[serde(default, skip_serializing_if = "is_default")]
    pub mapping_type: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub source_authority: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub target_resources: Vec<String>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityMapping {
    #[serde(default, skip_serializing_if = "is_default")]
    pub source_identity: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub target_credentials: TargetCredentials,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetCredentials {
    #[serde(default, skip_serializing_if = "is_default")]
    pub api_key_ref: ApiKeyRef,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyRef {
    #[serde(default, skip_serializing_if = "is_default")]
    pub property_name: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub secret_name: String,
    #[serde(flatten)]
    pub rest: Rest,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn what_the_plugin_does_not_know_is_kept_as_it_came() {
        let read = json!({
            "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": "kms-api-tls", "namespace": "kube-system"},
            "spec": {
                "host": "kms-api",
                "exportTo": ["."],
                "trafficPolicy": {
                    "loadBalancer": {"simple": "ROUND_ROBIN"},
                    "tls": {"mode": "SIMPLE", "sni": "kms-api", "minProtocolVersion": "TLSV1_2"},
                },
            },
            "status": {"validationMessages": []},
        });
        let rule: DestinationRule = serde_json::from_value(read.clone()).unwrap();
        let tls = rule.spec.tls().unwrap();
        assert_eq!(tls.mode.as_deref(), Some("SIMPLE"));
        assert_eq!(tls.rest["minProtocolVersion"], "TLSV1_2");
        assert_eq!(serde_json::to_value(&rule).unwrap(), read);
    }

    #[test]
    fn readers_find_the_server_the_route_and_readiness() {
        let gateway: GatewaySpec = serde_json::from_value(json!({"servers": [
            {"port": {"number": 80}, "hosts": ["*"]},
            {"port": {"number": 443}, "hosts": ["*"], "tls": {"credentialName": "c"}},
        ]}))
        .unwrap();
        let https = gateway.https_server().unwrap();
        assert_eq!(
            https.tls.as_ref().unwrap().credential_name.as_deref(),
            Some("c")
        );

        let route: VirtualServiceSpec = serde_json::from_value(json!({"http": [
            {"route": [{"destination": {"host": "kms-api", "port": {"number": 28674}}}]}]}))
        .unwrap();
        let destination = route.first_destination().unwrap();
        assert_eq!(destination.host.as_deref(), Some("kms-api"));
        assert_eq!(destination.port_number(), Some(28674));
        assert_eq!(VirtualServiceSpec::default().first_destination(), None);

        let cert: Certificate = serde_json::from_value(json!({
            "metadata": {"name": "c"}, "spec": {"secretName": "s"},
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready"}]},
        }))
        .unwrap();
        assert!(certificate_ready(&cert));
        let mut pending = cert.clone();
        pending.status = None;
        assert!(!certificate_ready(&pending));
    }
}
