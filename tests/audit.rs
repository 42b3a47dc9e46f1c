//! Measured with the API server's own audit log, where every request of the
//! plugin carries the User-Agent `kubectl-kms-sts/<version>`: a second run of
//! the whole chain writes nothing, and a user who lacks one permission is told
//! which before the plugin writes anything.

mod support;

use serde_json::Value;
use support::{
    SOURCE_CRN, TARGET_CRN, TestCluster, assert_exit, cluster, fresh_namespaces, is_mutating,
    istioctl_binary, plugin, run, run_chain, run_with_stdin, scratch_dir, stderr,
};

const FORBIDDEN: i32 = 5;

fn plugin_as(kubeconfig: &std::path::Path, ns: &(String, String)) -> std::process::Command {
    let mut command = plugin();
    command.arg("--kubeconfig").arg(kubeconfig).args([
        "--kms-namespace",
        &ns.0,
        "--istio-namespace",
        &ns.1,
    ]);
    command
}

fn plugin_events<'a>(events: &'a [Value], ns: &(String, String)) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| {
            e["userAgent"]
                .as_str()
                .unwrap_or_default()
                .starts_with("kubectl-kms-sts/")
        })
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
    run_chain(test, &ns, &scratch_dir("audit-backups"));
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
    run_chain(test, &ns, &scratch_dir("audit-backups"));
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

/// A user with every permission the chain needs but one.
fn user_without(
    test: &TestCluster,
    ns: &(String, String),
    label: &str,
    verb: &str,
    resource: &str,
) -> std::path::PathBuf {
    let user = format!("audit-{label}-{}", std::process::id());
    let kubeconfig = test.user_kubeconfig(&user);
    let all = [
        ("", "secrets"),
        ("apps", "deployments"),
        ("", "pods"),
        ("", "configmaps"),
        ("", "services"),
        ("cert-manager.io", "certificates"),
        ("networking.istio.io", "gateways"),
        ("networking.istio.io", "virtualservices"),
        ("networking.istio.io", "destinationrules"),
        ("policy.ibm.com", "identitymappingpolicies"),
    ];
    let verbs = ["get", "list", "create", "update", "patch"];
    let rules: Vec<Value> = all
        .iter()
        .map(|(group, res)| {
            let allowed: Vec<&str> = verbs
                .iter()
                .copied()
                .filter(|v| !(*res == resource && *v == verb))
                .collect();
            serde_json::json!({"apiGroups": [group], "resources": [res], "verbs": allowed})
        })
        .collect();
    for namespace in [&ns.0, &ns.1] {
        let role = serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": user, "namespace": namespace}, "rules": rules,
        });
        let binding = serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": user, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": user},
            "subjects": [{"kind": "User", "name": user}],
        });
        for object in [role, binding] {
            let out = run_with_stdin(
                test.kubectl().args(["apply", "-f", "-"]),
                object.to_string().as_bytes(),
            );
            assert_exit(&out, 0);
        }
    }
    let cluster_role = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": user},
        "rules": [{"apiGroups": ["cert-manager.io"], "resources": ["clusterissuers"], "verbs": ["get"]}],
    });
    let cluster_binding = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": user},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": user},
        "subjects": [{"kind": "User", "name": user}],
    });
    for object in [cluster_role, cluster_binding] {
        let out = run_with_stdin(
            test.kubectl().args(["apply", "-f", "-"]),
            object.to_string().as_bytes(),
        );
        assert_exit(&out, 0);
    }
    kubeconfig
}

#[test]
fn a_missing_permission_is_named_before_any_write() {
    let test = cluster("modern");
    let cases: [(&str, &str, &str, Vec<&str>, String); 4] = [
        (
            "key",
            "patch",
            "secrets",
            vec!["set-apikey", "--from-env", "HOME"],
            "patch secrets in {istio}".into(),
        ),
        (
            "inject",
            "update",
            "deployments",
            vec!["inject"],
            "update deployments.apps in {kms}".into(),
        ),
        (
            "expose",
            "patch",
            "gateways",
            vec!["expose", "--host", "10.0.0.9"],
            "patch gateways.networking.istio.io in {kms}".into(),
        ),
        (
            "policy",
            "create",
            "identitymappingpolicies",
            vec![
                "map-identity",
                "--source-crn",
                SOURCE_CRN,
                "--target-crn",
                TARGET_CRN,
            ],
            "create identitymappingpolicies.policy.ibm.com in {istio}".into(),
        ),
    ];
    for (label, verb, resource, args, expected) in cases {
        let ns = fresh_namespaces(test, &format!("audit-rbac-{label}"));
        let kubeconfig = user_without(test, &ns, label, verb, resource);
        let offset = test.audit_offset();
        let mut command = plugin_as(&kubeconfig, &ns);
        command.args(&args);
        if label == "inject" {
            command.arg("--istioctl").arg(istioctl_binary());
        }
        let out = run(&mut command);
        assert_exit(&out, FORBIDDEN);
        let expected = expected.replace("{kms}", &ns.0).replace("{istio}", &ns.1);
        assert!(
            stderr(&out).contains(&expected),
            "{label}: {}",
            stderr(&out)
        );
        let events = test.audit_events_since(offset);
        let user = format!("audit-{label}-{}", std::process::id());
        let writes: Vec<String> = events
            .iter()
            .filter(|e| e["user"]["username"] == user.as_str() && is_mutating(e))
            .map(|e| format!("{} {}", e["verb"], e["requestURI"]))
            .collect();
        assert!(writes.is_empty(), "{label}: wrote {writes:?}");
    }
}
