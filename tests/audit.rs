//! Measured with the API server's own audit log, where every request of the
//! plugin carries the User-Agent `kubectl-kms-sts/<version>`: a second run of
//! the whole chain writes nothing; a user who lacks any one permission a
//! command needs is told which before the plugin writes anything; exactly the
//! permissions the README lists run the whole chain, and `get`/`list` alone
//! run every client dry run.

mod support;

use serde_json::Value;
use support::{
    SOURCE_CRN, TARGET_CRN, TestCluster, assert_exit, cluster, fresh_namespaces, host_of,
    is_mutating, istioctl_binary, plugin_as, run, run_chain, scratch_dir, stderr,
};

const FORBIDDEN: i32 = 5;

fn plugin_events<'a>(events: &'a [Value], ns: &(String, String)) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| support::is_from_plugin(e))
        .filter(|e| {
            let namespace = e["objectRef"]["namespace"].as_str();
            namespace.is_none() || namespace == Some(&ns.0) || namespace == Some(&ns.1)
        })
        .collect()
}

#[test]
fn a_second_run_of_the_chain_writes_nothing() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "audit-idem");
    let first = test.audit_offset();
    run_chain(&test.kubeconfig, &ns, &scratch_dir("audit-backups"));
    let events = test.audit_events_since(first);
    let writes = plugin_events(&events, &ns)
        .into_iter()
        .filter(|e| is_mutating(e))
        .count();
    assert!(
        writes >= 6,
        "the first run writes (secret, restart, deployment, 4 objects, policy): {writes}"
    );

    let second = test.audit_offset();
    run_chain(&test.kubeconfig, &ns, &scratch_dir("audit-backups"));
    let events = test.audit_events_since(second);
    let mine = plugin_events(&events, &ns);
    assert!(
        !mine.is_empty(),
        "the second run's requests are in the audit log"
    );
    let writes: Vec<String> = mine
        .iter()
        .filter(|e| is_mutating(e))
        .map(|e| format!("{} {}", e["verb"], e["requestURI"]))
        .collect();
    assert!(writes.is_empty(), "second run wrote: {writes:?}");
}

/// One RBAC grant: verb, API group, resource.
type Grant = (&'static str, &'static str, &'static str);

/// The RBAC grants the four writing subcommands need, as the runbook runs
/// them: (verb, API group, resource) in both namespaces, then cluster-wide.
const RUNBOOK_GRANTS: [Grant; 23] = [
    ("get", "", "secrets"),
    ("patch", "", "secrets"),
    ("get", "apps", "deployments"),
    ("patch", "apps", "deployments"),
    ("update", "apps", "deployments"),
    ("list", "", "pods"),
    ("list", "", "configmaps"),
    ("get", "", "services"),
    ("get", "cert-manager.io", "certificates"),
    ("create", "cert-manager.io", "certificates"),
    ("patch", "cert-manager.io", "certificates"),
    ("get", "networking.istio.io", "gateways"),
    ("create", "networking.istio.io", "gateways"),
    ("patch", "networking.istio.io", "gateways"),
    ("get", "networking.istio.io", "virtualservices"),
    ("create", "networking.istio.io", "virtualservices"),
    ("patch", "networking.istio.io", "virtualservices"),
    ("get", "networking.istio.io", "destinationrules"),
    ("create", "networking.istio.io", "destinationrules"),
    ("patch", "networking.istio.io", "destinationrules"),
    ("create", "", "secrets"),
    ("get", "policy.ibm.com", "identitymappingpolicies"),
    ("create", "policy.ibm.com", "identitymappingpolicies"),
];
/// What `expose` also needs where the cluster serves the Gateway API (the
/// modern profile does): it reads the Gateway API's objects to tell which
/// API exposes KMS, and may write them.
const GATEWAY_API_GRANTS: [Grant; 12] = [
    ("get", "gateway.networking.k8s.io", "gateways"),
    ("create", "gateway.networking.k8s.io", "gateways"),
    ("patch", "gateway.networking.k8s.io", "gateways"),
    ("get", "gateway.networking.k8s.io", "httproutes"),
    ("create", "gateway.networking.k8s.io", "httproutes"),
    ("patch", "gateway.networking.k8s.io", "httproutes"),
    ("get", "gateway.networking.k8s.io", "backendtlspolicies"),
    ("create", "gateway.networking.k8s.io", "backendtlspolicies"),
    ("patch", "gateway.networking.k8s.io", "backendtlspolicies"),
    ("get", "", "configmaps"),
    ("create", "", "configmaps"),
    ("patch", "", "configmaps"),
];
const RUNBOOK_CLUSTER_GRANTS: [Grant; 2] = [
    ("get", "cert-manager.io", "clusterissuers"),
    // Every application's Gateways, which istiod merges with KMS's.
    ("list", "networking.istio.io", "gateways"),
];
/// Granted with the above, so that `patch identitymappingpolicies` can be
/// left out by a test like the rest.
const POLICY_PATCH: Grant = ("patch", "policy.ibm.com", "identitymappingpolicies");
/// How set-apikey and inject await their rollouts, granted like `POLICY_PATCH`.
const ROLLOUT_WATCH: Grant = ("watch", "apps", "deployments");

/// A new user holding exactly `grants` in both namespaces and
/// `cluster_grants` cluster-wide (one Role per namespace, one ClusterRole,
/// with their bindings); returns its kubeconfig.
fn user_with(
    test: &TestCluster,
    ns: &(String, String),
    label: &str,
    grants: &[Grant],
    cluster_grants: &[Grant],
) -> std::path::PathBuf {
    let user = format!("audit-{label}-{}", std::process::id());
    let kubeconfig = test.user_kubeconfig(&user);
    let rules = |grants: &[Grant]| -> Vec<Value> {
        grants
            .iter()
            .map(|(verb, group, resource)| {
                serde_json::json!({"apiGroups": [group], "resources": [resource], "verbs": [verb]})
            })
            .collect()
    };
    let binding = |kind: &str, namespace: Option<&str>| {
        let mut object = serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": format!("{kind}Binding"),
            "metadata": {"name": user},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": user},
            "subjects": [{"kind": "User", "name": user}],
        });
        if let Some(namespace) = namespace {
            object["metadata"]["namespace"] = namespace.into();
        }
        object
    };
    let mut objects = Vec::new();
    for namespace in [&ns.0, &ns.1] {
        objects.push(serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": user, "namespace": namespace}, "rules": rules(grants),
        }));
        objects.push(binding("Role", Some(namespace)));
    }
    objects.push(serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": user}, "rules": rules(cluster_grants),
    }));
    objects.push(binding("ClusterRole", None));
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects});
    test.grant(list.to_string().as_bytes(), &user);
    kubeconfig
}

