//! `uninstall` against the real test cluster: after the chain it leaves both
//! profiles as they were seeded (save the API key Secret and the token
//! adapter, which it keeps by design), from a backup or, without one, from
//! the Deployment's earlier ReplicaSet; a second run writes nothing; objects
//! someone else created or also owns stay; a user without delete rights is
//! told which before anything is deleted; the chain run again converges to
//! a passing `status`.

mod support;

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;
use support::{
    TestCluster, assert_exit, cluster, fresh_namespaces, host_of, is_from_plugin, is_mutating,
    json_status, plugin_as, plugin_in, run, run_chain, scratch_dir, stderr, stdout,
};

const MISSING_PERMISSIONS: i32 = 5;
const STATUS_FAILED: i32 = 8;

/// The kinds `uninstall` may touch, and those the seed holds, for the
/// before-and-after comparison.
fn kinds(test: &TestCluster) -> String {
    let certificates = if test.profile == "legacy" {
        "certificates.certmanager.k8s.io"
    } else {
        "certificates.cert-manager.io"
    };
    format!(
        "deployments,services,secrets,configmaps,serviceaccounts,\
         gateways.networking.istio.io,virtualservices.networking.istio.io,\
         destinationrules.networking.istio.io,identitymappingpolicies.policy.ibm.com,{certificates}"
    )
}

/// Every object of those kinds in both namespaces, keyed `Kind/namespace/name`,
/// without what the server and controllers maintain (resourceVersion, uid,
/// timestamps, generation, managedFields, status, the revision annotation).
/// The API key Secret and the token adapter are left out: set-apikey changed
/// them, and uninstall keeps them by design.
fn state(test: &TestCluster, ns: &(String, String)) -> BTreeMap<String, Value> {
    let mut objects = BTreeMap::new();
    for namespace in [&ns.0, &ns.1] {
        let out = run(test
            .kubectl()
            .args(["get", &kinds(test), "-n", namespace, "-o", "json"]));
        assert_exit(&out, 0);
        let list: Value = serde_json::from_str(&stdout(&out)).unwrap();
        for item in list["items"].as_array().unwrap() {
            let kind = item["kind"].as_str().unwrap();
            let name = item["metadata"]["name"].as_str().unwrap();
            if (kind, name) == ("Secret", "sts-apikey")
                || (kind, name) == ("Deployment", "tokenadapter")
            {
                continue;
            }
            let mut kept = item.clone();
            kept.as_object_mut().unwrap().remove("status");
            let meta = kept["metadata"].as_object_mut().unwrap();
            for field in [
                "resourceVersion",
                "uid",
                "creationTimestamp",
                "generation",
                "managedFields",
            ] {
                meta.remove(field);
            }
            if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
                annotations.remove("deployment.kubernetes.io/revision");
            }
            objects.insert(format!("{kind}/{namespace}/{name}"), kept);
        }
    }
    objects
}

/// Plugin writes in the audit log since `offset`, in these namespaces.
fn plugin_writes(test: &TestCluster, offset: u64, ns: &(String, String)) -> Vec<String> {
    test.audit_events_since(offset)
        .iter()
        .filter(|e| is_from_plugin(e) && is_mutating(e))
        .filter(|e| {
            let namespace = e["objectRef"]["namespace"].as_str();
            namespace == Some(&ns.0) || namespace == Some(&ns.1)
        })
        .map(|e| format!("{} {}", e["verb"], e["requestURI"]))
        .collect()
}

fn uninstall(test: &TestCluster, ns: &(String, String), args: &[&str]) -> std::process::Output {
    run(plugin_in(test, ns).arg("uninstall").args(args))
}

/// After the chain the gateway's certificate is issued: by cert-manager on
/// `modern` (waited for), by the harness on `legacy`.
fn issue_certificate(test: &TestCluster, ns: &(String, String)) {
    if test.profile == "legacy" {
        test.issue_legacy_certificate(&ns.1, "istio-ingressgateway-certs");
    } else {
        test.wait_for_gateway_certificate(ns);
    }
}

