//! Every `status` check, decided from a `Snapshot` of the cluster taken
//! beforehand. Pure: the same snapshot always gives the same report, and each
//! rule is unit-tested with hand-made objects.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::jiff::Timestamp;
use kube::api::DynamicObject;
use serde_json::Value;

use super::{Category, Check, Report};
use crate::apikey;
use crate::crn;
use crate::discovery::ServedApis;
use crate::manifests::exposure::{self, GATEWAY, KMS_SERVICE};
use crate::permissions::Permission;
use crate::rollout::{RolloutState, rollout_state};
use crate::sidecar;

/// The names `status` looks for; the subcommands' defaults unless overridden.
#[derive(Debug, Clone)]
pub struct Names {
    pub kms_namespace: String,
    pub istio_namespace: String,
    pub deployment: String,
    pub token_adapter: String,
    pub secret: String,
    pub secret_key: String,
    pub policy: String,
}

/// What the cluster looked like when the checks ran.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub server: String,
    pub server_version: String,
    pub permissions_needed: usize,
    pub missing_permissions: Vec<Permission>,
    pub served: ServedApis,
    pub kms_service: Option<Service>,
    pub apikey_secret: Option<Secret>,
    pub token_adapter: Option<Deployment>,
    pub token_adapter_pods: Vec<Pod>,
    pub kms: Option<Deployment>,
    pub kms_pods: Vec<Pod>,
    pub certificate: Option<DynamicObject>,
    pub certificate_secret: Option<Secret>,
    pub gateway: Option<DynamicObject>,
    pub virtual_service: Option<DynamicObject>,
    pub destination_rule: Option<DynamicObject>,
    pub policy: Option<DynamicObject>,
}

pub fn report(snapshot: &Snapshot, names: &Names) -> Report {
    Report::new(vec![
        Category {
            name: "cluster",
            checks: cluster(snapshot),
        },
        Category {
            name: "prerequisites",
            checks: prerequisites(snapshot, names),
        },
        Category {
            name: "api key",
            checks: api_key(snapshot, names),
        },
        Category {
            name: "sidecar",
            checks: sidecar_checks(snapshot, names),
        },
        Category {
            name: "exposure",
            checks: exposure_checks(snapshot, names),
        },
        Category {
            name: "identity",
            checks: identity(snapshot, names),
        },
    ])
}

fn cluster(s: &Snapshot) -> Vec<Check> {
    let mut checks = vec![Check::pass(
        "API server",
        format!("reachable at {}, Kubernetes {}", s.server, s.server_version),
    )];
    checks.push(if s.missing_permissions.is_empty() {
        Check::pass(
            "permissions",
            format!(
                "all {} permissions the plugin needs are granted",
                s.permissions_needed
            ),
        )
    } else {
        let list: Vec<String> = s
            .missing_permissions
            .iter()
            .map(ToString::to_string)
            .collect();
        Check::fail(
            "permissions",
            format!("missing: {}", list.join(", ")),
            "ask a cluster administrator to grant these to your user",
        )
    });
    checks
}

fn prerequisites(s: &Snapshot, names: &Names) -> Vec<Check> {
    let mut checks = vec![match s.served.cert_manager() {
        Some(api) => Check::pass(
            "cert-manager API",
            format!("{}/{}", api.group(), api.version()),
        ),
        None => Check::fail(
            "cert-manager API",
            "neither cert-manager.io/v1 nor certmanager.k8s.io/v1alpha1 is served",
            "install cert-manager",
        ),
    }];
    checks.push(match s.served.istio_networking() {
        Some(version) => Check::pass(
            "Istio networking API",
            format!("networking.istio.io/{version}"),
        ),
        None => Check::fail(
            "Istio networking API",
            "networking.istio.io Gateway, VirtualService and DestinationRule are not served",
            "install Istio",
        ),
    });
    checks.push(if s.served.identity_policy() {
        Check::pass("IdentityMappingPolicy API", "policy.ibm.com/v1alpha1")
    } else {
        Check::fail(
            "IdentityMappingPolicy API",
            "policy.ibm.com/v1alpha1 identitymappingpolicies is not served",
            "install STS, which brings this CRD",
        )
    });
    checks.push(match &s.kms_service {
        Some(service) => match exposure::service_port(service, None) {
            Ok(port) => Check::pass(
                "kms-api Service",
                format!("{}/{KMS_SERVICE} on port {port}", names.kms_namespace),
            ),
            Err(reason) => Check::warn("kms-api Service", reason, "pass --port to expose"),
        },
        None => Check::fail(
            "kms-api Service",
            format!("{}/{KMS_SERVICE} does not exist", names.kms_namespace),
            "install KMS, or point --kms-namespace at it",
        ),
    });
    checks
}

