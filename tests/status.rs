//! `status` against the real test cluster: a fresh setup fails with hints,
//! the full chain of subcommands makes every check pass, drift is found, a
//! user without a permission is told which, and an unreachable cluster gives
//! one error.

mod support;

use support::{
    assert_exit, closed_port, cluster, fresh_namespaces, istioctl_binary, json_status,
    kubeconfig_for_port, plugin, plugin_in, run, run_chain, run_with_stdin, status_check, stderr,
    stdout,
};

const UNREACHABLE: i32 = 3;
const CHECKS_FAILED: i32 = 8;

/// Where `run_chain` keeps the inject backup of a namespace pair.
fn backups(ns: &(String, String)) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("status-backups-{}", ns.0))
}

#[test]
fn fresh_setup_fails_and_the_full_chain_passes_in_both_profiles() {
    for profile in ["modern", "legacy"] {
        let test = cluster(profile);
        let ns = fresh_namespaces(test, "status-chain");
        let (code, report) = json_status(plugin_in(test, &ns).arg("status"));
        assert_eq!(code, CHECKS_FAILED);
        assert_eq!(report["success"], false);
        for name in [
            "API key secret",
            "sidecar",
            "Gateway",
            "IdentityMappingPolicy",
        ] {
            assert_eq!(status_check(&report, name)["result"], "fail", "{name}");
            assert!(
                status_check(&report, name)["hint"]
                    .as_str()
                    .unwrap()
                    .contains("kubectl kms-sts"),
                "{name}"
            );
        }
        assert_eq!(status_check(&report, "API server")["result"], "pass");
        assert_eq!(status_check(&report, "permissions")["result"], "pass");

        run_chain(&test.kubeconfig, &ns, &backups(&ns));
        if profile == "legacy" {
            // No controller serves the legacy API here: issue the Certificate
            // as the old controller would.
            test.issue_legacy_certificate(&ns.1, "istio-ingressgateway-certs");
        }
        let (code, report) = json_status(plugin_in(test, &ns).args(["status", "--wait", "60s"]));
        assert_eq!(code, 0, "{report:#}");
        assert_eq!(report["success"], true);
        assert_eq!(report["summary"]["failed"], 0);
        assert_eq!(report["summary"]["warnings"], 0, "{report:#}");

        let out = run(plugin_in(test, &ns).arg("status"));
        assert_exit(&out, 0);
        assert!(
            stdout(&out).contains("√ sidecar: all 2 ready pods run istio-proxy"),
            "{}",
            stdout(&out)
        );
    }
}

#[test]
fn drift_is_found() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "status-drift");
    run_chain(&test.kubeconfig, &ns, &backups(&ns));

    // The route no longer matches the Service's port.
    let out = run(test.kubectl().args([
        "patch",
        "virtualservices.networking.istio.io",
        "kmsvservice",
        "-n",
        &ns.0,
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/http/0/route/0/destination/port/number","value":9999}]"#,
    ]));
    assert_exit(&out, 0);
    // The key changed behind the token adapter's back, at least a second
    // after its pods started (the API server's times have whole seconds).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = run(test.kubectl().args([
        "patch",
        "secret",
        "sts-apikey",
        "-n",
        &ns.1,
        "--type=merge",
        "-p",
        r#"{"data":{"apikey":"Y2hhbmdlZA=="}}"#,
    ]));
    assert_exit(&out, 0);

    let (code, report) = json_status(plugin_in(test, &ns).arg("status"));
    assert_eq!(code, CHECKS_FAILED);
    let vs = status_check(&report, "VirtualService");
    assert_eq!(vs["result"], "fail");
    assert_eq!(
        vs["message"],
        "routes to port 9999, but kms-api serves 28674"
    );
    let adapter = status_check(&report, "token adapter");
    assert_eq!(adapter["result"], "warn", "{adapter}");
    assert!(
        adapter["message"]
            .as_str()
            .unwrap()
            .starts_with("restart needed")
    );
}

