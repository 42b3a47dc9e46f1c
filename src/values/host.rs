//! The addresses an operator gives for the gateway (`expose --host`, the
//! answers file): an IP address or a DNS name, checked when given. A value
//! type of its own because the manifests, the certificate checks and the
//! command line all read it, and none of them owns it.

use std::net::IpAddr;

/// An address clients use to reach the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Ip(IpAddr),
    Dns(String),
}

impl Host {
    /// An IP address: a client connecting to it names no host (no SNI).
    pub fn is_ip(&self) -> bool {
        matches!(self, Host::Ip(_))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
