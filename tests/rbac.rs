//! `rbac --for COMMAND` prints Roles and bindings that, applied by an
//! administrator for a user who has no rights at all, let that user run the
//! command; and a user who lacks a permission is pointed at it by name.

mod support;

use support::{
    DefaultTag, IstioBuild, SOURCE_CRN, TARGET_CRN, assert_exit, cluster, fresh_namespaces,
    host_of, istioctl_binary, json_status, plugin_as, plugin_in, run, run_with_stdin, scratch_dir,
    status_check, stderr, stdout,
};

#[test]
fn each_command_runs_with_exactly_what_rbac_prints_for_it() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "rbac");
    let istioctl = istioctl_binary();
    let backups = scratch_dir("rbac-backups");
    let host = host_of(&ns);
    let steps: [(&str, Vec<&str>); 4] = [
        ("set-apikey", vec!["set-apikey", "--from-stdin"]),
        (
            "inject",
            vec![
                "inject",
                "--istioctl",
                istioctl.to_str().unwrap(),
                "--backup-dir",
                backups.to_str().unwrap(),
            ],
        ),
        ("expose", vec!["expose", "--host", host.as_str()]),
        (
            "map-identity",
            vec![
                "map-identity",
                "--source-crn",
                SOURCE_CRN,
                "--target-crn",
                TARGET_CRN,
            ],
        ),
    ];
    let grant = |command: &str| {
        let user = format!("rbac-{command}-{}", std::process::id());
        let kubeconfig = test.user_kubeconfig(&user);
        let out = run(plugin_in(test, &ns).args(["rbac", "--for", command, "--to-user", &user]));
        assert_exit(&out, 0);
        let manifest = stdout(&out);
        assert!(manifest.contains(&format!("name: {user}")), "{manifest}");
        test.grant(manifest.as_bytes(), &user);
        kubeconfig
    };
    for (command, args) in &steps {
        let kubeconfig = grant(command);
        let out = run_with_stdin(plugin_as(&kubeconfig, &ns).args(args), b"rbac-key");
        assert_exit(&out, 0);
    }
    test.wait_for_gateway_certificate(&ns);

    // status reads everything, and names the writes it was not granted.
    let kubeconfig = grant("status");
    let (code, report) = json_status(plugin_as(&kubeconfig, &ns).arg("status"));
    assert_eq!(code, 8, "{report:#}");
    let failed: Vec<&str> = report["categories"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["checks"].as_array().unwrap())
        .filter(|c| c["result"] == "fail")
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["permissions"], "{report:#}");
    // Reading the gateway proxies is granted apart, and skipped without.
    let skipped = status_check(&report, "gateway config");
    assert_eq!(skipped["result"], "warn", "{skipped:#}");
    assert!(
        skipped["message"]
            .as_str()
            .unwrap()
            .starts_with("skipped: reading what istiod sent the gateway proxies needs"),
        "{skipped:#}"
    );

    // The whole chain's grant passes every check.
    let kubeconfig = grant("all");
    let (code, report) = json_status(plugin_as(&kubeconfig, &ns).arg("status"));
    assert_eq!(code, 0, "{report:#}");
}

#[test]
fn a_user_without_a_permission_is_given_the_rbac_command_with_their_name() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "rbac-hint");
    let user = format!("rbac-hint-{}", std::process::id());
    let kubeconfig = test.user_kubeconfig(&user);
    let out = run(plugin_as(&kubeconfig, &ns).args(["expose", "--host", &host_of(&ns)]));
    assert_exit(&out, 5);
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "`kubectl kms-sts rbac --for expose --to-user {user}"
        )),
        "{err}"
    );
    // The printed command, run by an administrator, grants what was missing.
    let out = run(plugin_in(test, &ns).args(["rbac", "--for", "expose", "--to-user", &user]));
    assert_exit(&out, 0);
    test.grant(&out.stdout, &user);
    let out = run(plugin_as(&kubeconfig, &ns).args(["expose", "--host", &host_of(&ns)]));
    assert_exit(&out, 0);
}

#[test]
fn who_is_granted_must_be_named() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "rbac-usage");
    let out = run(plugin_in(test, &ns).args(["rbac", "--for", "expose"]));
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("--to-user"), "{}", stderr(&out));
    let out = run(plugin_in(test, &ns).args([
        "rbac",
        "--for",
        "inject",
        "--to-service-account",
        "ci/deployer",
    ]));
    assert_exit(&out, 0);
    let manifest = stdout(&out);
    assert!(manifest.contains("kind: ServiceAccount"), "{manifest}");
    assert!(manifest.contains("namespace: ci"), "{manifest}");
    let out = run(plugin_in(test, &ns).args([
        "rbac",
        "--for",
        "inject",
        "--to-service-account",
        "deployer",
    ]));
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("NAMESPACE/NAME"), "{}", stderr(&out));
}

#[test]
fn the_default_tag_is_followed_once_reading_it_is_granted() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "rbac-tag");
    test.install_istio(&ns.1, IstioBuild::Previous, Some("canary"));
    let backups = scratch_dir("rbac-tag-backups");
    let istioctl = istioctl_binary();
    // The revision `inject` chooses for a user granted `rbac --for inject`
    // with `extra`; the injection is taken back out afterwards.
    let chosen_for = |user: &str, extra: &[&str]| {
        let kubeconfig = test.user_kubeconfig(user);
        let out = run(plugin_in(test, &ns)
            .args(["rbac", "--for", "inject", "--to-user", user, "--name", user])
            .args(extra));
        assert_exit(&out, 0);
        test.grant(&out.stdout, user);
        let out = run(plugin_as(&kubeconfig, &ns)
            .arg("inject")
            .arg("--istioctl")
            .arg(&istioctl)
            .arg("--backup-dir")
            .arg(&backups));
        assert_exit(&out, 0);
        let revision = test.jsonpath(
            &ns.0,
            "deployment/key-management-api",
            "{.metadata.annotations.kubectl-kms-sts/injected-revision}",
        );
        let out = run(plugin_in(test, &ns)
            .args(["inject", "--undo", "--backup-dir"])
            .arg(&backups));
        assert_exit(&out, 0);
        revision
    };
    let tag = DefaultTag::set(test, "canary");
    let pid = std::process::id();
    // Refused the read of the tag, inject falls back to the revision
    // installed without a name; granted it, inject follows the tag.
    assert_eq!(chosen_for(&format!("rbac-tag-{pid}"), &[]), "default");
    let granted = chosen_for(&format!("rbac-tag-read-{pid}"), &["--read-default-tag"]);
    drop(tag);
    assert_eq!(granted, "canary");

    // Commands that choose no revision are not granted the read.
    let out = run(plugin_in(test, &ns).args([
        "rbac",
        "--for",
        "expose",
        "--to-user",
        "x",
        "--read-default-tag",
    ]));
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("--for inject, status or all"),
        "{}",
        stderr(&out)
    );
}
