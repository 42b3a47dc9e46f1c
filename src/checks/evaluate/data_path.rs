//! The data path category: what the gateway pods would really do with a
//! request, from the certificate they load to the TLS they speak to KMS.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use crate::checks::evaluate::exposure::shown;
use crate::checks::evaluate::{gateway_config, shared_gateway};
use crate::checks::snapshot::{Names, Snapshot, expose_command, gateway_labels, pod_ready};
use crate::checks::{Check, CheckId};
use crate::objects::mounts::{secret_data, secret_mounted_at};
use crate::objects::owned::{self, GATEWAY};
use crate::objects::schemas::{ClientTls, ServerTls};
use crate::terminal::wording::count;
use crate::values::certificate::{self, Certificate};
use crate::values::host::{self, Host};
use crate::values::probe::{Probe, ProbeOutcome};

/// The checks that tell whether a request to the gateway reaches KMS: a
/// gateway pod serves the Gateway, it can load the certificate, the
/// certificate covers the hosts and is in date, and the gateway trusts the
/// certificate kms-api really serves.
pub fn checks(s: &Snapshot, names: &Names) -> Vec<Check> {
    let expose = format!("run {}", expose_command(s, names));
    let expose = expose.as_str();
    let Some(gateway) = &s.gateway else {
        return vec![Check::fail(
            CheckId::GatewayPods,
            format!(
                "no Gateway {}/{GATEWAY} to serve requests",
                names.kms_namespace
            ),
            expose,
        )];
    };
    let selector = gateway_labels(gateway)
        .iter()
        .map(|(label, value)| format!("{label}={value}"))
        .collect::<Vec<_>>()
        .join(",");
    let ready = s.gateway_pods.iter().filter(|p| pod_ready(p)).count();
    let mut checks = vec![if ready == 0 {
        Check::fail(
            CheckId::GatewayPods,
            format!(
                "no ready pod in {} has the Gateway's labels {selector}",
                names.istio_namespace
            ),
            format!(
                "run {} with your ingress gateway pods' label",
                names.command("expose", " --host ADDRESS --gateway-selector LABEL=VALUE")
            ),
        )
    } else {
        Check::pass(
            CheckId::GatewayPods,
            format!(
                "{} in {} labelled {selector}",
                count(ready as i64, "ready pod", "ready pods"),
                names.istio_namespace
            ),
        )
    }];
    checks.push(shared_gateway::check(s, names, gateway));
    let tls = gateway
        .spec
        .https_server()
        .and_then(|server| server.tls.as_ref());
    let served = match tls {
        Some(ServerTls {
            credential_name: Some(name),
            ..
        }) => credential_source(s, names, name, &["tls.crt", "cert"]),
        Some(ServerTls {
            server_certificate: Some(path),
            ..
        }) => file_source(s, names, path),
        _ => Err("the Gateway's HTTPS server names no certificate".to_owned()),
    };
    let served = served.and_then(|source| {
        certificate::parse(source.data)
            .map(|cert| (source.describe.clone(), cert))
            .map_err(|problem| format!("{} {problem}", source.describe))
    });
    checks.push(match &served {
        Ok((describe, _)) => Check::pass(
            CheckId::GatewayCertificate,
            format!("served from {describe}"),
        ),
        Err(problem) => Check::fail(
            CheckId::GatewayCertificate,
            problem.clone(),
            format!(
                "{expose} again: it delivers the certificate the way the selected gateway pods \
                 can load it"
            ),
        ),
    });
    if let Ok((_, cert)) = &served {
        checks.push(certificate_hosts(s, cert, names));
    }
    checks.push(upstream_trust(s, names, expose));
    checks.push(gateway_config::check(s, names));
    if let Some(probes) = &s.probes {
        checks.push(probe_check(probes, expose));
    }
    checks
}

/// `--probe`: every exposed host answered by KMS through the route.
pub(super) fn probe_check(probes: &[Probe], expose: &str) -> Check {
    if probes.is_empty() {
        return Check::fail(
            CheckId::Probe,
            "no host to probe: the Certificate names none",
            expose,
        );
    }
    let mut reached = Vec::new();
    let mut missed = Vec::new();
    for probe in probes {
        let at = format!("{} (at {})", probe.host, probe.address);
        match &probe.outcome {
            ProbeOutcome::Upstream {
                status,
                millis,
                upstream_millis,
            } => reached.push(format!(
                "{at}: KMS answered HTTP {status} through the route in {millis} ms{}",
                upstream_millis
                    .map(|ms| format!(" ({ms} ms upstream)"))
                    .unwrap_or_default()
            )),
            ProbeOutcome::Gateway { status, millis, .. } => missed.push(format!(
                "{at}: the gateway answered HTTP {status} itself in {millis} ms, with no \
                 upstream: no route to KMS for this host"
            )),
            ProbeOutcome::Failed { error } => missed.push(format!("{at}: {error}")),
        }
    }
    if missed.is_empty() {
        Check::pass(CheckId::Probe, reached.join("; "))
    } else {
        let mut said = missed;
        said.extend(reached);
        Check::fail(
            CheckId::Probe,
            said.join("; "),
            format!(
                "{expose}; the gateway config check says what the gateway holds (a host that \
                 does not resolve here needs --probe-address)"
            ),
        )
    }
}

