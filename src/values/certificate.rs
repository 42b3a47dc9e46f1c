//! What a PEM certificate says, as far as the data path depends on it: the
//! names and addresses it covers, when it expires, and whether a CA signed
//! it. `expose` reads kms-api's certificate to know which name the gateway
//! must verify and which CA it must trust; `status` checks the gateway's
//! certificate against the hosts and the DestinationRule's CA against
//! kms-api's certificate. Pure: PEM text in, facts out.

use std::net::IpAddr;

use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;
use x509_parser::prelude::X509Certificate;

use crate::values::host::Host;

/// The facts of one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub subject: String,
    pub issuer: String,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    /// Seconds since the Unix epoch.
    pub not_after: i64,
    /// The serial number in hexadecimal, as `openssl x509 -serial` prints it:
    /// what tells a renewed certificate from the one before.
    pub serial: String,
    der: Vec<u8>,
}

/// The first certificate of a PEM bundle.
pub fn parse(pem: &[u8]) -> Result<Certificate, String> {
    let block = Pem::iter_from_buffer(pem)
        .next()
        .ok_or("holds no PEM certificate")?
        .map_err(|err| format!("is not PEM: {err}"))?;
    let cert = block
        .parse_x509()
        .map_err(|err| format!("is not an X.509 certificate: {err}"))?;
    let mut dns_names = Vec::new();
    let mut ip_addresses = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => dns_names.push(dns.to_ascii_lowercase()),
                GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_from_bytes(bytes) {
                        ip_addresses.push(ip);
                    }
                }
                _ => {}
            }
        }
    }
    Ok(Certificate {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        dns_names,
        ip_addresses,
        not_after: cert.validity().not_after.timestamp(),
        serial: serial_hex(cert.raw_serial()),
        der: block.contents,
    })
}

/// A serial number's bytes as OpenSSL prints the number: hexadecimal, in
/// whole bytes, without the zero byte DER puts before a high first bit.
fn serial_hex(raw: &[u8]) -> String {
    let start = raw
        .iter()
        .position(|byte| *byte != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    raw[start..]
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect()
}

/// Every certificate of a PEM bundle (a CA file may hold several).
pub fn parse_all(pem: &[u8]) -> Result<Vec<Certificate>, String> {
    let mut certs = Vec::new();
    let mut rest = pem;
    while let Some(start) = find(rest, b"-----BEGIN CERTIFICATE-----") {
        let end = find(&rest[start..], b"-----END CERTIFICATE-----")
            .map(|end| start + end + b"-----END CERTIFICATE-----".len())
            .ok_or("has a certificate without its END line")?;
        certs.push(parse(&rest[start..end])?);
        rest = &rest[end..];
    }
    if certs.is_empty() {
        return Err("holds no PEM certificate".into());
    }
    Ok(certs)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

impl Certificate {
    fn x509(&self) -> X509Certificate<'_> {
        // The DER was parsed once already in `parse`.
        x509_parser::parse_x509_certificate(&self.der)
            .expect("parsed before")
            .1
    }

    /// Whether a TLS client connecting to `host` accepts this certificate's
    /// names (a `*.` name covers one label).
    pub fn covers(&self, host: &Host) -> bool {
        match host {
            Host::Ip(ip) => self.ip_addresses.contains(ip),
            Host::Dns(name) => self.covers_name(name),
        }
    }

    /// Whether `name` is one of the certificate's DNS names.
    pub fn covers_name(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        self.dns_names.iter().any(|have| {
            have == &name
                || have.strip_prefix("*.").is_some_and(|suffix| {
                    name.split_once('.')
                        .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix)
                })
        })
    }

    /// Whether one of `cas` signed this certificate.
    pub fn signed_by_any(&self, cas: &[Certificate]) -> bool {
        let cert = self.x509();
        cas.iter().any(|ca| {
            let ca = ca.x509();
            cert.issuer() == ca.subject() && cert.verify_signature(Some(ca.public_key())).is_ok()
        })
    }
}

/// Certificates and secrets for the unit tests of the modules that read them.
#[cfg(test)]
pub mod fixtures {
    use base64::Engine;
    use k8s_openapi::api::core::v1::Secret;

    // A CA and a leaf it signed for kms-api.kube-system.svc.cluster.local,
    // *.example.com and 10.0.0.7; and a second, unrelated CA.
    pub const CA: &str = include_str!("testdata/ca.crt");
    pub const LEAF: &str = include_str!("testdata/leaf.crt");
    pub const OTHER_CA: &str = include_str!("testdata/other-ca.crt");

    /// A `kubernetes.io/tls` Secret holding `data`.
    pub fn secret(data: &[(&str, &str)]) -> Secret {
        let data: serde_json::Map<String, serde_json::Value> = data
            .iter()
            .map(|(key, value)| {
                let encoded = base64::engine::general_purpose::STANDARD.encode(value);
                ((*key).to_owned(), serde_json::Value::from(encoded))
            })
            .collect();
        serde_json::from_value(serde_json::json!({"type": "kubernetes.io/tls", "data": data}))
            .expect("a Secret")
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{CA, LEAF, OTHER_CA};
    use super::*;
    use crate::values::host::parse_host;

    #[test]
    fn names_addresses_and_expiry_are_read() {
        let leaf = parse(LEAF.as_bytes()).unwrap();
        assert!(leaf.covers_name("kms-api.kube-system.svc.cluster.local"));
        assert!(leaf.covers(&parse_host("kms.example.com").unwrap()));
        assert!(!leaf.covers(&parse_host("a.kms.example.com").unwrap()));
        assert!(leaf.covers(&parse_host("10.0.0.7").unwrap()));
        assert!(!leaf.covers(&parse_host("10.0.0.8").unwrap()));
        assert!(leaf.not_after > 1_900_000_000, "{}", leaf.not_after);
        assert!(leaf.issuer.contains("test-ca"), "{}", leaf.issuer);
    }

    #[test]
    fn the_signing_ca_is_recognised_and_another_is_not() {
        let leaf = parse(LEAF.as_bytes()).unwrap();
        let ca = parse_all(CA.as_bytes()).unwrap();
        let other = parse_all(OTHER_CA.as_bytes()).unwrap();
        assert!(leaf.signed_by_any(&ca));
        assert!(!leaf.signed_by_any(&other));
        let both = parse_all(format!("{OTHER_CA}{CA}").as_bytes()).unwrap();
        assert_eq!(both.len(), 2);
        assert!(leaf.signed_by_any(&both));
    }

    #[test]
    fn text_that_is_no_certificate_is_refused() {
        assert!(parse(b"x").is_err());
        assert!(parse_all(b"").is_err());
        assert!(parse_all(b"-----BEGIN CERTIFICATE-----\nAAAA").is_err());
    }
}