/// When the secret's data last changed, as far as its managed fields tell.
fn last_changed(secret: &Secret) -> Option<Timestamp> {
    secret
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|entry| entry.time.as_ref().map(|t| t.0))
        .max()
        .or_else(|| secret.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

fn pod_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|status| status.conditions.as_ref())
            .is_some_and(|conditions| {
                conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            })
}

fn api_key(s: &Snapshot, names: &Names) -> Vec<Check> {
    let secret_name = format!("{}/{}", names.istio_namespace, names.secret);
    let set_apikey = "run `kubectl kms-sts set-apikey`";
    let value = s
        .apikey_secret
        .as_ref()
        .and_then(|secret| secret.data.as_ref())
        .and_then(|data| data.get(&names.secret_key))
        .filter(|value| !value.0.is_empty());
    let mut checks = vec![match (&s.apikey_secret, value) {
        (None, _) => Check::fail(
            "API key secret",
            format!("{secret_name} does not exist"),
            set_apikey,
        ),
        (Some(_), None) => Check::fail(
            "API key secret",
            format!("{secret_name} has no value for key {}", names.secret_key),
            set_apikey,
        ),
        (Some(_), Some(value)) => Check::pass(
            "API key secret",
            format!(
                "{secret_name} holds key sha256:{}",
                apikey::fingerprint(&value.0)
            ),
        ),
    }];
    let adapter = format!("{}/{}", names.istio_namespace, names.token_adapter);
    let ready: Vec<&Pod> = s
        .token_adapter_pods
        .iter()
        .filter(|p| pod_ready(p))
        .collect();
    let changed = s.apikey_secret.as_ref().and_then(last_changed);
    let stale = ready
        .iter()
        .filter(|pod| {
            let started = pod
                .status
                .as_ref()
                .and_then(|st| st.start_time.as_ref())
                .map(|t| t.0);
            matches!((started, changed), (Some(started), Some(changed)) if started < changed)
        })
        .count();
    checks.push(if s.token_adapter.is_none() {
        Check::fail(
            "token adapter",
            format!("deployment {adapter} does not exist"),
            "install STS, or name the deployment with --token-adapter",
        )
    } else if ready.is_empty() {
        Check::fail(
            "token adapter",
            format!("no ready pod of {adapter}"),
            format!("check `kubectl get pods -n {}`", names.istio_namespace),
        )
    } else if stale > 0 && value.is_some() {
        Check::warn(
            "token adapter",
            format!(
                "restart needed: {stale} of {} ready pods started before the key last changed",
                ready.len()
            ),
            "run `kubectl kms-sts set-apikey --restart` with the same key",
        )
    } else {
        Check::pass(
            "token adapter",
            format!(
                "{} ready pods, started after the key last changed",
                ready.len()
            ),
        )
    });
    checks
}