/// The plugin's writes recorded for the users whose names start with `prefix`.
fn writes_by_users(test: &TestCluster, offset: u64, prefix: &str) -> Vec<String> {
    test.audit_events_since(offset)
        .iter()
        .filter(|e| {
            e["user"]["username"]
                .as_str()
                .is_some_and(|user| user.starts_with(prefix))
        })
        .filter(|e| is_mutating(e))
        .map(|e| {
            format!(
                "{} {} {}",
                e["user"]["username"], e["verb"], e["requestURI"]
            )
        })
        .collect()
}

#[test]
fn each_missing_permission_is_named_before_any_write() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "audit-rbac");
    let istioctl = istioctl_binary();
    let set_apikey = vec!["set-apikey", "--from-env", "HOME"];
    let inject = vec!["inject", "--istioctl", istioctl.to_str().unwrap()];
    let host = host_of(&ns);
    let expose = vec!["expose", "--host", host.as_str()];
    let map_identity = vec![
        "map-identity",
        "--source-crn",
        SOURCE_CRN,
        "--target-crn",
        TARGET_CRN,
    ];
    // Each subcommand, and every permission it needs.
    let mut cases: Vec<(&Vec<&str>, Grant)> = Vec::new();
    for grant in &RUNBOOK_GRANTS[..4] {
        cases.push((&set_apikey, *grant));
    }
    cases.push((&inject, RUNBOOK_GRANTS[2]));
    for grant in &RUNBOOK_GRANTS[4..7] {
        cases.push((&inject, *grant));
    }
    for grant in &RUNBOOK_GRANTS[7..21] {
        cases.push((&expose, *grant));
    }
    // What the gateway and kms-api pods mount, kms-api's TLS secret and the
    // gateway's CA Secret.
    for grant in [RUNBOOK_GRANTS[5], RUNBOOK_GRANTS[0], RUNBOOK_GRANTS[1]] {
        cases.push((&expose, grant));
    }
    for grant in RUNBOOK_CLUSTER_GRANTS.into_iter().chain(GATEWAY_API_GRANTS) {
        cases.push((&expose, grant));
    }
    for grant in RUNBOOK_GRANTS[21..].iter().chain([&POLICY_PATCH]) {
        cases.push((&map_identity, *grant));
    }
    cases.push((&map_identity, RUNBOOK_GRANTS[0]));
    // Awaiting the rollouts; reading the KMS Deployment for what its pods mount.
    cases.push((&set_apikey, ROLLOUT_WATCH));
    cases.push((&inject, ROLLOUT_WATCH));
    cases.push((&expose, RUNBOOK_GRANTS[2]));
    assert_eq!(cases.len(), 46);

    let offset = test.audit_offset();
    for (index, (args, missing)) in cases.iter().enumerate() {
        let keep = |grants: &[Grant]| {
            grants
                .iter()
                .copied()
                .chain([POLICY_PATCH, ROLLOUT_WATCH])
                .filter(|grant| grant != missing)
                .collect::<Vec<_>>()
        };
        let grants = keep(&[RUNBOOK_GRANTS.as_slice(), &GATEWAY_API_GRANTS].concat());
        let cluster_grants: Vec<_> = RUNBOOK_CLUSTER_GRANTS
            .iter()
            .copied()
            .filter(|grant| grant != missing)
            .collect();
        let kubeconfig = user_with(
            test,
            &ns,
            &format!("lacks-{index}"),
            &grants,
            &cluster_grants,
        );
        let out = run(plugin_as(&kubeconfig, &ns).args(args.iter()));
        let (verb, group, resource) = *missing;
        let resource = if group.is_empty() {
            resource.to_owned()
        } else {
            format!("{resource}.{group}")
        };
        let place = match resource.as_str() {
            _ if RUNBOOK_CLUSTER_GRANTS.contains(missing) => "(cluster-wide)".to_owned(),
            // The CA beside the BackendTLSPolicy, in the KMS namespace.
            "configmaps" if args[0] == "expose" => format!("in {}", ns.0),
            "gateways.gateway.networking.k8s.io" => format!("in {}", ns.1),
            "configmaps" | "secrets" | "identitymappingpolicies.policy.ibm.com" => {
                format!("in {}", ns.1)
            }
            "deployments.apps" if args[0] == "set-apikey" => format!("in {}", ns.1),
            "certificates.cert-manager.io" => format!("in {}", ns.1),
            _ => format!("in {}", ns.0),
        };
        let expected = format!("{verb} {resource} {place}");
        let label = format!("{} without {expected}", args[0]);
        assert_eq!(
            out.status.code(),
            Some(FORBIDDEN),
            "{label}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains(&expected),
            "{label}: {}",
            stderr(&out)
        );
    }
    let writes = writes_by_users(test, offset, "audit-lacks-");
    assert!(writes.is_empty(), "wrote: {writes:?}");
}

