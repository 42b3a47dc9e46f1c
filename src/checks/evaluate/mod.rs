//! Every `status` check, decided from a `Snapshot` of the cluster taken
//! beforehand. Pure: the same snapshot always gives the same report, and each
//! rule is unit-tested with hand-made objects. This module holds the report
//! and the cluster's own checks; each category the runbook sets up has a
//! module of its own.

use serde::{Deserialize, Serialize};

mod apikey;
mod data_path;
mod exposure;
mod gateway_api;
mod gateway_config;
mod identity;
mod shared_gateway;
mod sidecar;

use crate::checks::snapshot::{Names, Snapshot};
use crate::checks::{Category, Check, CheckId, Report};
use crate::manifests::exposure::KMS_SERVICE;
use crate::terminal::wording::count;

/// What one round of reads gave the checks: the whole snapshot, or, when a
/// read was refused, what a user with partial rights could still read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Reading {
    Complete(Snapshot),
    Refused {
        snapshot: Snapshot,
        /// What was refused, and the server's words for it.
        action: String,
        refusal: String,
    },
}

impl Reading {
    pub fn snapshot(&self) -> &Snapshot {
        match self {
            Reading::Complete(snapshot) | Reading::Refused { snapshot, .. } => snapshot,
        }
    }

    /// The report the checks give on what was read.
    pub fn report(&self, names: &Names) -> Report {
        match self {
            Reading::Complete(snapshot) => report(snapshot, names),
            Reading::Refused {
                snapshot,
                action,
                refusal,
            } => unreadable_report(snapshot, names, action, refusal),
        }
    }
}

pub fn report(snapshot: &Snapshot, names: &Names) -> Report {
    let (exposure, data_path) = if snapshot.through_gateway_api() {
        (
            gateway_api::exposure_checks(snapshot, names),
            gateway_api::data_path_checks(snapshot, names),
        )
    } else {
        (
            exposure::checks(snapshot, names),
            data_path::checks(snapshot, names),
        )
    };
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
            checks: apikey::checks(snapshot, names),
        },
        Category {
            name: "sidecar",
            checks: sidecar::checks(snapshot, names),
        },
        Category {
            name: "exposure",
            checks: exposure,
        },
        Category {
            name: "data path",
            checks: data_path,
        },
        Category {
            name: "identity",
            checks: identity::checks(snapshot, names),
        },
    ])
}

/// The report when a read the checks need was refused: the cluster's
/// checks, every permission the user lacks, and what could not be read, so
/// that a user with partial rights gets a report instead of one error.
pub fn unreadable_report(s: &Snapshot, names: &Names, action: &str, refusal: &str) -> Report {
    let mut checks = cluster(s);
    checks.push(Check::fail(
        CheckId::ReadAccess,
        format!("{action} was refused: {refusal}; the other checks need it"),
        format!(
            "ask a cluster administrator to apply the Roles that {} prints",
            names.command("rbac", " --for status --to-user NAME")
        ),
    ));
    Report::new(vec![Category {
        name: "cluster",
        checks,
    }])
}

fn cluster(s: &Snapshot) -> Vec<Check> {
    let mut checks = vec![Check::pass(
        CheckId::ApiServer,
        format!("reachable at {}, Kubernetes {}", s.server, s.server_version),
    )];
    checks.push(if s.missing_permissions.is_empty() {
        Check::pass(
            CheckId::Permissions,
            format!(
                "all {} the plugin needs are granted",
                count(s.permissions_needed as i64, "permission", "permissions")
            ),
        )
    } else {
        let list: Vec<String> = s
            .missing_permissions
            .iter()
            .map(ToString::to_string)
            .collect();
        Check::fail(
            CheckId::Permissions,
            format!("missing: {}", list.join(", ")),
            "ask a cluster administrator to grant these to your user",
        )
    });
    checks
}

