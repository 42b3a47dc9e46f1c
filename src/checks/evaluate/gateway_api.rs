//! The exposure and data path categories of a setup made through the
//! Gateway API (`expose --api gateway-api`): the Gateway, the HTTPRoute and
//! the BackendTLSPolicy exist and istiod, which alone writes their
//! conditions, says each is accepted, resolved and programmed (a failure
//! gives the reason istiod wrote); and the CA the policy names signed the
//! certificate kms-api serves, for the name it checks. istiod does not
//! check that last part: a CA that did not sign kms-api's certificate is
//! accepted, and every request then fails its handshake.

use crate::checks::evaluate::data_path::{kms_certificate, upstream_names};
use crate::checks::evaluate::exposure::certificate_checks;
use crate::checks::snapshot::{Names, Snapshot, expose_command};
use crate::checks::{Check, CheckId};
use crate::manifests::exposure::KMS_SERVICE;
use crate::objects::gateway_api::{ApiCondition, AttachmentStatus};
use crate::objects::owned::{CA_CONFIG_MAP, KMS_BACKEND_TLS, KMS_GATEWAY, KMS_ROUTE};
use crate::objects::schemas::ClientTls;
use crate::values::certificate;

/// The controller whose conditions count: istiod's.
const ISTIO_GATEWAY_CONTROLLER: &str = "istio.io/gateway-controller";

/// The exposure category: the Certificate (as `exposure` checks it), the
/// Gateway, the route and the policy.
pub fn exposure_checks(s: &Snapshot, names: &Names) -> Vec<Check> {
    let expose = format!("run {}", expose_command(s, names));
    let mut checks = certificate_checks(s, names, &expose);
    checks.push(gateway_check(s, names, &expose));
    checks.push(route_check(s, names, &expose));
    checks.push(policy_check(s, names, &expose));
    checks
}

/// The data path category: the gateway trusts what kms-api serves.
pub fn data_path_checks(s: &Snapshot, names: &Names) -> Vec<Check> {
    let expose = format!("run {}", expose_command(s, names));
    vec![upstream_trust(s, names, &expose)]
}

/// The first of `wanted` whose condition is not True, in words; `None`
/// when all are True. A condition istiod has not written yet counts as not
/// True ("not reported yet").
fn unmet(conditions: &[ApiCondition], wanted: &[&str]) -> Option<String> {
    wanted
        .iter()
        .find_map(|kind| match conditions.iter().find(|c| c.type_ == *kind) {
            Some(c) if c.status == "True" => None,
            Some(c) => Some(format!(
                "{kind} is {} ({}: {})",
                c.status, c.reason, c.message
            )),
            None => Some(format!("istiod has not reported {kind} yet")),
        })
}

fn gateway_check(s: &Snapshot, names: &Names, expose: &str) -> Check {
    let ns = &names.istio_namespace;
    let Some(gateway) = &s.gateway_api.gateway else {
        return Check::fail(
            CheckId::Gateway,
            format!("{ns}/{KMS_GATEWAY} does not exist"),
            expose,
        );
    };
    let status = gateway.status.clone().unwrap_or_default();
    let describe = format!(
        "`kubectl describe gateways.gateway.networking.k8s.io {KMS_GATEWAY} -n {ns}{}`",
        names.kubectl_flags
    );
    if let Some(problem) = unmet(&status.conditions, &["Accepted", "Programmed"]) {
        let address_pending = status
            .conditions
            .iter()
            .any(|c| c.type_ == "Programmed" && c.reason == "AddressNotAssigned");
        let hint = if address_pending {
            format!(
                "the gateway's Service {ns}/{KMS_GATEWAY}-istio waits for a load-balancer \
                 address; see `kubectl get service {KMS_GATEWAY}-istio -n {ns}{}`",
                names.kubectl_flags
            )
        } else {
            format!("see {describe}; {expose} again once the cause is fixed")
        };
        return Check::fail(
            CheckId::Gateway,
            format!("{ns}/{KMS_GATEWAY}: {problem}"),
            hint,
        );
    }
    for listener in &status.listeners {
        if let Some(problem) = unmet(
            &listener.conditions,
            &["Accepted", "ResolvedRefs", "Programmed"],
        ) {
            return Check::fail(
                CheckId::Gateway,
                format!("{ns}/{KMS_GATEWAY}: listener {}: {problem}", listener.name),
                format!("see {describe}"),
            );
        }
    }
    let addresses: Vec<&str> = status.addresses.iter().map(|a| a.value.as_str()).collect();
    Check::pass(
        CheckId::Gateway,
        format!(
            "{ns}/{KMS_GATEWAY} programmed by istiod at {}",
            addresses.join(", ")
        ),
    )
}

/// istiod's conditions on `attachments` (a route's parents, a policy's
/// ancestors), each named by `what`: the first not met, or how many are.
fn attachments(attachments: &[AttachmentStatus], wanted: &[&str]) -> Result<usize, Option<String>> {
    let mut met = 0;
    for attachment in attachments {
        if let Some(problem) = unmet(&attachment.conditions, wanted) {
            let to = &attachment.parent_ref;
            let kind = to.kind.as_deref().unwrap_or("Gateway");
            return Err(Some(format!("for {kind} {}: {problem}", to.name)));
        }
        met += 1;
    }
    if met == 0 {
        return Err(None);
    }
    Ok(met)
}