#[test]
fn after_the_chain_uninstall_leaves_the_seed_and_the_chain_converges_again() {
    for profile in ["modern", "legacy"] {
        let test = cluster(profile);
        let ns = fresh_namespaces(test, "uninstall");
        let seeded = state(test, &ns);
        let backups = scratch_dir(&format!("uninstall-{profile}"));
        run_chain(&test.kubeconfig, &ns, &backups);
        issue_certificate(test, &ns);
        assert_ne!(
            state(test, &ns),
            seeded,
            "{profile}: the chain changed something"
        );

        // A dry run prints what would go, key redacted, and writes nothing.
        let offset = test.audit_offset();
        let dry = uninstall(
            test,
            &ns,
            &[
                "--dry-run",
                "-o",
                "json",
                "--delete-certificate-secret",
                "--delete-apikey",
            ],
        );
        assert_exit(&dry, 0);
        let listed: Value = serde_json::from_str(&stdout(&dry)).unwrap();
        let kinds: Vec<&str> = listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["kind"].as_str().unwrap())
            .collect();
        for kind in [
            "IdentityMappingPolicy",
            "DestinationRule",
            "VirtualService",
            "Gateway",
            "Certificate",
            "Secret",
            "Deployment",
        ] {
            assert!(kinds.contains(&kind), "{profile}: {kind} in {kinds:?}");
        }
        assert!(
            !stdout(&dry).contains("chain-test-key"),
            "the key is redacted"
        );
        assert!(
            !stdout(&dry).contains("Y2hhaW4tdGVzdC1rZXk"),
            "the key is redacted"
        );
        assert_eq!(plugin_writes(test, offset, &ns), Vec::<String>::new());

        // Without a terminal and without --yes, nothing happens.
        let refused = uninstall(test, &ns, &[]);
        assert_exit(&refused, 2);
        assert!(stderr(&refused).contains("--yes"), "{}", stderr(&refused));

        // On legacy the backup is not given: the earlier ReplicaSet is used.
        let backup_dir = if profile == "legacy" {
            // As a Deployment injected without this plugin's record (by an
            // older version, or by hand) and without a backup: the earlier
            // ReplicaSet is what is left.
            let out = run(test.kubectl().args([
                "annotate",
                "-n",
                &ns.0,
                "deployment/key-management-api",
                "kubectl-kms-sts/original-template-",
                "kubectl-kms-sts/injected-revision-",
                "kubectl-kms-sts/injector-fingerprint-",
            ]));
            assert_exit(&out, 0);
            scratch_dir("no-backups")
        } else {
            backups.clone()
        };
        let out = run(plugin_in(test, &ns)
            .args([
                "uninstall",
                "--yes",
                "--delete-certificate-secret",
                "--backup-dir",
            ])
            .arg(&backup_dir));
        assert_exit(&out, 0);
        let said = stderr(&out);
        let source = if profile == "legacy" {
            "earlier ReplicaSet"
        } else {
            "the backup"
        };
        assert!(said.contains(source), "{profile}: {said}");
        assert!(
            said.contains("sts-apikey") && said.contains("--delete-apikey"),
            "{said}"
        );
        assert_eq!(
            state(test, &ns),
            seeded,
            "{profile}: as seeded after uninstall\n{said}"
        );

        // status says what is absent, with the commands that set it up again.
        let (code, report) = json_status(plugin_in(test, &ns).arg("status"));
        assert_eq!(code, STATUS_FAILED, "{report:#}");
        let text = report.to_string();
        for command in [
            "kubectl kms-sts inject",
            "kubectl kms-sts expose",
            "kubectl kms-sts map-identity",
        ] {
            assert!(text.contains(command), "{profile}: {command} in {report:#}");
        }

        // A second run changes nothing and says so.
        let offset = test.audit_offset();
        let again = uninstall(test, &ns, &["--yes", "--delete-certificate-secret"]);
        assert_exit(&again, 0);
        assert!(
            stderr(&again).contains("nothing to uninstall"),
            "{}",
            stderr(&again)
        );
        assert_eq!(plugin_writes(test, offset, &ns), Vec::<String>::new());

        // The chain again converges to a passing status.
        run_chain(&test.kubeconfig, &ns, &backups);
        issue_certificate(test, &ns);
        let (code, report) = json_status(plugin_in(test, &ns).args(["status", "--wait", "60s"]));
        assert_eq!(code, 0, "{profile}: {report:#}");
    }
}