#[test]
fn a_missing_permission_is_named() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "status-rbac");
    let user = format!("status-rbac-{}", std::process::id());
    let kubeconfig = test.user_kubeconfig(&user);
    // Everything the plugin needs but patch.
    for namespace in [&ns.0, &ns.1] {
        let out = run(test.kubectl().args([
            "create", "role", "kms-sts-no-patch", "-n", namespace,
            "--verb=get,list,create,update",
            "--resource=secrets,deployments.apps,pods,configmaps,services,certificates.cert-manager.io,gateways.networking.istio.io,virtualservices.networking.istio.io,destinationrules.networking.istio.io,identitymappingpolicies.policy.ibm.com",
        ]));
        assert_exit(&out, 0);
        let out = run(test.kubectl().args([
            "create",
            "rolebinding",
            "kms-sts-no-patch",
            "-n",
            namespace,
            "--role=kms-sts-no-patch",
            &format!("--user={user}"),
        ]));
        assert_exit(&out, 0);
    }
    let (code, report) = json_status(plugin().arg("--kubeconfig").arg(&kubeconfig).args([
        "--kms-namespace",
        &ns.0,
        "--istio-namespace",
        &ns.1,
        "status",
    ]));
    assert_eq!(code, CHECKS_FAILED);
    let permissions = status_check(&report, "permissions");
    assert_eq!(permissions["result"], "fail");
    let message = permissions["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("patch secrets in {}", ns.1)),
        "{message}"
    );
    assert!(
        message.contains("get clusterissuers.cert-manager.io (cluster-wide)"),
        "{message}"
    );
    assert!(!message.contains("get secrets"), "{message}");
}

#[test]
fn a_user_who_may_not_read_everything_gets_a_report_in_the_servers_words() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "status-view");
    let user = format!("status-view-{}", std::process::id());
    let kubeconfig = test.user_kubeconfig(&user);
    // The cluster's read-only role, which does not cover custom resources.
    for namespace in [&ns.0, &ns.1] {
        let out = run(test.kubectl().args([
            "create",
            "rolebinding",
            "kms-sts-view",
            "-n",
            namespace,
            "--clusterrole=view",
            &format!("--user={user}"),
        ]));
        assert_exit(&out, 0);
    }
    let status = || {
        let mut command = plugin();
        command.arg("--kubeconfig").arg(&kubeconfig).args([
            "--kms-namespace",
            &ns.0,
            "--istio-namespace",
            &ns.1,
            "status",
        ]);
        command
    };
    let (code, report) = json_status(&mut status());
    assert_eq!(code, CHECKS_FAILED, "{report:#}");
    let refused = status_check(&report, "read access");
    assert_eq!(refused["result"], "fail");
    let message = refused["message"].as_str().unwrap();
    assert!(message.contains("is forbidden: User"), "{message}");
    assert!(
        message.contains("(reason Forbidden, HTTP 403)"),
        "{message}"
    );
    assert!(
        refused["hint"]
            .as_str()
            .unwrap()
            .contains("kubectl kms-sts rbac --for status"),
        "{refused:#}"
    );
    // Every permission the user lacks is named, reads included.
    let permissions = status_check(&report, "permissions")["message"]
        .as_str()
        .unwrap();
    assert!(
        permissions.contains(&format!("get gateways.networking.istio.io in {}", ns.0)),
        "{permissions}"
    );
    assert!(
        permissions.contains(&format!("patch secrets in {}", ns.1)),
        "{permissions}"
    );
    let out = run(&mut status());
    assert_exit(&out, CHECKS_FAILED);
    assert_eq!(stdout(&out).matches("is forbidden").count(), 1);
}

#[test]
fn a_virtual_service_without_a_route_fails() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "status-no-route");
    let out = run(plugin_in(test, &ns).args(["expose", "--host", "10.1.2.3"]));
    assert_exit(&out, 0);
    let out = run(test.kubectl().args([
        "patch",
        "virtualservices.networking.istio.io/kmsvservice",
        "-n",
        &ns.0,
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/spec/http"}]"#,
    ]));
    assert_exit(&out, 0);
    let (code, report) = json_status(plugin_in(test, &ns).arg("status"));
    assert_eq!(code, CHECKS_FAILED);
    let vs = status_check(&report, "VirtualService");
    assert_eq!(vs["result"], "fail", "{vs:#}");
    assert!(
        vs["message"]
            .as_str()
            .unwrap()
            .contains("has no HTTP route to kms-api"),
        "{vs:#}"
    );
}

#[test]
fn counts_agree_in_number() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "status-counts");
    // One token adapter pod, one gateway pod, two KMS replicas.
    let out = run(plugin_in(test, &ns).args(["expose", "--host", "10.1.2.3"]));
    assert_exit(&out, 0);
    let out = run(plugin_in(test, &ns).arg("status"));
    let text = stdout(&out);
    assert!(
        text.contains("√ token adapter: 1 ready pod, started after the key last changed"),
        "{text}"
    );
    assert!(text.contains("√ gateway pods: 1 ready pod in"), "{text}");
    assert!(text.contains("rolled out, 2 available"), "{text}");
    for wrong in [
        "1 ready pods",
        "1 warnings",
        "1 pods",
        "1 replicas",
        "1 permissions",
    ] {
        assert!(!text.contains(wrong), "{wrong}: {text}");
    }
}