#[test]
fn exactly_the_documented_permissions_are_enough_and_a_client_dry_run_only_reads() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "audit-least");
    let reader_grants: Vec<_> = RUNBOOK_GRANTS
        .iter()
        .chain(&GATEWAY_API_GRANTS)
        .copied()
        .filter(|(verb, _, _)| ["get", "list"].contains(verb))
        .collect();
    let reader = user_with(test, &ns, "reader", &reader_grants, &RUNBOOK_CLUSTER_GRANTS);
    let offset = test.audit_offset();
    let istioctl = istioctl_binary();
    let host = host_of(&ns);
    for args in [
        vec!["set-apikey", "--from-env", "HOME", "--dry-run"],
        vec![
            "inject",
            "--dry-run",
            "--istioctl",
            istioctl.to_str().unwrap(),
        ],
        vec!["expose", "--host", host.as_str(), "--dry-run", "-o", "yaml"],
        vec![
            "map-identity",
            "--source-crn",
            SOURCE_CRN,
            "--target-crn",
            TARGET_CRN,
            "--dry-run",
        ],
    ] {
        let out = run(plugin_as(&reader, &ns).args(&args));
        assert_exit(&out, 0);
    }
    assert_eq!(
        writes_by_users(test, offset, "audit-reader-"),
        Vec::<String>::new()
    );

    // With exactly the grants the README lists, the whole chain runs.
    let grants: Vec<_> = RUNBOOK_GRANTS
        .iter()
        .chain(&GATEWAY_API_GRANTS)
        .copied()
        .chain([POLICY_PATCH, ROLLOUT_WATCH])
        .collect();
    let operator = user_with(test, &ns, "operator", &grants, &RUNBOOK_CLUSTER_GRANTS);
    run_chain(&operator, &ns, &scratch_dir("audit-least-backups"));
    let out = run(plugin_as(&operator, &ns).args(["status", "--wait", "60s"]));
    assert_exit(&out, 0);
}
