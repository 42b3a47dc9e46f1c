//! The runbook's steps 5-12: the Certificate for the ingress gateway's TLS
//! secret, the Gateway, the VirtualService routing `/kms/api` to the KMS
//! Service, and the DestinationRule for TLS to it. Fixed from the runbook:
//! IP addresses go to `ipAddresses` (not `dnsNames`), the common name has no
//! typographic quotes, and the route's port is the Service's real port.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use serde_json::json;

use crate::apply::Desired;
use crate::discovery::{CertManagerApi, ISTIO_NETWORKING};

pub const CERTIFICATE: &str = "istio-ingressgateway-certs";
pub const GATEWAY: &str = "kmsgateway";
pub const VIRTUAL_SERVICE: &str = "kmsvservice";
pub const DESTINATION_RULE: &str = "kms-api-tls";
pub const KMS_SERVICE: &str = "kms-api";
/// Where the ingress gateway mounts `istio-ingressgateway-certs`.
const MOUNTED_CERT: &str = "/etc/istio/ingressgateway-certs/tls.crt";
const MOUNTED_KEY: &str = "/etc/istio/ingressgateway-certs/tls.key";

/// An address clients use to reach the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Ip(IpAddr),
    Dns(String),
}

/// Accepts an IP address or a DNS name (RFC 1123, `*.` wildcard allowed).
pub fn parse_host(text: &str) -> Result<Host, String> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(Host::Ip(ip));
    }
    let name = text.strip_prefix("*.").unwrap_or(text);
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    let looks_like_ip = text.chars().all(|c| c.is_ascii_digit() || c == '.');
    if looks_like_ip || text.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!(
            "\"{text}\" is neither an IP address nor a DNS name (letters, digits, '-' and '.')"
        ));
    }
    Ok(Host::Dns(text.to_ascii_lowercase()))
}

/// Refuses a common name that would put junk into the certificate.
pub fn check_common_name(text: &str) -> Result<(), String> {
    if text.is_empty() || text.chars().count() > 64 {
        return Err("must be 1 to 64 characters long".into());
    }
    if let Some(bad) = text
        .chars()
        .find(|c| !c.is_ascii_graphic() || "\"'`".contains(*c))
    {
        return Err(format!(
            "\"{text}\" contains {bad:?}; give the name without quotes (the runbook's sample has \
             typographic quotes around istio-service)"
        ));
    }
    Ok(())
}

/// Accepts a URI path prefix like `/kms/api`.
pub fn check_path(text: &str) -> Result<(), String> {
    if !text.starts_with('/') || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "\"{text}\" must start with '/' and contain no spaces"
        ));
    }
    Ok(())
}

/// The KMS Service's port the route must use: `explicit` when given (and
/// served by the Service), else the Service's only port.
pub fn service_port(service: &Service, explicit: Option<i32>) -> Result<i32, String> {
    let ports: Vec<i32> = service
        .spec
        .iter()
        .flat_map(|spec| spec.ports.iter().flatten())
        .map(|port| port.port)
        .collect();
    match (explicit, ports.as_slice()) {
        (Some(port), _) if ports.contains(&port) => Ok(port),
        (Some(port), _) => Err(format!(
            "the Service has no port {port} (its ports: {})",
            list(&ports)
        )),
        (None, [only]) => Ok(*only),
        (None, []) => Err("the Service has no ports".into()),
        (None, _) => Err(format!(
            "the Service has several ports ({}); choose one with --port",
            list(&ports)
        )),
    }
}