/// The command line in a hint's first backquotes, as the words a shell
/// would pass (the hints quote nothing here: no value holds a space).
fn hinted_command(check: &serde_json::Value) -> Vec<String> {
    let hint = check["hint"].as_str().expect("a hint");
    let line = hint
        .split('`')
        .nth(1)
        .unwrap_or_else(|| panic!("no command in {hint}"));
    let words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
    assert_eq!(words[..2], ["kubectl", "kms-sts"], "{hint}");
    words[2..].to_vec()
}

#[test]
fn hints_carry_the_runs_flags_and_fix_what_they_name_when_pasted() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "status-hints");
    let context = "kms-sts-admin@kms-sts-modern";
    let flags = [
        "--kubeconfig".to_owned(),
        test.kubeconfig.display().to_string(),
        "--context".to_owned(),
        context.to_owned(),
        "--kms-namespace".to_owned(),
        ns.0.clone(),
        "--istio-namespace".to_owned(),
        ns.1.clone(),
    ];
    // The plugin as pasted into a shell where istioctl is on PATH.
    let pasted = |words: &[String]| {
        let mut command = plugin();
        let path = format!(
            "{}:{}",
            istioctl_binary().parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        command.env("PATH", path).args(words);
        command
    };
    let status = || json_status(plugin().args(&flags).arg("status"));

    let (_, report) = status();
    for name in [
        "API key secret",
        "sidecar",
        "Gateway",
        "IdentityMappingPolicy",
    ] {
        let hint = status_check(&report, name)["hint"].as_str().unwrap();
        for flag in flags.chunks(2) {
            assert!(
                hint.contains(&format!("{} {}", flag[0], flag[1])),
                "{name}: {hint}"
            );
        }
    }
    // The key comes from stdin instead of the prompt the hint would show.
    let mut set_apikey = hinted_command(status_check(&report, "API key secret"));
    set_apikey.push("--from-stdin".into());
    let out = run_with_stdin(&mut pasted(&set_apikey), b"hinted-key");
    assert_exit(&out, 0);
    let inject = hinted_command(status_check(&report, "sidecar"));
    assert_exit(&run(&mut pasted(&inject)), 0);
    let out = run(plugin_in(test, &ns).args(["expose", "--host", "10.1.2.3"]));
    assert_exit(&out, 0);
    let out = run(test.kubectl().args([
        "delete",
        "destinationrules.networking.istio.io/kms-api-tls",
        "-n",
        &ns.0,
    ]));
    assert_exit(&out, 0);

    let (_, report) = status();
    for name in ["API key secret", "sidecar"] {
        assert_eq!(
            status_check(&report, name)["result"],
            "pass",
            "{name}: {report:#}"
        );
    }
    let rule = status_check(&report, "DestinationRule");
    assert_eq!(rule["result"], "fail");
    let expose = hinted_command(rule);
    assert!(
        expose.windows(2).any(|w| w == ["--host", "10.1.2.3"]),
        "{expose:?}"
    );
    assert_exit(&run(&mut pasted(&expose)), 0);
    let (_, report) = status();
    assert_eq!(status_check(&report, "DestinationRule")["result"], "pass");

    // An error's hint carries them too: a user without permissions is given
    // the command that prints the Roles for the same namespaces.
    let user = format!("status-hints-{}", std::process::id());
    let nobody = test.user_kubeconfig(&user);
    let out = run(plugin()
        .arg("--kubeconfig")
        .arg(&nobody)
        .args(["--kms-namespace", &ns.0, "--istio-namespace", &ns.1])
        .args(["expose", "--host", "10.1.2.3"]));
    assert_exit(&out, 5);
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "`kubectl kms-sts rbac --for expose --to-user {user} --kubeconfig {} \
             --kms-namespace {} --istio-namespace {}`",
            nobody.display(),
            ns.0,
            ns.1
        )),
        "{err}"
    );
}

#[test]
fn an_unreachable_cluster_gives_one_error() {
    let path = kubeconfig_for_port(closed_port());
    let out = run(plugin().arg("--kubeconfig").arg(&path).arg("status"));
    assert_exit(&out, UNREACHABLE);
    assert_eq!(
        stderr(&out).matches("error:").count(),
        1,
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
}