fn prerequisites(s: &Snapshot, names: &Names) -> Vec<Check> {
    let mut checks = vec![match s.served.cert_manager() {
        Some(api) => Check::pass(
            CheckId::CertManagerApi,
            format!("{}/{}", api.group(), api.version()),
        ),
        None => Check::fail(
            CheckId::CertManagerApi,
            "neither cert-manager.io/v1 nor certmanager.k8s.io/v1alpha1 is served",
            "install cert-manager",
        ),
    }];
    checks.push(match s.served.istio_networking() {
        Some(version) => Check::pass(
            CheckId::IstioNetworkingApi,
            format!("networking.istio.io/{version}"),
        ),
        None => Check::fail(
            CheckId::IstioNetworkingApi,
            "networking.istio.io Gateway, VirtualService and DestinationRule are not served",
            "install Istio",
        ),
    });
    checks.push(if s.served.identity_policy() {
        Check::pass(CheckId::IdentityPolicyApi, "policy.ibm.com/v1alpha1")
    } else {
        Check::fail(
            CheckId::IdentityPolicyApi,
            "policy.ibm.com/v1alpha1 identitymappingpolicies is not served",
            "install STS, which brings this CRD",
        )
    });
    checks.push(match &s.kms_service {
        Some(service) => match crate::manifests::exposure::service_port(service, None) {
            Ok(port) => Check::pass(
                CheckId::KmsApiService,
                format!("{}/{KMS_SERVICE} on port {port}", names.kms_namespace),
            ),
            Err(reason) => Check::warn(CheckId::KmsApiService, reason, "pass --port to expose"),
        },
        None => Check::fail(
            CheckId::KmsApiService,
            format!("{}/{KMS_SERVICE} does not exist", names.kms_namespace),
            "install KMS, or point --kms-namespace at it",
        ),
    });
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Outcome;
    use crate::checks::snapshot::KeySecret;
    use crate::objects::schemas::{
        Certificate as CertificateObject, DestinationRule, Gateway, VirtualService,
    };
    use crate::values::certificate;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{Pod, Secret};
    use serde_json::{Value, json};
    use std::collections::BTreeMap;

    fn names() -> Names {
        Names::runbook("")
    }

    fn object<T: serde::de::DeserializeOwned>(value: Value) -> T {
        serde_json::from_value(value).unwrap()
    }

    fn find<'a>(report: &'a Report, name: &str) -> &'a Check {
        report
            .categories
            .iter()
            .flat_map(|c| &c.checks)
            .find(|c| c.id.name() == name)
            .unwrap()
    }

    fn vs(port: i64, gateway: &str) -> VirtualService {
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
        let routeless = Snapshot {
            virtual_service: Some(object(json!({
                "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                "metadata": {"name": "kmsvservice"},
                "spec": {"gateways": ["kmsgateway"], "hosts": ["*"]}
            }))),
            ..snapshot.clone()
        };
        let check = find(&report(&routeless, &names()), "VirtualService").clone();
        assert_eq!(check.result, Outcome::Fail, "{}", check.message);
        assert!(check.message.contains("has no HTTP route to kms-api"));
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
            apikey_secret: Some(KeySecret::of(&secret, "apikey")),
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

    fn ready_gateway_pod(volumes: Value) -> Pod {
        object(json!({
            "metadata": {"name": "gw-1", "labels": {"istio": "ingressgateway"}},
            "spec": {"containers": [{"name": "istio-proxy", "volumeMounts": [
                {"name": "certs", "mountPath": "/etc/istio/ingressgateway-certs"},
                {"name": "ca", "mountPath": "/etc/istio/ingressgateway-ca-certs"}]}],
                     "volumes": volumes},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        }))
    }

    /// A set-up exposure as `expose` writes it for a gateway that mounts the
    /// secrets, with kms-api serving the test leaf certificate.
    fn exposed() -> Snapshot {
        use crate::values::certificate::fixtures::{CA as ca, LEAF as leaf, secret as tls_secret};
        let gateway: Gateway = object(json!({
            "apiVersion": "networking.istio.io/v1", "kind": "Gateway",
            "metadata": {"name": "kmsgateway"},
            "spec": {"selector": {"istio": "ingressgateway"}, "servers": [{
                "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                "tls": {"mode": "SIMPLE",
                        "serverCertificate": "/etc/istio/ingressgateway-certs/tls.crt",
                        "privateKey": "/etc/istio/ingressgateway-certs/tls.key"},
                "hosts": ["*"]}]}
        }));
        let rule: DestinationRule = object(json!({
            "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": "kms-api-tls"},
            "spec": {"host": "kms-api", "trafficPolicy": {"tls": {
                "mode": "SIMPLE", "sni": "kms-api.kube-system.svc.cluster.local",
                "subjectAltNames": ["kms-api.kube-system.svc.cluster.local"],
                "caCertificates": "/etc/istio/ingressgateway-ca-certs/ca.crt"}}}
        }));
        let certificate: CertificateObject = object(json!({
            "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": "istio-ingressgateway-certs"},
            "spec": {"dnsNames": ["kms.example.com"], "ipAddresses": ["10.0.0.7"]}
        }));
        Snapshot {
            gateway: Some(gateway),
            destination_rule: Some(rule),
            certificate: Some(certificate),
            gateway_pods: vec![ready_gateway_pod(json!([
                {"name": "certs", "secret": {"secretName": "istio-ingressgateway-certs"}},
                {"name": "ca", "secret": {"secretName": "istio-ingressgateway-ca-certs"}}]))],
            gateway_secrets: BTreeMap::from([
                (
                    "istio-ingressgateway-certs".to_owned(),
                    tls_secret(&[("tls.crt", leaf), ("tls.key", "k"), ("ca.crt", ca)]),
                ),
                (
                    "istio-ingressgateway-ca-certs".to_owned(),
                    tls_secret(&[("ca.crt", ca)]),
                ),
            ]),
            kms_tls_secret: Some((
                "kms-api-tls".to_owned(),
                tls_secret(&[("tls.crt", leaf), ("ca.crt", ca)]),
            )),
            now: 1_800_000_000,
            ..Snapshot::default()
        }
    }

    #[test]
    fn a_working_data_path_passes_every_check() {
        let report = report(&exposed(), &names());
        for name in [
            "gateway pods",
            "shared gateway",
            "gateway certificate",
            "certificate hosts",
            "upstream trust",
        ] {
            let check = find(&report, name);
            assert_eq!(check.result, Outcome::Pass, "{name}: {}", check.message);
        }
        assert!(
            find(&report, "upstream trust")
                .message
                .contains("checks the name kms-api.kube-system.svc.cluster.local")
        );
    }

    /// Another application's Gateway on the same gateway pods, created at
    /// `created`, claiming `hosts` on 443.
    fn neighbour(created: &str, hosts: &[&str]) -> Gateway {
        object(json!({
            "apiVersion": "networking.istio.io/v1", "kind": "Gateway",
            "metadata": {"name": "shop", "namespace": "shop", "creationTimestamp": created},
            "spec": {"selector": {"istio": "ingressgateway"}, "servers": [{
                "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                "tls": {"mode": "SIMPLE", "credentialName": "shop"}, "hosts": hosts}]}
        }))
    }

    #[test]
    fn a_gateway_shared_with_another_application_is_judged_as_istio_merges_it() {
        let mut kms = exposed();
        let gateway = kms.gateway.as_mut().unwrap();
        gateway.metadata.creation_timestamp = Some(object(json!("2026-06-01T00:00:00Z")));
        let shared = |s: &Snapshot| find(&report(s, &names()), "shared gateway").clone();

        // KMS claims `*` (an IP address is among its hosts); so does an
        // older Gateway: Istio serves that one.
        kms.neighbour_gateways = vec![neighbour("2026-01-01T00:00:00Z", &["*"])];
        let check = shared(&kms);
        assert_eq!(check.result, Outcome::Fail, "{}", check.message);
        assert!(
            check
                .message
                .contains("Gateway shop/shop claims * on port 443")
        );
        assert!(check.message.contains("drops KMS's"), "{}", check.message);
        assert!(
            check.hint.as_deref().unwrap().contains("DNS names only"),
            "{check:?}"
        );

        // A newer one loses to KMS's: KMS is served, the other is not.
        kms.neighbour_gateways = vec![neighbour("2026-12-01T00:00:00Z", &["*"])];
        assert_eq!(shared(&kms).result, Outcome::Warn);

        // A name of its own beside a wildcard: no conflict.
        let gateway = kms.gateway.as_mut().unwrap();
        gateway.spec.servers[0].hosts = vec!["kms.example.com".into()];
        kms.certificate.as_mut().unwrap().spec.ip_addresses.clear();
        kms.neighbour_gateways = vec![neighbour("2026-01-01T00:00:00Z", &["*"])];
        let check = shared(&kms);
        assert_eq!(check.result, Outcome::Pass, "{}", check.message);
        assert!(
            check.message.contains("1 other Gateway"),
            "{}",
            check.message
        );

        // An earlier version's `*` for names only: narrowed by expose.
        kms.gateway.as_mut().unwrap().spec.servers[0].hosts = vec!["*".into()];
        kms.neighbour_gateways.clear();
        let check = shared(&kms);
        assert_eq!(check.result, Outcome::Warn, "{}", check.message);
        assert!(
            check.hint.as_deref().unwrap().contains("narrows"),
            "{check:?}"
        );
    }

    #[test]
    fn the_gateway_proxies_own_account_is_compared_with_the_objects() {
        use crate::checks::proxy_reading::{
            ChainReading, ClusterReading, GatewayProxies, ProxyReading, RouteReading,
        };
        use crate::values::certificate::fixtures::{LEAF, secret as tls_secret};
        let cluster = "outbound|28674||kms-api.kube-system.svc.cluster.local";
        let serial = certificate::parse(LEAF.as_bytes()).unwrap().serial;
        let mut kms = exposed();
        kms.certificate_secret = Some(tls_secret(&[("tls.crt", LEAF)]));
        let mut route = vs(28674, "kmsgateway");
        route.spec.http[0] = object(json!({
            "match": [{"uri": {"prefix": "/kms/api"}}], "rewrite": {"uri": "/api"},
            "route": [{"destination": {"host": "kms-api", "port": {"number": 28674}}}]}));
        kms.virtual_service = Some(route);
        let serving = ProxyReading {
            pod: "gw-1".into(),
            chains: vec![ChainReading {
                listener: "0.0.0.0_8443".into(),
                server_names: vec![],
                certificate_serial: Some(serial.clone()),
                certificate_source: "file-cert:/etc/istio/ingressgateway-certs/tls.crt".into(),
            }],
            route_config: true,
            routes: vec![RouteReading {
                domains: vec!["*".into()],
                prefix: Some("/kms/api".into()),
                rewrite: Some("/api".into()),
                cluster: Some(cluster.into()),
            }],
            clusters: vec![ClusterReading {
                name: cluster.into(),
                sni: Some("kms-api.kube-system.svc.cluster.local".into()),
                verified_names: vec![],
                endpoints: 2,
                healthy_endpoints: 2,
            }],
            ..ProxyReading::default()
        };
        let live = |reading: &ProxyReading| {
            let mut s = kms.clone();
            s.gateway_proxies = GatewayProxies::Read(vec![reading.clone()]);
            find(&report(&s, &names()), "gateway config").clone()
        };
        let says = |check: &Check, text: &str| {
            assert!(check.message.contains(text), "{}", check.message);
        };
        let check = live(&serving);
        assert_eq!(check.result, Outcome::Pass, "{}", check.message);
        assert!(
            check
                .message
                .contains(&format!("certificate serial {serial}"))
        );

        let mut stale = serving.clone();
        stale.chains[0].certificate_serial = Some("0BAD".into());
        let check = live(&stale);
        assert_eq!(check.result, Outcome::Fail);
        assert!(
            check
                .message
                .contains("the renewal has not reached the gateway")
        );

        let mut dropped = serving.clone();
        dropped.chains.clear();
        dropped.rejected = vec!["listener 0.0.0.0_8443: duplicate matcher".into()];
        let check = live(&dropped);
        assert_eq!(check.result, Outcome::Fail);
        says(&check, "rejected listener 0.0.0.0_8443");
        says(&check, "holds no filter chain");

        let mut elsewhere = serving.clone();
        elsewhere.routes[0].rewrite = None;
        elsewhere.clusters[0].healthy_endpoints = 0;
        let check = live(&elsewhere);
        says(&check, "where the VirtualService says");
        says(&check, "no healthy endpoint");

        let unreadable = ProxyReading {
            pod: "gw-1".into(),
            unreadable: Some("connection closed".into()),
            ..ProxyReading::default()
        };
        assert_eq!(live(&unreadable).result, Outcome::Warn);
    }

    #[test]
    fn the_runbooks_bare_simple_rule_fails_upstream_trust() {
        let mut snapshot = exposed();
        snapshot.destination_rule = Some(object(json!({
            "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": "kms-api-tls"},
            "spec": {"host": "kms-api", "trafficPolicy": {"tls": {"mode": "SIMPLE"}}}
        })));
        let check = find(&report(&snapshot, &names()), "upstream trust").clone();
        assert_eq!(check.result, Outcome::Fail);
        assert!(
            check.message.contains("system's public roots"),
            "{}",
            check.message
        );
        assert!(check.hint.unwrap().contains("kubectl kms-sts expose"));
    }

    #[test]
    fn a_certificate_near_its_end_or_missing_a_host_is_reported() {
        let mut snapshot = exposed();
        let not_after = certificate::parse(certificate::fixtures::LEAF.as_bytes())
            .unwrap()
            .not_after;
        snapshot.now = not_after - 10 * 24 * 3600;
        let check = find(&report(&snapshot, &names()), "certificate hosts").clone();
        assert_eq!(check.result, Outcome::Warn, "{}", check.message);
        snapshot.now = not_after + 1;
        let check = find(&report(&snapshot, &names()), "certificate hosts").clone();
        assert_eq!(check.result, Outcome::Fail, "{}", check.message);
        assert!(check.message.contains("expired"));

        let mut snapshot = exposed();
        if let Some(cert) = snapshot.certificate.as_mut() {
            cert.spec.dns_names = vec!["kms.example.com".into(), "other.example.org".into()];
        }
        let check = find(&report(&snapshot, &names()), "certificate hosts").clone();
        assert_eq!(check.result, Outcome::Fail);
        assert!(
            check.message.contains("does not cover other.example.org"),
            "{}",
            check.message
        );
    }

    #[test]
    fn a_gateway_that_cannot_load_its_certificate_fails() {
        let mut snapshot = exposed();
        snapshot.gateway_pods = vec![ready_gateway_pod(json!([]))];
        let check = find(&report(&snapshot, &names()), "gateway certificate").clone();
        assert_eq!(check.result, Outcome::Fail);
        assert!(
            check
                .message
                .contains("mount no secret at /etc/istio/ingressgateway-certs")
        );
        snapshot.gateway_pods.clear();
        assert_eq!(
            find(&report(&snapshot, &names()), "gateway pods").result,
            Outcome::Fail
        );
    }
}
