//! `map-identity` against the real test cluster: the runbook's own bad CRNs
//! are refused before anything is sent, the corrected ones produce a policy
//! the API server validates against its CRD, re-runs change nothing, and the
//! API-key secret reference is checked.

mod support;

use support::{
    TestCluster, assert_exit, cluster, fresh_namespaces, plugin_in, run, run_with_stdin, stderr,
};

const USAGE: i32 = 2;
const MISSING: i32 = 6;

const SOURCE: &str = "crn:v1:staging:public:sts:us-south:a/1234:123456789::";
const TARGET: &str =
    "crn:v1:icp:private:kms:mycluster:n/kube-system:0d705d95-e216-4ce4-9c81-38eeef4eee3b::";
/// The runbook's prerequisite CRN: nine fields.
const RUNBOOK_SOURCE: &str = "crn:v1:staging:public:sts:us-south:a/1234c123456789::";
/// The runbook's target CRN: a space inside.
const RUNBOOK_TARGET: &str =
    "crn:v1:icp:private:kms:mycluster:n/kube-system:0d705d95- e216-4ce4-9c81-38eeef4eee3b::";

fn policy_count(test: &TestCluster, ns: &str) -> usize {
    test.object_names(ns, "identitymappingpolicies.policy.ibm.com")
        .lines()
        .count()
}

/// `map-identity` with the corrected runbook CRNs, for further flags.
fn map_identity(test: &TestCluster, ns: &(String, String)) -> std::process::Command {
    let mut command = plugin_in(test, ns);
    command.args([
        "map-identity",
        "--source-crn",
        SOURCE,
        "--target-crn",
        TARGET,
    ]);
    command
}

fn set_key(test: &TestCluster, ns: &(String, String)) {
    let out = run_with_stdin(
        plugin_in(test, ns).args(["set-apikey", "--from-stdin", "--no-restart"]),
        b"policy-test-key",
    );
    assert_exit(&out, 0);
}

#[test]
fn creates_the_policy_and_rerun_changes_nothing_in_both_profiles() {
    for profile in ["modern", "legacy"] {
        let test = cluster(profile);
        let ns = fresh_namespaces(test, "map-create");
        set_key(test, &ns);
        let out = run(&mut map_identity(test, &ns));
        assert_exit(&out, 0);
        assert!(
            stderr(&out).contains("identitymappingpolicy.policy.ibm.com/stspolicy created"),
            "{}",
            stderr(&out)
        );
        assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));

        let object = "identitymappingpolicies.policy.ibm.com/stspolicy";
        assert_eq!(
            test.jsonpath(&ns.1, object, "{.spec.identityMapping.sourceIdentity}"),
            SOURCE
        );
        assert_eq!(
            test.jsonpath(&ns.1, object, "{.spec.targetResources[0]}"),
            TARGET
        );
        assert_eq!(
            test.jsonpath(&ns.1, object, "{.spec.mappingType}"),
            "inbound"
        );
        assert_eq!(
            test.jsonpath(&ns.1, object, "{.spec.sourceAuthority}"),
            "ibm-cloud-iam"
        );
        assert_eq!(
            test.jsonpath(&ns.1, object, "{.spec.identityMapping.targetCredentials.apiKeyRef.secretName}/{.spec.identityMapping.targetCredentials.apiKeyRef.propertyName}"),
            "sts-apikey/apikey"
        );
        let version = test.jsonpath(&ns.1, object, "{.metadata.resourceVersion}");

        let out = run(&mut map_identity(test, &ns));
        assert_exit(&out, 0);
        assert!(
            stderr(&out).contains("stspolicy unchanged"),
            "{}",
            stderr(&out)
        );
        assert_eq!(
            test.jsonpath(&ns.1, object, "{.metadata.resourceVersion}"),
            version
        );
    }
}

#[test]
fn the_runbooks_own_crns_are_refused_with_the_problem_marked() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "map-runbook");
    let out = run(plugin_in(test, &ns).args([
        "map-identity",
        "--source-crn",
        RUNBOOK_SOURCE,
        "--target-crn",
        TARGET,
    ]));
    assert_exit(&out, USAGE);
    let err = stderr(&out);
    assert!(
        err.contains("invalid --source-crn: a CRN has 10 colon-separated fields"),
        "{err}"
    );
    assert!(err.contains("this one has 9"), "{err}");

    let out = run(plugin_in(test, &ns).args([
        "map-identity",
        "--source-crn",
        SOURCE,
        "--target-crn",
        RUNBOOK_TARGET,
    ]));
    assert_exit(&out, USAGE);
    let err = stderr(&out);
    assert!(
        err.contains("invalid --target-crn: a CRN cannot contain whitespace"),
        "{err}"
    );
    let lines: Vec<&str> = err.lines().collect();
    let value_line = lines
        .iter()
        .position(|l| l.contains("0d705d95- e216"))
        .unwrap();
    let caret = lines[value_line + 1].find('^').unwrap();
    assert_eq!(
        lines[value_line].chars().nth(caret),
        Some(' '),
        "the caret marks the space"
    );

    let out = run(plugin_in(test, &ns).args([
        "map-identity",
        "--source-crn",
        SOURCE,
        "--target-crn",
        SOURCE,
    ]));
    assert_exit(&out, USAGE);
    assert!(
        stderr(&out).contains("field 5 (service-name) is \"sts\", not \"kms\""),
        "{}",
        stderr(&out)
    );

    let out = run(plugin_in(test, &ns).args(["map-identity", "--source-crn", SOURCE]));
    assert_exit(&out, USAGE);
    assert!(
        stderr(&out).contains("--target-crn <CRN>"),
        "{}",
        stderr(&out)
    );

    assert_eq!(policy_count(test, &ns.1), 0);
}

#[test]
fn a_missing_secret_reference_warns_or_fails_with_strict() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "map-secret");
    // The seeded secret holds an empty key: a warning, and the policy is written.
    let out = run(&mut map_identity(test, &ns));
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains(&format!(
            "warning: secret {}/sts-apikey has no non-empty key apikey",
            ns.1
        )),
        "{}",
        stderr(&out)
    );
    assert_eq!(policy_count(test, &ns.1), 1);

    let out = run(map_identity(test, &ns).args([
        "--name",
        "strict-policy",
        "--secret",
        "absent",
        "--strict",
    ]));
    assert_exit(&out, MISSING);
    assert!(
        stderr(&out).contains("absent (key apikey) does not exist"),
        "{}",
        stderr(&out)
    );
    assert_eq!(policy_count(test, &ns.1), 1);
}

#[test]
fn yaml_output_is_accepted_by_kubectl_apply() {
    let test = cluster("legacy");
    let ns = fresh_namespaces(test, "map-yaml");
    let out = run(map_identity(test, &ns).args([
        "--target-crn",
        "crn:v1:icp:private:kms:other:n/kube-system:1111::",
        "--dry-run=client",
        "-o",
        "yaml",
    ]));
    assert_exit(&out, 0);
    assert_eq!(policy_count(test, &ns.1), 0);
    let mut apply = test.kubectl();
    apply.args(["apply", "-f", "-"]);
    let applied = run_with_stdin(&mut apply, &out.stdout);
    assert_exit(&applied, 0);
    let object = "identitymappingpolicies.policy.ibm.com/stspolicy";
    assert_eq!(
        test.jsonpath(&ns.1, object, "{.spec.targetResources[1]}"),
        "crn:v1:icp:private:kms:other:n/kube-system:1111::"
    );
}