fn sidecar_checks(s: &Snapshot, names: &Names) -> Vec<Check> {
    let name = format!("{}/{}", names.kms_namespace, names.deployment);
    let Some(kms) = &s.kms else {
        return vec![Check::fail(
            "KMS deployment",
            format!("{name} does not exist"),
            "install KMS, or name it with --deployment",
        )];
    };
    let mut checks = vec![match rollout_state(kms) {
        RolloutState::Complete { ready } => Check::pass(
            "KMS deployment",
            format!("{name} rolled out, {ready} available"),
        ),
        RolloutState::InProgress(text) => Check::warn(
            "KMS deployment",
            format!("{name} is rolling out: {text}"),
            "wait, or check `kubectl rollout status`",
        ),
        RolloutState::Failed(reason) => Check::fail(
            "KMS deployment",
            format!("{name}: {reason}"),
            "check the pods' events",
        ),
    }];
    let template = kms
        .spec
        .as_ref()
        .map(|spec| spec.template.clone())
        .unwrap_or_default();
    let ready: Vec<&Pod> = s.kms_pods.iter().filter(|p| pod_ready(p)).collect();
    let without: Vec<String> = ready
        .iter()
        .filter(|pod| !sidecar::pod_has_sidecar(pod))
        .filter_map(|pod| pod.metadata.name.clone())
        .collect();
    checks.push(if !sidecar::template_is_injected(&template) {
        Check::fail(
            "sidecar",
            format!("{name} has no istio-proxy sidecar"),
            "run `kubectl kms-sts inject`",
        )
    } else if !without.is_empty() {
        Check::fail(
            "sidecar",
            format!("ready pods without istio-proxy: {}", without.join(", ")),
            "wait for the rollout, or run `kubectl kms-sts inject` again",
        )
    } else {
        Check::pass(
            "sidecar",
            format!("all {} ready pods run istio-proxy", ready.len()),
        )
    });
    checks
}

