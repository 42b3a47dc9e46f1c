//! `status --probe`: the one request the plugin sends anywhere but the API
//! server. An HTTPS request to an exposed host, from where the operator
//! stands, as a KMS client would send it: to the host's address (or the one
//! given), naming the host by SNI, verifying the gateway's certificate
//! against the CA that issued it (the Certificate's `ca.crt`) for that host.
//! Whether the answer came from KMS is told by Envoy itself: it marks an
//! answer it relayed from an upstream with `x-envoy-upstream-service-time`;
//! one it gave on its own (no route, no healthy upstream) has none.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};

use crate::cluster::http1;
use crate::values::probe::{Probe, ProbeOutcome};

/// The port clients reach the gateway's HTTPS server on.
pub const HTTPS_PORT: u16 = 443;

/// Probes `host` at `address` (`None`: the host's own address, resolved
/// here) with `GET path`, trusting `ca_pem`, within `timeout`.
pub async fn probe(
    host: &str,
    address: Option<IpAddr>,
    ca_pem: &[u8],
    path: &str,
    timeout: Duration,
) -> Probe {
    let target = match address {
        Some(ip) => Ok(SocketAddr::new(ip, HTTPS_PORT)),
        None => resolve(host).await,
    };
    let (address, outcome) = match target {
        Err(error) => ("unresolved".to_owned(), ProbeOutcome::Failed { error }),
        Ok(target) => {
            let outcome = tokio::time::timeout(timeout, request(host, target, ca_pem, path))
                .await
                .unwrap_or_else(|_| {
                    Err(format!(
                        "no answer within {}s",
                        timeout.as_secs_f64().round()
                    ))
                })
                .unwrap_or_else(|error| ProbeOutcome::Failed { error });
            (target.to_string(), outcome)
        }
    };
    Probe {
        host: host.to_owned(),
        address,
        outcome,
    }
}

async fn resolve(host: &str) -> Result<SocketAddr, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, HTTPS_PORT));
    }
    tokio::net::lookup_host((host, HTTPS_PORT))
        .await
        .map_err(|err| format!("{host} does not resolve here ({err}); pass --probe-address"))?
        .next()
        .ok_or_else(|| format!("{host} resolves to no address; pass --probe-address"))
}

async fn request(
    host: &str,
    target: SocketAddr,
    ca_pem: &[u8],
    path: &str,
) -> Result<ProbeOutcome, String> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|err| format!("the issuing CA is not PEM: {err}"))?;
        roots
            .add(cert)
            .map_err(|err| format!("the issuing CA is not usable: {err}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| err.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_owned()).map_err(|err| err.to_string())?;
    let started = Instant::now();
    let tcp = tokio::net::TcpStream::connect(target)
        .await
        .map_err(|err| format!("cannot connect to {target}: {err}"))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|err| format!("TLS with the gateway failed: {err}"))?;
    let answer = http1::get(tls, host, path)
        .await
        .map_err(|err| format!("the request failed: {err}"))?;
    let millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let header = |name: &str| {
        answer
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let status = answer.status.as_u16();
    Ok(match header("x-envoy-upstream-service-time") {
        Some(upstream) => ProbeOutcome::Upstream {
            status,
            millis,
            upstream_millis: upstream.parse().ok(),
        },
        None => ProbeOutcome::Gateway {
            status,
            millis,
            server: header("server"),
        },
    })
}