fn route_check(s: &Snapshot, names: &Names, expose: &str) -> Check {
    let ns = &names.kms_namespace;
    let id = CheckId::HttpRoute;
    let Some(route) = &s.gateway_api.route else {
        return Check::fail(id, format!("{ns}/{KMS_ROUTE} does not exist"), expose);
    };
    let backend = route
        .spec
        .rules
        .iter()
        .flat_map(|rule| &rule.backend_refs)
        .next();
    let service_ports: Vec<i32> = s
        .kms_service
        .iter()
        .flat_map(|service| service.spec.iter())
        .flat_map(|spec| spec.ports.iter().flatten())
        .map(|port| port.port)
        .collect();
    match backend {
        Some(to)
            if to.name == KMS_SERVICE && to.port.is_some_and(|p| service_ports.contains(&p)) => {}
        _ => {
            return Check::fail(
                id,
                format!("{ns}/{KMS_ROUTE} does not route to a port of {ns}/{KMS_SERVICE}"),
                expose,
            );
        }
    }
    let parents: Vec<AttachmentStatus> = route
        .status
        .iter()
        .flat_map(|status| &status.parents)
        .filter(|parent| parent.controller_name == ISTIO_GATEWAY_CONTROLLER)
        .cloned()
        .collect();
    let describe = format!(
        "see `kubectl describe httproutes.gateway.networking.k8s.io {KMS_ROUTE} -n {ns}{}`",
        names.kubectl_flags
    );
    match attachments(&parents, &["Accepted", "ResolvedRefs"]) {
        Ok(_) => Check::pass(
            id,
            format!(
                "{ns}/{KMS_ROUTE} accepted by {}/{KMS_GATEWAY}",
                names.istio_namespace
            ),
        ),
        Err(Some(problem)) => Check::fail(id, format!("{ns}/{KMS_ROUTE} {problem}"), describe),
        Err(None) => Check::fail(
            id,
            format!("istiod has not attached {ns}/{KMS_ROUTE} to any Gateway yet"),
            describe,
        ),
    }
}

fn policy_check(s: &Snapshot, names: &Names, expose: &str) -> Check {
    let ns = &names.kms_namespace;
    let id = CheckId::BackendTlsPolicy;
    let Some(policy) = &s.gateway_api.policy else {
        return Check::fail(
            id,
            format!(
                "{ns}/{KMS_BACKEND_TLS} does not exist: the gateway would send plain text to \
                 KMS's TLS port"
            ),
            expose,
        );
    };
    let ancestors: Vec<AttachmentStatus> = policy
        .status
        .iter()
        .flat_map(|status| &status.parents)
        .filter(|ancestor| ancestor.controller_name == ISTIO_GATEWAY_CONTROLLER)
        .cloned()
        .collect();
    let describe = format!(
        "see `kubectl describe backendtlspolicies.gateway.networking.k8s.io {KMS_BACKEND_TLS} \
         -n {ns}{}`; {expose} to write the CA again",
        names.kubectl_flags
    );
    match attachments(&ancestors, &["Accepted", "ResolvedRefs"]) {
        Ok(_) => Check::pass(
            id,
            format!("{ns}/{KMS_BACKEND_TLS} accepted for the gateway"),
        ),
        Err(Some(problem)) => {
            Check::fail(id, format!("{ns}/{KMS_BACKEND_TLS} {problem}"), describe)
        }
        Err(None) => Check::fail(
            id,
            format!("istiod has not applied {ns}/{KMS_BACKEND_TLS} to the gateway yet"),
            describe,
        ),
    }
}

/// The CA in the policy's ConfigMap signed kms-api's certificate, which
/// names what the policy checks.
fn upstream_trust(s: &Snapshot, names: &Names, expose: &str) -> Check {
    let id = CheckId::UpstreamTrust;
    let ns = &names.kms_namespace;
    let Some(policy) = &s.gateway_api.policy else {
        return Check::fail(
            id,
            format!("no BackendTLSPolicy {ns}/{KMS_BACKEND_TLS}"),
            expose,
        );
    };
    let validation = &policy.spec.validation;
    let describe = format!("the CA in ConfigMap {ns}/{CA_CONFIG_MAP}");
    let pem = s
        .gateway_api
        .ca
        .as_ref()
        .and_then(|map| map.data.as_ref()?.get("ca.crt").cloned());
    let Some(pem) = pem else {
        return Check::fail(
            id,
            format!("ConfigMap {ns}/{CA_CONFIG_MAP} holding ca.crt does not exist"),
            expose,
        );
    };
    let cas = match certificate::parse_all(pem.as_bytes()) {
        Ok(cas) => cas,
        Err(problem) => return Check::fail(id, format!("{describe} {problem}"), expose),
    };
    let kms_cert = match kms_certificate(s, names, &describe) {
        Ok(cert) => cert,
        Err(check) => return check,
    };
    let tls = ClientTls {
        sni: Some(validation.hostname.clone()),
        subject_alt_names: validation
            .subject_alt_names
            .iter()
            .filter_map(|san| san.hostname.clone())
            .collect(),
        ..ClientTls::default()
    };
    upstream_names(&tls, &kms_cert, &describe, &cas, expose)
}