/// Certificates closer than this to their end are warned about.
const EXPIRY_WARNING_SECONDS: i64 = 30 * 24 * 3600;

/// Where a gateway pod reads a certificate from, and its data.
struct Source<'a> {
    describe: String,
    data: &'a [u8],
}

/// A file of the ready gateway pods: every one must mount, at the file's
/// directory, the same secret holding the file's name as a key.
fn file_source<'a>(s: &'a Snapshot, names: &Names, path: &str) -> Result<Source<'a>, String> {
    let (dir, key) = path
        .rsplit_once('/')
        .ok_or(format!("{path} is no file path"))?;
    let ready: Vec<&Pod> = s.gateway_pods.iter().filter(|p| pod_ready(p)).collect();
    let mounted: Vec<Option<String>> = ready.iter().map(|p| secret_mounted_at(p, dir)).collect();
    let Some(Some(secret)) = mounted.first() else {
        return Err(format!("the gateway pods mount no secret at {dir}"));
    };
    if mounted.iter().any(|m| m.as_ref() != Some(secret)) {
        return Err(format!(
            "not every gateway pod mounts secret {secret} at {dir}"
        ));
    }
    let namespace = &names.istio_namespace;
    let found = s.gateway_secrets.get(secret).ok_or(format!(
        "{dir} is mounted from secret {namespace}/{secret}, which does not exist"
    ))?;
    let data = secret_data(found, key).ok_or(format!(
        "secret {namespace}/{secret} mounted at {dir} holds no {key}"
    ))?;
    Ok(Source {
        describe: format!("{path} (secret {namespace}/{secret} mounted at {dir})"),
        data,
    })
}

/// A secret of the gateway's namespace named by `credentialName`, holding
/// the first of `keys` present.
fn credential_source<'a>(
    s: &'a Snapshot,
    names: &Names,
    name: &str,
    keys: &[&str],
) -> Result<Source<'a>, String> {
    let namespace = &names.istio_namespace;
    let found = s.gateway_secrets.get(name).ok_or(format!(
        "credentialName {name}: secret {namespace}/{name} does not exist"
    ))?;
    let data = keys
        .iter()
        .find_map(|key| secret_data(found, key))
        .ok_or(format!(
            "secret {namespace}/{name} holds no {}",
            keys.join(" or ")
        ))?;
    Ok(Source {
        describe: format!("secret {namespace}/{name} (credentialName)"),
        data,
    })
}

fn date(seconds: i64) -> String {
    Timestamp::from_second(seconds)
        .map(|t| t.strftime("%Y-%m-%d").to_string())
        .unwrap_or_else(|_| seconds.to_string())
}

/// The served certificate covers every host the Certificate lists and is
/// not about to expire.
fn certificate_hosts(s: &Snapshot, cert: &Certificate, names: &Names) -> Check {
    let hosts: Vec<String> = s
        .certificate
        .iter()
        .flat_map(|c| c.spec.hosts())
        .cloned()
        .collect();
    let uncovered: Vec<&String> = hosts
        .iter()
        .filter(|h| !host::parse_host(h).is_ok_and(|host: Host| cert.covers(&host)))
        .collect();
    let renew = format!(
        "check `kubectl describe certificate {} -n {}`: cert-manager renews it when its spec changes",
        owned::CERTIFICATE,
        names.istio_namespace
    );
    if !uncovered.is_empty() {
        let list: Vec<&str> = uncovered.iter().map(|h| h.as_str()).collect();
        return Check::fail(
            CheckId::CertificateHosts,
            format!("the served certificate does not cover {}", list.join(", ")),
            renew,
        );
    }
    let left = cert.not_after - s.now;
    if left <= 0 {
        return Check::fail(
            CheckId::CertificateHosts,
            format!("the served certificate expired on {}", date(cert.not_after)),
            renew,
        );
    }
    let covered = if hosts.is_empty() {
        "covers the gateway".to_owned()
    } else {
        format!("covers {}", hosts.join(", "))
    };
    if left < EXPIRY_WARNING_SECONDS {
        Check::warn(
            CheckId::CertificateHosts,
            format!("{covered}; expires on {}", date(cert.not_after)),
            renew,
        )
    } else {
        Check::pass(
            CheckId::CertificateHosts,
            format!("{covered}; valid until {}", date(cert.not_after)),
        )
    }
}