#[test]
fn what_someone_else_created_or_also_owns_is_kept() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "uninstall-owners");
    // The policy is created by kubectl, from the plugin's own dry run,
    // before the plugin ever writes it.
    let policy = run(plugin_in(test, &ns).args([
        "map-identity",
        "--source-crn",
        support::SOURCE_CRN,
        "--target-crn",
        support::TARGET_CRN,
        "--dry-run",
        "-o",
        "json",
    ]));
    assert_exit(&policy, 0);
    let manifest = scratch_dir("owners").join("policy.json");
    std::fs::write(&manifest, stdout(&policy)).unwrap();
    let out = run(test.kubectl().args(["create", "-f"]).arg(&manifest));
    assert_exit(&out, 0);
    let out = run(plugin_in(test, &ns).args(["expose", "--host", &host_of(&ns)]));
    assert_exit(&out, 0);
    // Someone else adds a field to a Gateway the plugin created.
    let out = run(test.kubectl().args([
        "annotate",
        "gateways.networking.istio.io/kmsgateway",
        "-n",
        &ns.0,
        "team=payments",
    ]));
    assert_exit(&out, 0);

    let out = uninstall(test, &ns, &["--yes"]);
    assert_exit(&out, 0);
    let said = stderr(&out);
    assert!(said.contains("did not create it"), "{said}");
    assert!(said.contains("also owned by kubectl-annotate"), "{said}");
    let left = test.object_names(
        &ns.0,
        "gateways.networking.istio.io,virtualservices,destinationrules",
    );
    assert_eq!(
        left.trim(),
        "gateway.networking.istio.io/kmsgateway",
        "{said}"
    );
    let left = test.object_names(&ns.1, "identitymappingpolicies,certificates");
    assert_eq!(
        left.trim(),
        "identitymappingpolicy.policy.ibm.com/stspolicy",
        "{said}"
    );
}

#[test]
fn a_user_without_delete_rights_is_told_which_before_anything_is_deleted() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "uninstall-rbac");
    let out = run(plugin_in(test, &ns).args(["expose", "--host", &host_of(&ns)]));
    assert_exit(&out, 0);
    // Everything uninstall needs, but deleting DestinationRules.
    let user = format!("uninstaller-{}", std::process::id());
    let out = run(plugin_in(test, &ns).args(["rbac", "--for", "uninstall", "--to-user", &user]));
    assert_exit(&out, 0);
    let mut grants = stdout(&out);
    let before = grants.len();
    grants = grants.replace(
        "- destinationrules\n  verbs:\n  - delete\n  - get",
        "- destinationrules\n  verbs:\n  - get",
    );
    assert_ne!(grants.len(), before, "{grants}");
    test.grant(grants.as_bytes(), &user);

    let offset = test.audit_offset();
    let out = run(plugin_as(&test.user_kubeconfig(&user), &ns).args(["uninstall", "--yes"]));
    assert_exit(&out, MISSING_PERMISSIONS);
    assert!(
        stderr(&out).contains(&format!(
            "delete destinationrules.networking.istio.io in {}",
            ns.0
        )),
        "{}",
        stderr(&out)
    );
    assert_eq!(plugin_writes(test, offset, &ns), Vec::<String>::new());
    let left = test.object_names(
        &ns.0,
        "gateways.networking.istio.io,virtualservices,destinationrules",
    );
    assert_eq!(left.lines().count(), 3, "{left}");
}

#[test]
fn bad_flags_are_refused_before_connecting() {
    let out = run(Command::new(support::plugin_binary()).args([
        "uninstall",
        "--timeout",
        "0s",
        "--kubeconfig",
        "/nonexistent",
    ]));
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("--timeout"), "{}", stderr(&out));
}

#[test]
fn an_object_changed_between_the_plan_and_its_delete_is_not_deleted() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "uninstall-race");
    let out = run(plugin_in(test, &ns).args(["expose", "--host", &host_of(&ns)]));
    assert_exit(&out, 0);
    // Another client changes the Gateway right after uninstall has read it.
    let proxy = test.interpose(
        &format!(
            "GET ^/apis/networking\\.istio\\.io/[^/]+/namespaces/{}/gateways/kmsgateway$",
            ns.0
        ),
        &[
            "--merge-patch",
            r#"{"metadata":{"annotations":{"changed-by":"someone"}}}"#,
            "--times",
            "1",
        ],
    );
    let out = run(plugin_as(&proxy.kubeconfig, &ns).args(["uninstall", "--yes"]));
    drop(proxy);
    assert_exit(&out, 7);
    let said = stderr(&out);
    assert!(
        said.contains("gateway.networking.istio.io/kmsgateway in")
            && said.contains("changed after it was read; it was not deleted"),
        "{said}"
    );
    assert!(said.contains("--show-managed-fields"), "{said}");
    assert_eq!(
        test.jsonpath(
            &ns.0,
            "gateway.networking.istio.io/kmsgateway",
            "{.metadata.annotations.changed-by}"
        ),
        "someone"
    );
    // Planned again, the Gateway someone else now also owns is kept.
    let out = uninstall(test, &ns, &["--yes"]);
    assert_exit(&out, 0);
    assert!(stderr(&out).contains("also owned by"), "{}", stderr(&out));
    assert_eq!(
        test.object_names(
            &ns.0,
            "gateways.networking.istio.io,virtualservices,destinationrules"
        )
        .trim(),
        "gateway.networking.istio.io/kmsgateway"
    );
}