fn list(ports: &[i32]) -> String {
    ports
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Everything the four objects are made from.
#[derive(Debug, Clone)]
pub struct Exposure {
    pub kms_namespace: String,
    pub istio_namespace: String,
    pub cert_manager: CertManagerApi,
    pub istio_version: &'static str,
    pub issuer: String,
    pub issuer_kind: String,
    pub common_name: String,
    pub hosts: Vec<Host>,
    pub tls_credential_name: Option<String>,
    pub path_prefix: String,
    pub rewrite: String,
    pub port: i32,
}

impl Exposure {
    pub fn certificate(&self) -> Desired {
        let mut ips: Vec<String> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for host in &self.hosts {
            let (list, text) = match host {
                Host::Ip(ip) => (&mut ips, ip.to_string()),
                Host::Dns(name) => (&mut names, name.clone()),
            };
            if !list.contains(&text) {
                list.push(text);
            }
        }
        let mut spec = json!({
            "secretName": self.tls_secret_name(),
            "commonName": self.common_name,
            "issuerRef": {"name": self.issuer, "kind": self.issuer_kind},
        });
        if !ips.is_empty() {
            spec["ipAddresses"] = json!(ips);
        }
        if !names.is_empty() {
            spec["dnsNames"] = json!(names);
        }
        let api = self.cert_manager;
        Desired::new(
            (api.group(), api.version(), "Certificate", "certificates"),
            Some(&self.istio_namespace),
            CERTIFICATE,
            json!({ "spec": spec }),
        )
    }

    /// The secret the Certificate fills and the gateway serves.
    pub fn tls_secret_name(&self) -> &str {
        self.tls_credential_name.as_deref().unwrap_or(CERTIFICATE)
    }

    pub fn gateway(&self) -> Desired {
        let tls = match &self.tls_credential_name {
            Some(name) => json!({"mode": "SIMPLE", "credentialName": name}),
            None => {
                json!({"mode": "SIMPLE", "serverCertificate": MOUNTED_CERT, "privateKey": MOUNTED_KEY})
            }
        };
        self.networking(
            "Gateway",
            "gateways",
            GATEWAY,
            json!({"spec": {
                "selector": {"istio": "ingressgateway"},
                "servers": [{
                    "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                    "tls": tls,
                    "hosts": ["*"],
                }],
            }}),
        )
    }

    pub fn virtual_service(&self) -> Desired {
        self.networking(
            "VirtualService",
            "virtualservices",
            VIRTUAL_SERVICE,
            json!({"spec": {
                "hosts": ["*"],
                "gateways": [GATEWAY],
                "http": [{
                    "match": [{"uri": {"prefix": self.path_prefix}}],
                    "rewrite": {"uri": self.rewrite},
                    "route": [{"destination": {"host": KMS_SERVICE, "port": {"number": self.port}}}],
                }],
            }}),
        )
    }

    pub fn destination_rule(&self) -> Desired {
        self.networking(
            "DestinationRule",
            "destinationrules",
            DESTINATION_RULE,
            json!({"spec": {"host": KMS_SERVICE, "trafficPolicy": {"tls": {"mode": "SIMPLE"}}}}),
        )
    }

    fn networking(&self, kind: &str, plural: &str, name: &str, body: serde_json::Value) -> Desired {
        Desired::new(
            (ISTIO_NETWORKING, self.istio_version, kind, plural),
            Some(&self.kms_namespace),
            name,
            body,
        )
    }

    /// All four, in the order they are applied.
    pub fn objects(&self) -> Vec<Desired> {
        vec![
            self.certificate(),
            self.gateway(),
            self.virtual_service(),
            self.destination_rule(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposure(hosts: &[&str]) -> Exposure {
        Exposure {
            kms_namespace: "kube-system".into(),
            istio_namespace: "istio-system".into(),
            cert_manager: CertManagerApi::Current,
            istio_version: "v1",
            issuer: "icp-ca-issuer".into(),
            issuer_kind: "ClusterIssuer".into(),
            common_name: "istio-service".into(),
            hosts: hosts.iter().map(|h| parse_host(h).unwrap()).collect(),
            tls_credential_name: None,
            path_prefix: "/kms/api".into(),
            rewrite: "/api".into(),
            port: 28674,
        }
    }

    #[test]
    fn ips_and_names_go_to_their_own_fields() {
        let cert =
            exposure(&["9.42.136.50", "kms.example.com", "::1", "9.42.136.50"]).certificate();
        assert_eq!(cert.object["apiVersion"], "cert-manager.io/v1");
        assert_eq!(
            cert.object["spec"]["ipAddresses"],
            json!(["9.42.136.50", "::1"])
        );
        assert_eq!(cert.object["spec"]["dnsNames"], json!(["kms.example.com"]));
        assert_eq!(cert.object["spec"]["commonName"], "istio-service");
        assert_eq!(cert.object["metadata"]["namespace"], "istio-system");
    }

    #[test]
    fn legacy_cert_manager_uses_its_group() {
        let mut e = exposure(&["10.0.0.1"]);
        e.cert_manager = CertManagerApi::Legacy;
        assert_eq!(
            e.certificate().object["apiVersion"],
            "certmanager.k8s.io/v1alpha1"
        );
    }

    #[test]
    fn route_uses_the_given_port_and_version() {
        let mut e = exposure(&["10.0.0.1"]);
        e.istio_version = "v1alpha3";
        let vs = e.virtual_service();
        assert_eq!(vs.object["apiVersion"], "networking.istio.io/v1alpha3");
        let route = &vs.object["spec"]["http"][0];
        assert_eq!(route["route"][0]["destination"]["port"]["number"], 28674);
        assert_eq!(route["match"][0]["uri"]["prefix"], "/kms/api");
        assert_eq!(route["rewrite"]["uri"], "/api");
        assert_eq!(vs.object["spec"]["gateways"], json!(["kmsgateway"]));
    }

    #[test]
    fn gateway_serves_mounted_files_or_a_credential() {
        let mut e = exposure(&["10.0.0.1"]);
        let tls = &e.gateway().object["spec"]["servers"][0]["tls"];
        assert_eq!(tls["serverCertificate"], MOUNTED_CERT);
        e.tls_credential_name = Some("kms-gw-cert".into());
        let tls = e.gateway().object["spec"]["servers"][0]["tls"].clone();
        assert_eq!(
            tls,
            json!({"mode": "SIMPLE", "credentialName": "kms-gw-cert"})
        );
        assert_eq!(e.certificate().object["spec"]["secretName"], "kms-gw-cert");
    }

    #[test]
    fn hosts_are_checked() {
        assert_eq!(
            parse_host("9.42.136.50"),
            Ok(Host::Ip("9.42.136.50".parse().unwrap()))
        );
        assert_eq!(
            parse_host("*.Example.com"),
            Ok(Host::Dns("*.example.com".into()))
        );
        for bad in [
            "",
            "9.42.136",
            "999.1.1.1",
            "kms..example",
            "-kms.example",
            "kms_api",
            "a b",
        ] {
            assert!(parse_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn common_name_quotes_are_refused() {
        assert!(check_common_name("istio-service").is_ok());
        let err = check_common_name("\u{201c}istio-service\u{201d}").unwrap_err();
        assert!(err.contains("without quotes"), "{err}");
        assert!(check_common_name("\"istio-service\"").is_err());
        assert!(check_common_name(&"a".repeat(65)).is_err());
    }

    #[test]
    fn service_port_is_read_or_checked() {
        let service: Service = serde_json::from_value(json!({
            "spec": {"ports": [{"port": 28674}]}
        }))
        .unwrap();
        assert_eq!(service_port(&service, None), Ok(28674));
        assert_eq!(service_port(&service, Some(28674)), Ok(28674));
        assert!(
            service_port(&service, Some(443))
                .unwrap_err()
                .contains("no port 443")
        );
        let two: Service = serde_json::from_value(json!({
            "spec": {"ports": [{"port": 1}, {"port": 2}]}
        }))
        .unwrap();
        assert!(service_port(&two, None).unwrap_err().contains("--port"));
    }
}