/// The DestinationRule has the gateway trust the CA that signed the
/// certificate kms-api serves, and check a name that certificate has.
fn upstream_trust(s: &Snapshot, names: &Names, expose: &str) -> Check {
    let expose = format!(
        "{expose}: it reads the CA from the TLS secret kms-api mounts (or --upstream-ca-secret)"
    );
    let checked = upstream_tls(s, names, &expose).and_then(|tls| {
        let (describe, cas) = trusted_cas(s, names, &tls, &expose)?;
        let kms_cert = kms_certificate(s, names, &describe)?;
        Ok(upstream_names(&tls, &kms_cert, &describe, &cas, &expose))
    });
    match checked {
        Ok(check) | Err(check) => check,
    }
}

/// The DestinationRule's TLS settings, when they make the gateway verify
/// KMS; the failing check when they do not.
fn upstream_tls(s: &Snapshot, names: &Names, expose: &str) -> Result<ClientTls, Check> {
    let name = CheckId::UpstreamTrust;
    let Some(rule) = &s.destination_rule else {
        return Err(Check::fail(
            name,
            format!(
                "no DestinationRule {}/{}: the gateway would send plain text to KMS's TLS port",
                names.kms_namespace,
                owned::DESTINATION_RULE
            ),
            expose,
        ));
    };
    let tls = rule.spec.tls().cloned().unwrap_or_default();
    if tls.mode.as_deref() != Some("SIMPLE") {
        return Err(Check::fail(
            name,
            format!("TLS mode is {}, not SIMPLE", shown(tls.mode.as_deref())),
            expose,
        ));
    }
    if tls.insecure_skip_verify == Some(true) {
        return Err(Check::warn(
            name,
            "the gateway does not verify KMS's certificate",
            expose,
        ));
    }
    Ok(tls)
}

/// The CAs the gateway verifies KMS against, and where it loads them from.
fn trusted_cas(
    s: &Snapshot,
    names: &Names,
    tls: &ClientTls,
    expose: &str,
) -> Result<(String, Vec<Certificate>), Check> {
    let name = CheckId::UpstreamTrust;
    let ca = if let Some(credential) = &tls.credential_name {
        let cacert = format!("{credential}-cacert");
        credential_source(s, names, &cacert, &["cacert", "ca.crt"])
            .or_else(|_| credential_source(s, names, credential, &["cacert", "ca.crt"]))
    } else if let Some(path) = &tls.ca_certificates {
        file_source(s, names, path)
    } else {
        return Err(Check::fail(
            name,
            "the gateway verifies KMS's certificate against the system's public roots, which \
             did not sign it: every request would fail its TLS handshake",
            expose,
        ));
    };
    ca.and_then(|source| {
        certificate::parse_all(source.data)
            .map(|cas| (source.describe.clone(), cas))
            .map_err(|problem| format!("the CA {} {problem}", source.describe))
    })
    .map_err(|problem| Check::fail(name, problem, expose))
}

/// The certificate kms-api serves, from the TLS secret its pods mount.
pub(super) fn kms_certificate(
    s: &Snapshot,
    names: &Names,
    describe: &str,
) -> Result<Certificate, Check> {
    let name = CheckId::UpstreamTrust;
    let Some((secret, served)) = &s.kms_tls_secret else {
        return Err(Check::warn(
            name,
            format!(
                "trusts the CA in {describe}; kms-api's pods mount no TLS secret to check it against"
            ),
            "check that the CA signed the certificate KMS serves",
        ));
    };
    secret_data(served, "tls.crt")
        .ok_or_else(|| "holds no tls.crt".to_owned())
        .and_then(certificate::parse)
        .map_err(|problem| {
            Check::fail(
                name,
                format!(
                    "kms-api's TLS secret {}/{secret} {problem}",
                    names.kms_namespace
                ),
                "check the certificate KMS serves",
            )
        })
}

/// Whether the trusted CAs signed kms-api's certificate and the gateway
/// checks a name the certificate has.
pub(super) fn upstream_names(
    tls: &ClientTls,
    kms_cert: &Certificate,
    describe: &str,
    cas: &[Certificate],
    expose: &str,
) -> Check {
    let name = CheckId::UpstreamTrust;
    if !kms_cert.signed_by_any(cas) {
        return Check::fail(
            name,
            format!(
                "the gateway trusts {describe}, which did not sign kms-api's certificate (issued by {})",
                kms_cert.issuer
            ),
            expose,
        );
    }
    let mut checked = tls.subject_alt_names.clone();
    if checked.is_empty() {
        checked.extend(tls.sni.clone());
    }
    if checked.is_empty() {
        return Check::fail(
            name,
            "the gateway would expect the client's Host in KMS's certificate, which names only \
             the Service",
            expose,
        );
    }
    match checked.iter().find(|n| kms_cert.covers_name(n)) {
        Some(found) => Check::pass(
            name,
            format!(
                "trusts {describe}, which signed kms-api's certificate; checks the name {found}"
            ),
        ),
        None => Check::fail(
            name,
            format!(
                "kms-api's certificate names {}, none of {}",
                kms_cert.dns_names.join(", "),
                checked.join(", ")
            ),
            expose,
        ),
    }
}
