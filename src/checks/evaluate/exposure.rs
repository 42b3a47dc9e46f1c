//! The exposure category: the Certificate, Gateway, VirtualService and
//! DestinationRule exist, agree with each other and with the KMS Service.

use crate::checks::snapshot::{Names, Snapshot, expose_command};
use crate::checks::{Check, CheckId};
use crate::manifests::exposure::{self, KMS_SERVICE};
use crate::objects::owned::{self, GATEWAY};
use crate::objects::schemas::{Destination, VirtualServiceSpec, certificate_ready};

pub fn checks(s: &Snapshot, names: &Names) -> Vec<Check> {
    let expose = format!("run {}", expose_command(s, names));
    let mut checks = certificate_checks(s, names, &expose);
    checks.push(match &s.gateway {
        None => missing(CheckId::Gateway, &names.kms_namespace, GATEWAY, &expose),
        Some(_) => Check::pass(
            CheckId::Gateway,
            format!("{}/{GATEWAY} present", names.kms_namespace),
        ),
    });
    checks.push(route_check(s, names, &expose));
    checks.push(destination_rule_check(s, names, &expose));
    checks
}

/// A check that fails because the object `namespace/name` does not exist.
pub fn missing(what: CheckId, namespace: &str, name: &str, expose: &str) -> Check {
    Check::fail(what, format!("{namespace}/{name} does not exist"), expose)
}

/// The Certificate is Ready and its secret exists.
pub(super) fn certificate_checks(s: &Snapshot, names: &Names, expose: &str) -> Vec<Check> {
    let mut checks = Vec::new();
    checks.push(match &s.certificate {
        None => missing(
            CheckId::Certificate,
            &names.istio_namespace,
            owned::CERTIFICATE,
            expose,
        ),
        Some(cert) if certificate_ready(cert) => {
            Check::pass(CheckId::Certificate, "issued and Ready")
        }
        Some(_) => Check::warn(
            CheckId::Certificate,
            "not Ready yet",
            format!(
                "check `kubectl describe certificate {} -n {}` and its issuer",
                owned::CERTIFICATE,
                names.istio_namespace
            ),
        ),
    });
    if let Some(cert) = &s.certificate {
        let secret = &cert.spec.secret_name;
        checks.push(match &s.certificate_secret {
            Some(_) => Check::pass(
                CheckId::TlsSecret,
                format!("{}/{secret} present", names.istio_namespace),
            ),
            None => Check::fail(
                CheckId::TlsSecret,
                format!("{}/{secret} does not exist", names.istio_namespace),
                "the issuer has not issued the certificate: check cert-manager's logs",
            ),
        });
    }
    checks
}

/// Where the first HTTP route of the VirtualService sends requests.
pub fn routed_host(s: &Snapshot) -> Option<&str> {
    let route = s.virtual_service.as_ref()?;
    route.spec.first_destination()?.host.as_deref()
}

/// The VirtualService is bound to the Gateway and routes to kms-api's port.
fn route_check(s: &Snapshot, names: &Names, expose: &str) -> Check {
    let service_port = s
        .kms_service
        .as_ref()
        .and_then(|svc| exposure::service_port(svc, None).ok());
    let route = s.virtual_service.as_ref().map(|vs| &vs.spec);
    let destination = route.and_then(VirtualServiceSpec::first_destination);
    let routed_host = routed_host(s);
    match route {
        None => missing(
            CheckId::VirtualService,
            &names.kms_namespace,
            owned::VIRTUAL_SERVICE,
            expose,
        ),
        Some(spec) => {
            let bound = spec.gateways.iter().any(|g| g == GATEWAY);
            let port = destination.and_then(Destination::port_number);
            if !bound {
                Check::fail(
                    CheckId::VirtualService,
                    format!("not bound to gateway {GATEWAY}"),
                    expose,
                )
            } else if routed_host.is_none() {
                Check::fail(
                    CheckId::VirtualService,
                    format!("has no HTTP route to {KMS_SERVICE}"),
                    expose,
                )
            } else if let (Some(port), Some(expected)) = (port, service_port)
                && i64::from(port) != i64::from(expected)
            {
                Check::fail(
                    CheckId::VirtualService,
                    format!("routes to port {port}, but {KMS_SERVICE} serves {expected}"),
                    expose,
                )
            } else {
                Check::pass(
                    CheckId::VirtualService,
                    format!(
                        "bound to {GATEWAY}, routes to {}:{}",
                        routed_host.unwrap_or_default(),
                        shown(port)
                    ),
                )
            }
        }
    }
}

/// The DestinationRule's host is the one the route sends to.
fn destination_rule_check(s: &Snapshot, names: &Names, expose: &str) -> Check {
    let routed_host = routed_host(s);
    match &s.destination_rule {
        None => missing(
            CheckId::DestinationRule,
            &names.kms_namespace,
            owned::DESTINATION_RULE,
            expose,
        ),
        Some(dr) => {
            let host = dr.spec.host.as_deref();
            match routed_host {
                Some(routed) if Some(routed) != host => Check::fail(
                    CheckId::DestinationRule,
                    format!("host {} differs from the route's {routed}", shown(host)),
                    expose,
                ),
                _ => Check::pass(CheckId::DestinationRule, format!("TLS to {}", shown(host))),
            }
        }
    }
}

/// A field's value for a message; "unset" when the object lacks it.
pub fn shown(value: Option<impl std::fmt::Display>) -> String {
    value.map_or("unset".to_owned(), |value| value.to_string())
}