fn condition_ready(object: &DynamicObject) -> bool {
    object.data["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

fn exposure_checks(s: &Snapshot, names: &Names) -> Vec<Check> {
    let expose = "run `kubectl kms-sts expose --host ADDRESS`";
    let missing = |what: &str, namespace: &str, name: &str| {
        Check::fail(what, format!("{namespace}/{name} does not exist"), expose)
    };
    let mut checks = Vec::new();
    checks.push(match &s.certificate {
        None => missing("Certificate", &names.istio_namespace, exposure::CERTIFICATE),
        Some(cert) if condition_ready(cert) => Check::pass("Certificate", "issued and Ready"),
        Some(_) => Check::warn(
            "Certificate",
            "not Ready yet",
            format!(
                "check `kubectl describe certificate {} -n {}` and its issuer",
                exposure::CERTIFICATE,
                names.istio_namespace
            ),
        ),
    });
    if let Some(cert) = &s.certificate {
        let secret = cert.data["spec"]["secretName"].as_str().unwrap_or_default();
        checks.push(match &s.certificate_secret {
            Some(_) => Check::pass(
                "TLS secret",
                format!("{}/{secret} present", names.istio_namespace),
            ),
            None => Check::fail(
                "TLS secret",
                format!("{}/{secret} does not exist", names.istio_namespace),
                "the issuer has not issued the certificate: check cert-manager's logs",
            ),
        });
    }
    checks.push(match &s.gateway {
        None => missing("Gateway", &names.kms_namespace, GATEWAY),
        Some(_) => Check::pass(
            "Gateway",
            format!("{}/{GATEWAY} present", names.kms_namespace),
        ),
    });
    let service_port = s
        .kms_service
        .as_ref()
        .and_then(|svc| exposure::service_port(svc, None).ok());
    let route = s.virtual_service.as_ref().map(|vs| &vs.data["spec"]);
    let destination = route.map(|spec| &spec["http"][0]["route"][0]["destination"]);
    checks.push(match (route, destination) {
        (None, _) | (_, None) => missing(
            "VirtualService",
            &names.kms_namespace,
            exposure::VIRTUAL_SERVICE,
        ),
        (Some(spec), Some(destination)) => {
            let bound = spec["gateways"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|g| g == GATEWAY);
            let port = destination["port"]["number"].as_i64();
            if !bound {
                Check::fail(
                    "VirtualService",
                    format!("not bound to gateway {GATEWAY}"),
                    expose,
                )
            } else if let (Some(port), Some(expected)) = (port, service_port)
                && port != i64::from(expected)
            {
                Check::fail(
                    "VirtualService",
                    format!("routes to port {port}, but {KMS_SERVICE} serves {expected}"),
                    expose,
                )
            } else {
                Check::pass(
                    "VirtualService",
                    format!(
                        "bound to {GATEWAY}, routes to {}:{}",
                        value_text(&destination["host"]),
                        value_text(&destination["port"]["number"])
                    ),
                )
            }
        }
    });
    checks.push(match &s.destination_rule {
        None => missing(
            "DestinationRule",
            &names.kms_namespace,
            exposure::DESTINATION_RULE,
        ),
        Some(dr) => {
            let host = &dr.data["spec"]["host"];
            let routed = destination.map(|d| &d["host"]);
            if routed.is_some_and(|routed| routed != host) {
                Check::fail(
                    "DestinationRule",
                    format!(
                        "host {} differs from the route's {}",
                        value_text(host),
                        value_text(routed.unwrap())
                    ),
                    expose,
                )
            } else {
                Check::pass("DestinationRule", format!("TLS to {}", value_text(host)))
            }
        }
    });
    checks
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn identity(s: &Snapshot, names: &Names) -> Vec<Check> {
    let Some(policy) = &s.policy else {
        return vec![Check::fail(
            "IdentityMappingPolicy",
            format!("{}/{} does not exist", names.istio_namespace, names.policy),
            "run `kubectl kms-sts map-identity --source-crn CRN --target-crn CRN`",
        )];
    };
    let spec = &policy.data["spec"];
    let mut checks = vec![Check::pass(
        "IdentityMappingPolicy",
        format!("{}/{} present", names.istio_namespace, names.policy),
    )];
    let source = spec["identityMapping"]["sourceIdentity"]
        .as_str()
        .unwrap_or_default();
    let mut problems: Vec<String> = Vec::new();
    if let Err(err) = crn::parse(source) {
        problems.push(format!("source: {}", err.problem));
    }
    for target in spec["targetResources"].as_array().into_iter().flatten() {
        if let Err(err) = crn::parse_kms_target(target.as_str().unwrap_or_default()) {
            problems.push(format!("target: {}", err.problem));
        }
    }
    checks.push(if problems.is_empty() {
        Check::pass("CRNs", "source and targets are valid")
    } else {
        Check::fail(
            "CRNs",
            problems.join("; "),
            "run `kubectl kms-sts map-identity` with corrected CRNs",
        )
    });
    let reference = &spec["identityMapping"]["targetCredentials"]["apiKeyRef"];
    let secret = reference["secretName"].as_str().unwrap_or_default();
    checks.push(if secret == names.secret && s.apikey_secret.is_some() {
        Check::pass("API key reference", format!("secret {secret} exists"))
    } else if secret == names.secret {
        Check::fail(
            "API key reference",
            format!("secret {secret} does not exist"),
            "run `kubectl kms-sts set-apikey`",
        )
    } else {
        Check::warn(
            "API key reference",
            format!("refers to secret {secret}, not {}", names.secret),
            "check --secret, or run `kubectl kms-sts map-identity` again",
        )
    });
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Outcome;
    use serde_json::json;

    fn names() -> Names {
        Names {
            kms_namespace: "kube-system".into(),
            istio_namespace: "istio-system".into(),
            deployment: "key-management-api".into(),
            token_adapter: "tokenadapter".into(),
            secret: "sts-apikey".into(),
            secret_key: "apikey".into(),
            policy: "stspolicy".into(),
        }
    }

    fn object<T: serde::de::DeserializeOwned>(value: Value) -> T {
        serde_json::from_value(value).unwrap()
    }

    fn find<'a>(report: &'a Report, name: &str) -> &'a Check {
        report
            .categories
            .iter()
            .flat_map(|c| &c.checks)
            .find(|c| c.name == name)
            .unwrap()
    }

    fn vs(port: i64, gateway: &str) -> DynamicObject {
        object(json!({
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "kmsvservice"},
            "spec": {"gateways": [gateway], "http": [{"route": [{"destination": {"host": "kms-api", "port": {"number": port}}}]}]}
        }))
    }

    #[test]
    fn an_empty_cluster_fails_every_step_with_hints() {
        let report = report(&Snapshot::default(), &names());
        assert!(!report.success);
        for name in [
            "kms-api Service",
            "API key secret",
            "KMS deployment",
            "Certificate",
            "IdentityMappingPolicy",
        ] {
            let check = find(&report, name);
            assert_eq!(check.result, Outcome::Fail, "{name}");
            assert!(check.hint.is_some(), "{name}");
        }
    }

    #[test]
    fn virtual_service_port_must_match_the_service() {
        let snapshot = Snapshot {
            kms_service: Some(object(json!({"spec": {"ports": [{"port": 28674}]}}))),
            virtual_service: Some(vs(8443, "kmsgateway")),
            ..Snapshot::default()
        };
        let check = find(&report(&snapshot, &names()), "VirtualService").clone();
        assert_eq!(check.result, Outcome::Fail);
        assert!(
            check
                .message
                .contains("routes to port 8443, but kms-api serves 28674"),
            "{}",
            check.message
        );

        let snapshot = Snapshot {
            virtual_service: Some(vs(28674, "kmsgateway")),
            ..snapshot
        };
        assert_eq!(
            find(&report(&snapshot, &names()), "VirtualService").result,
            Outcome::Pass
        );
        let unbound = Snapshot {
            virtual_service: Some(vs(28674, "other")),
            ..snapshot
        };
        assert!(
            find(&report(&unbound, &names()), "VirtualService")
                .message
                .contains("not bound")
        );
    }

    #[test]
    fn pods_started_before_the_key_changed_need_a_restart() {
        let secret: Secret = object(json!({
            "metadata": {"managedFields": [{"manager": "kubectl-kms-sts", "operation": "Update", "time": "2026-01-02T00:00:00Z"}]},
            "data": {"apikey": "a2V5"}
        }));
        let pod = |start: &str| -> Pod {
            object(json!({
                "metadata": {"name": "tokenadapter-1"},
                "status": {"startTime": start, "conditions": [{"type": "Ready", "status": "True"}]}
            }))
        };
        let deployment: Deployment = object(json!({"spec": {"selector": {}, "template": {}}}));
        let mut snapshot = Snapshot {
            apikey_secret: Some(secret),
            token_adapter: Some(deployment),
            token_adapter_pods: vec![pod("2026-01-01T00:00:00Z")],
            ..Snapshot::default()
        };
        let check = find(&report(&snapshot, &names()), "token adapter").clone();
        assert_eq!(check.result, Outcome::Warn);
        assert!(check.message.starts_with("restart needed"));
        snapshot.token_adapter_pods = vec![pod("2026-01-03T00:00:00Z")];
        assert_eq!(
            find(&report(&snapshot, &names()), "token adapter").result,
            Outcome::Pass
        );
    }

    #[test]
    fn invalid_crns_in_a_policy_fail() {
        let snapshot = Snapshot {
            policy: Some(object(json!({
                "apiVersion": "policy.ibm.com/v1alpha1", "kind": "IdentityMappingPolicy",
                "metadata": {"name": "stspolicy"},
                "spec": {"identityMapping": {"sourceIdentity": "crn:v1:staging:public:sts:us-south:a/1234c123456789::",
                                             "targetCredentials": {"apiKeyRef": {"secretName": "sts-apikey", "propertyName": "apikey"}}},
                         "targetResources": ["crn:v1:icp:private:kms:c:n/kube-system:x::"]}
            }))),
            ..Snapshot::default()
        };
        let check = find(&report(&snapshot, &names()), "CRNs").clone();
        assert_eq!(check.result, Outcome::Fail);
        assert!(
            check.message.contains("source: a CRN has 10"),
            "{}",
            check.message
        );
    }
}
