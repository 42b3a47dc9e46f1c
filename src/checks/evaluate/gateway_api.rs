//! The exposure and data path categories of a setup made through the
//! Gateway API (`expose --api gateway-api`): the Gateway, the HTTPRoute and
//! the BackendTLSPolicy exist and istiod, which alone writes their
//! conditions, says each is accepted, resolved and programmed (a failure
//! gives the reason istiod wrote); and the CA the policy names signed the
//! certificate kms-api serves, for the name it checks. istiod does not
//! check that last part: a CA that did not sign kms-api's certificate is
//! accepted, and every request then fails its handshake.

use crate::checks::evaluate::data_path::{kms_certificate, probe_check, upstream_names};
use crate::checks::evaluate::exposure::certificate_checks;
use crate::checks::evaluate::gateway_config;
use crate::checks::snapshot::{Names, Snapshot, expose_command};
use crate::checks::{Check, CheckId};
use crate::manifests::exposure::KMS_SERVICE;
use crate::objects::gateway_api::{attachments_met, first_unmet};
use crate::objects::owned::{CA_CONFIG_MAP, KMS_BACKEND_TLS, KMS_GATEWAY, KMS_ROUTE};
use crate::objects::schemas::ClientTls;
use crate::values::certificate;

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

/// The data path category: the gateway trusts what kms-api serves, the
/// gateway's proxies hold what the objects say; with `--probe`, a request
/// to each host reached KMS.
pub fn data_path_checks(s: &Snapshot, names: &Names) -> Vec<Check> {
    let expose = format!("run {}", expose_command(s, names));
    let mut checks = vec![
        upstream_trust(s, names, &expose),
        gateway_config::check(s, names),
    ];
    if let Some(probes) = &s.probes {
        checks.push(probe_check(probes, &expose));
    }
    checks
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
    let generation = gateway.metadata.generation;
    if let Some(problem) = first_unmet(&status.conditions, generation, &["Accepted", "Programmed"])
    {
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
        if let Some(problem) = first_unmet(
            &listener.conditions,
            generation,
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
    let describe = format!(
        "see `kubectl describe httproutes.gateway.networking.k8s.io {KMS_ROUTE} -n {ns}{}`",
        names.kubectl_flags
    );
    match attachments_met(route.status.as_ref(), route.metadata.generation) {
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
    let describe = format!(
        "see `kubectl describe backendtlspolicies.gateway.networking.k8s.io {KMS_BACKEND_TLS} \
         -n {ns}{}`; {expose} to write the CA again",
        names.kubectl_flags
    );
    match attachments_met(policy.status.as_ref(), policy.metadata.generation) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Outcome;
    use crate::values::certificate::fixtures::{CA, LEAF, OTHER_CA, secret};
    use k8s_openapi::api::core::v1::ConfigMap;
    use serde_json::{Value, json};

    fn ok(kind: &str) -> Value {
        json!({"type": kind, "status": "True", "reason": kind, "message": "fine"})
    }

    /// One attachment to KMS's Gateway (`parentRef` of a route,
    /// `ancestorRef` of a policy), `extra` in place of `ResolvedRefs`.
    fn attached(reference: &str, extra: Value) -> Value {
        let mut conditions = vec![ok("Accepted"), ok("ResolvedRefs")];
        if !extra.is_null() {
            conditions[1] = extra;
        }
        json!([{reference: {"name": "kms-gateway"},
                "controllerName": "istio.io/gateway-controller", "conditions": conditions}])
    }

    /// A working setup in the runbook's namespaces, as istiod reports it.
    fn snapshot() -> Snapshot {
        let object = |kind: &str, spec: Value, status: Value| {
            json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": kind,
                   "metadata": {"name": "x"}, "spec": spec, "status": status})
        };
        let mut s = Snapshot {
            kms_service: serde_json::from_value(json!({"spec": {"ports": [{"port": 28674}]}})).ok(),
            kms_tls_secret: Some(("kms-tls".into(), secret(&[("tls.crt", LEAF)]))),
            ..Snapshot::default()
        };
        s.gateway_api.gateway = serde_json::from_value(object(
            "Gateway",
            json!({"gatewayClassName": "istio", "listeners": []}),
            json!({"addresses": [{"value": "10.0.0.9"}],
                   "conditions": [ok("Accepted"), ok("Programmed")],
                   "listeners": [{"name": "https",
                       "conditions": [ok("Accepted"), ok("ResolvedRefs"), ok("Programmed")]}]}),
        ))
        .unwrap();
        s.gateway_api.route = serde_json::from_value(object(
            "HTTPRoute",
            json!({"parentRefs": [{"name": "kms-gateway"}],
                   "rules": [{"matches": [], "backendRefs": [{"name": "kms-api", "port": 28674}]}]}),
            json!({"parents": attached("parentRef", Value::Null)}),
        ))
        .unwrap();
        s.gateway_api.policy = serde_json::from_value(object(
            "BackendTLSPolicy",
            json!({"targetRefs": [{"name": "kms-api"}], "validation": {
                "hostname": "kms-api.kube-system.svc.cluster.local",
                "subjectAltNames": [{"type": "Hostname",
                                     "hostname": "kms-api.kube-system.svc.cluster.local"}]}}),
            json!({"ancestors": attached("ancestorRef", Value::Null)}),
        ))
        .unwrap();
        s.gateway_api.ca = Some(ConfigMap {
            data: Some([("ca.crt".to_owned(), CA.to_owned())].into()),
            ..ConfigMap::default()
        });
        s
    }

    fn outcome(checks: &[Check], id: CheckId) -> (Outcome, String, String) {
        let check = checks.iter().find(|c| c.id == id).unwrap();
        (
            check.result,
            check.message.clone(),
            check.hint.clone().unwrap_or_default(),
        )
    }

    #[test]
    fn a_setup_istiod_accepted_passes() {
        let names = Names::runbook("");
        let s = snapshot();
        assert!(s.through_gateway_api());
        let mut checks = exposure_checks(&s, &names);
        checks.extend(data_path_checks(&s, &names));
        for id in [
            CheckId::Gateway,
            CheckId::HttpRoute,
            CheckId::BackendTlsPolicy,
            CheckId::UpstreamTrust,
        ] {
            let (result, message, _) = outcome(&checks, id);
            assert_eq!(result, Outcome::Pass, "{message}");
        }
        let (_, message, _) = outcome(&checks, CheckId::Gateway);
        assert!(
            message.ends_with("programmed by istiod at 10.0.0.9"),
            "{message}"
        );
    }

    #[test]
    fn each_failure_gives_istiods_reason_or_what_istiod_does_not_check() {
        let names = Names::runbook("");
        let mut s = snapshot();
        let status = s
            .gateway_api
            .gateway
            .as_mut()
            .unwrap()
            .status
            .as_mut()
            .unwrap();
        status.conditions[1] = serde_json::from_value(json!({"type": "Programmed",
            "status": "False", "reason": "AddressNotAssigned", "message": "pending"}))
        .unwrap();
        let (result, message, hint) = outcome(&exposure_checks(&s, &names), CheckId::Gateway);
        assert_eq!(result, Outcome::Fail);
        assert!(
            message.contains("Programmed is False (AddressNotAssigned: pending)"),
            "{message}"
        );
        assert!(
            hint.contains("kubectl get service kms-gateway-istio -n istio-system"),
            "{hint}"
        );

        let mut s = snapshot();
        let refused = json!({"type": "ResolvedRefs", "status": "False",
            "reason": "InvalidCACertificateRef", "message": "kms-api-ca not found"});
        s.gateway_api.policy.as_mut().unwrap().status =
            serde_json::from_value(json!({"ancestors": attached("ancestorRef", refused)})).unwrap();
        let (result, message, hint) =
            outcome(&exposure_checks(&s, &names), CheckId::BackendTlsPolicy);
        assert_eq!(result, Outcome::Fail);
        assert!(
            message.contains("InvalidCACertificateRef: kms-api-ca not found"),
            "{message}"
        );
        assert!(hint.contains("--api gateway-api"), "{hint}");

        let mut s = snapshot();
        s.gateway_api.route.as_mut().unwrap().status = None;
        let (result, message, _) = outcome(&exposure_checks(&s, &names), CheckId::HttpRoute);
        assert_eq!(result, Outcome::Fail);
        assert!(message.contains("has not attached"), "{message}");

        let mut s = snapshot();
        s.gateway_api.ca = Some(ConfigMap {
            data: Some([("ca.crt".to_owned(), OTHER_CA.to_owned())].into()),
            ..ConfigMap::default()
        });
        let (result, message, _) = outcome(&data_path_checks(&s, &names), CheckId::UpstreamTrust);
        assert_eq!(result, Outcome::Fail);
        assert!(message.contains("did not sign"), "{message}");
    }
}
