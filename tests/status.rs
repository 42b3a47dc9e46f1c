//! `status` against the real test clusters: a fresh setup fails with hints,
//! the full chain of subcommands makes every check pass, drift is found, a
//! user without a permission is told which, and an unreachable cluster gives
//! one error. Several contexts in one run (both clusters, a refused user, a
//! server that never answers) give one table, one document and the worst
//! exit code; a saved snapshot gives the same report without a cluster and
//! holds no secret.

mod support;

use std::path::{Path, PathBuf};

use support::{
    TestCluster, assert_exit, assert_only_unplayed_warning, closed_port, cluster, fresh_namespaces,
    host_of, istioctl_binary, json_status, kubeconfig_for_port, plugin, plugin_in, run, run_chain,
    run_with_stdin, scratch_dir, status_check, stderr, stdout,
};

const USAGE: i32 = 2;
const UNREACHABLE: i32 = 3;
const CHECKS_FAILED: i32 = 8;

/// Where `run_chain` keeps the inject backup of a namespace pair.
fn backups(ns: &(String, String)) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("status-backups-{}", ns.0))
}

#[test]
fn fresh_setup_fails_and_the_full_chain_passes_in_both_profiles_then_both_are_one_fleet() {
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
        assert_only_unplayed_warning(&report);

        let out = run(plugin_in(test, &ns).arg("status"));
        assert_exit(&out, 0);
        assert!(
            stdout(&out).contains("√ sidecar: all 2 ready pods run istio-proxy"),
            "{}",
            stdout(&out)
        );
    }
    // The same namespace pair, set up on both clusters: one fleet.
    a_fleet_is_checked_in_one_run(&ns_of("status-chain"));
}

/// The namespace pair `fresh_namespaces` gave `label` (the same on both
/// clusters).
fn ns_of(label: &str) -> (String, String) {
    let suffix = format!("{}-{label}", std::process::id());
    (format!("kms-{suffix}"), format!("istio-{suffix}"))
}

/// One kubeconfig holding a context per `(name, kubeconfig)`, each with the
/// cluster and user of that kubeconfig's current context, renamed so that
/// the users of the two clusters (both `kms-sts-admin`) stay apart.
fn merged_kubeconfig(parts: &[(&str, &Path)]) -> PathBuf {
    let (mut clusters, mut users, mut contexts) = (Vec::new(), Vec::new(), Vec::new());
    for (name, path) in parts {
        let text = std::fs::read_to_string(path).unwrap();
        let config: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        clusters
            .push(serde_json::json!({"name": name, "cluster": config["clusters"][0]["cluster"]}));
        users.push(serde_json::json!({"name": name, "user": config["users"][0]["user"]}));
        contexts
            .push(serde_json::json!({"name": name, "context": {"cluster": name, "user": name}}));
    }
    let merged = serde_json::json!({
        "apiVersion": "v1", "kind": "Config", "current-context": parts[0].0,
        "clusters": clusters, "users": users, "contexts": contexts,
    });
    let path = scratch_dir("fleet").join("kubeconfig");
    // JSON is YAML: kubeconfig readers take it as it is.
    std::fs::write(&path, merged.to_string()).unwrap();
    path
}

/// `status` over several contexts of `kubeconfig` in `ns`, with `args`.
fn fleet_status(kubeconfig: &Path, ns: &(String, String), args: &[&str]) -> std::process::Output {
    run(support::plugin_as(kubeconfig, ns).arg("status").args(args))
}

fn document(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}\n{}", stdout(out), stderr(out)))
}

/// The base64 `tls.key` of a TLS secret, as the cluster holds it.
fn private_key(test: &TestCluster, namespace: &str, secret: &str) -> String {
    let key = test.jsonpath(namespace, &format!("secret/{secret}"), "{.data.tls\\.key}");
    assert!(
        key.len() > 100,
        "secret {namespace}/{secret} has a private key: {key}"
    );
    key
}

/// Both clusters set up in `ns`: healthy together, one broken, then beside
/// a user refused everything and a server that never answers; saved and
/// checked again from the file.
fn a_fleet_is_checked_in_one_run(ns: &(String, String)) {
    let (modern, legacy) = (cluster("modern"), cluster("legacy"));
    let nobody = modern.user_kubeconfig("fleet-nobody");
    // Accepts connections and never answers: each request waits for its
    // timeout. A token no file may repeat.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_config = kubeconfig_for_port(silent.local_addr().unwrap().port());
    let silent_text = std::fs::read_to_string(&silent_config)
        .unwrap()
        .replace("token: abc", "token: fleet-sentinel-token-4711");
    std::fs::write(&silent_config, silent_text).unwrap();
    let kubeconfig = merged_kubeconfig(&[
        ("modern", &modern.kubeconfig),
        ("legacy", &legacy.kubeconfig),
        ("nobody", &nobody),
        ("silent", &silent_config),
    ]);
    let pair = ["--context", "modern", "--context", "legacy"];

    let out = fleet_status(&kubeconfig, ns, &pair);
    assert_exit(&out, 0);
    let table = stdout(&out);
    let rows: Vec<&str> = table.lines().collect();
    assert!(rows[0].starts_with("CONTEXT"), "{table}");
    // Every check passes but one: the pair's gateway pods are not played,
    // so no proxy answers for what istiod sent them (a warning).
    for (row, context) in [(rows[1], "modern "), (rows[2], "legacy ")] {
        assert!(
            row.starts_with(context)
                && row.contains(" warn ")
                && row.contains("gateway config: could not read what a gateway proxy holds"),
            "{table}"
        );
    }

    // Legacy loses its route: one row fails, with the hint for its context.
    let out = legacy
        .kubectl()
        .args([
            "delete",
            "virtualservices.networking.istio.io",
            "kmsvservice",
            "-n",
            &ns.0,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = fleet_status(&kubeconfig, ns, &pair);
    assert_exit(&out, CHECKS_FAILED);
    let table = stdout(&out);
    let legacy_row = table.lines().find(|l| l.starts_with("legacy ")).unwrap();
    assert!(legacy_row.contains(" fail "), "{table}");
    assert!(legacy_row.contains("VirtualService: "), "{table}");
    assert!(legacy_row.contains("--context legacy"), "{table}");
    assert!(
        table.contains("\nContext legacy\n==============\ncluster\n"),
        "{table}"
    );
    let modern_row = table.lines().find(|l| l.starts_with("modern ")).unwrap();
    assert!(modern_row.contains(" warn "), "{table}");
    assert!(
        stderr(&out).contains("1 of 2 contexts did not pass"),
        "{}",
        stderr(&out)
    );
    let out = fleet_status(&kubeconfig, ns, &[&pair[..], &["-o", "json"]].concat());
    assert_exit(&out, CHECKS_FAILED);
    let fleet = document(&out);
    assert_eq!(fleet["success"], false);
    assert_eq!(fleet["contexts"][0]["context"], "modern");
    assert_eq!(fleet["contexts"][0]["success"], true);
    assert!(
        fleet["contexts"][0]["serverVersion"]
            .as_str()
            .unwrap()
            .starts_with("v1.")
    );
    let broken = &fleet["contexts"][1];
    assert_eq!(broken["context"], "legacy");
    assert_eq!(status_check(broken, "VirtualService")["result"], "fail");
    // The same report a run of that context alone prints.
    let (code, alone) =
        json_status(support::plugin_as(&kubeconfig, ns).args(["--context", "legacy", "status"]));
    assert_eq!(code, CHECKS_FAILED);
    assert_eq!(broken["categories"], alone["categories"], "{alone:#}");
    assert_eq!(broken["summary"], alone["summary"]);

    // Four contexts: a user refused everything is a failed report, a server
    // that never answers one error row after its deadline, not a wait that
    // holds the others.
    let saved = scratch_dir("fleet-save").join("fleet.json");
    let started = std::time::Instant::now();
    let out = run(support::plugin_as(&kubeconfig, ns)
        .args([
            "status",
            "--all-contexts",
            "--request-timeout",
            "3s",
            "-o",
            "json",
            "--save",
        ])
        .arg(&saved));
    let elapsed = started.elapsed();
    assert_exit(&out, UNREACHABLE);
    assert!(
        elapsed < std::time::Duration::from_secs(20),
        "took {elapsed:?}"
    );
    let live = document(&out);
    let by_name = |name: &str| -> serde_json::Value {
        live["contexts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["context"] == name)
            .unwrap_or_else(|| panic!("no context {name}: {live:#}"))
            .clone()
    };
    assert_eq!(live["summary"]["contexts"], 4);
    assert_eq!(by_name("modern")["verdict"], "warn");
    assert_eq!(by_name("legacy")["verdict"], "fail");
    let refused = by_name("nobody");
    assert_eq!(refused["verdict"], "fail");
    assert_eq!(status_check(&refused, "read access")["result"], "fail");
    assert!(
        status_check(&refused, "permissions")["message"]
            .as_str()
            .unwrap()
            .starts_with("missing: "),
        "{refused:#}"
    );
    let silent_row = by_name("silent");
    assert_eq!(silent_row["verdict"], "error");
    assert_eq!(silent_row["error"]["exitCode"], UNREACHABLE);
    assert!(
        silent_row["error"]["message"]
            .as_str()
            .unwrap()
            .contains("3s"),
        "{silent_row:#}"
    );
    drop(silent);

    // The saved file gives the same document and exit code, and holds no
    // secret: not the API key, no private key, no kubeconfig credential.
    let out = run(plugin()
        .args(["status", "-o", "json", "--from"])
        .arg(&saved));
    assert_exit(&out, UNREACHABLE);
    assert_eq!(document(&out), live);
    let text = std::fs::read_to_string(&saved).unwrap();
    let mut secrets = vec![
        "chain-test-key".to_owned(),
        "Y2hhaW4tdGVzdC1rZXk".to_owned(),
        "PRIVATE KEY".to_owned(),
        "fleet-sentinel-token-4711".to_owned(),
        private_key(modern, &ns.0, "kms-api-tls"),
        private_key(modern, &ns.1, "istio-ingressgateway-certs"),
        private_key(legacy, &ns.0, "kms-api-tls"),
    ];
    for config in [&modern.kubeconfig, &nobody] {
        let config: serde_json::Value =
            serde_saphyr::from_str(&std::fs::read_to_string(config).unwrap()).unwrap();
        let key_file = config["users"][0]["user"]["client-key"].as_str().unwrap();
        let key = std::fs::read_to_string(key_file).unwrap();
        secrets.push(key.lines().nth(1).unwrap().to_owned());
        secrets.push(key_file.to_owned());
    }
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "{secret} is in the saved snapshot"
        );
    }
    // The certificates the checks need are kept.
    assert!(text.contains(&modern.jsonpath(&ns.0, "secret/kms-api-tls", "{.data.tls\\.crt}")));

    // One context from the file prints as that context alone did.
    let out = run(plugin()
        .args(["status", "--context", "legacy", "--from"])
        .arg(&saved));
    assert_exit(&out, CHECKS_FAILED);
    assert!(stdout(&out).contains("Checked as of "), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("× VirtualService: "),
        "{}",
        stdout(&out)
    );
}

#[test]
fn one_context_saved_and_checked_from_the_file_gives_the_same_report() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "status-save");
    // A sentinel key, set without restarting the token adapter.
    let sentinel = "snapshot-sentinel-key-0815";
    let out = run_with_stdin(
        plugin_in(test, &ns).args(["set-apikey", "--from-stdin", "--no-restart"]),
        sentinel.as_bytes(),
    );
    assert_exit(&out, 0);
    let saved = scratch_dir("status-save").join("snapshot.json");
    let (code, live) = json_status(plugin_in(test, &ns).arg("status").arg("--save").arg(&saved));
    assert_eq!(code, CHECKS_FAILED);
    assert_eq!(status_check(&live, "API key secret")["result"], "pass");
    let (code, mut from_file) = json_status(plugin().arg("status").arg("--from").arg(&saved));
    assert_eq!(code, CHECKS_FAILED);
    let checked_at = from_file
        .as_object_mut()
        .unwrap()
        .remove("checkedAt")
        .unwrap();
    assert_eq!(from_file, live);
    // The report says which time its certificate checks compared against:
    // when the snapshot was taken.
    let text = std::fs::read_to_string(&saved).unwrap();
    let document: serde_json::Value = serde_json::from_str(&text).unwrap();
    let now = document["contexts"][0]["result"]["read"]["complete"]["now"]
        .as_i64()
        .unwrap();
    assert_eq!(
        checked_at,
        jiff::Timestamp::from_second(now).unwrap().to_string()
    );
    let encoded = test.jsonpath(&ns.1, "secret/sts-apikey", "{.data.apikey}");
    let tls_key = private_key(test, &ns.0, "kms-api-tls");
    for secret in [sentinel, encoded.as_str(), tls_key.as_str(), "PRIVATE KEY"] {
        assert!(!text.contains(secret), "{secret} is in the saved snapshot");
    }

    // A file that is not a snapshot, a damaged one and one of another
    // format are refused with the reason and a documented exit code.
    let dir = scratch_dir("status-bad-snapshots");
    for (name, content, reason) in [
        (
            "kubeconfig",
            std::fs::read_to_string(&test.kubeconfig).unwrap(),
            "it is not JSON",
        ),
        (
            "cut.json",
            text[..text.len() / 2].to_owned(),
            "it is cut short or damaged",
        ),
        (
            "future.json",
            text.replace("\"formatVersion\": 1", "\"formatVersion\": 99"),
            "it is of format 99",
        ),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        let out = run(plugin().arg("status").arg("--from").arg(&path));
        assert_exit(&out, USAGE);
        let err = stderr(&out);
        assert!(
            err.contains("is not a status snapshot this version can read: "),
            "{err}"
        );
        assert!(err.contains(reason), "{reason}: {err}");
        assert!(err.contains("hint: save a new snapshot"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(stdout(&out).is_empty());
    }
}

#[test]
fn several_contexts_are_for_status_only() {
    let out = run(plugin().args(["inject", "--context", "a", "--context", "b"]));
    assert_exit(&out, USAGE);
    assert!(
        stderr(&out).contains("only `status` checks several contexts"),
        "{}",
        stderr(&out)
    );
    let out = run(plugin().args(["status", "--all-contexts", "--context", "a"]));
    assert_exit(&out, USAGE);
    assert!(
        stderr(&out).contains("leave out --context"),
        "{}",
        stderr(&out)
    );
    let path = kubeconfig_for_port(closed_port());
    let out = run(plugin().arg("--kubeconfig").arg(&path).args([
        "status",
        "--context",
        "x",
        "--context",
        "typo",
    ]));
    assert_exit(&out, USAGE);
    assert!(stderr(&out).contains("typo"), "{}", stderr(&out));
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
    // Where istiod validates Istio objects (the modern cluster) it refuses
    // such a VirtualService; the legacy cluster, like any cluster without
    // Istio's validation, takes it.
    let test = cluster("legacy");
    let ns = fresh_namespaces(test, "status-no-route");
    let out = run(plugin_in(test, &ns).args(["expose", "--host", &host_of(&ns)]));
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
    let out = run(plugin_in(test, &ns).args(["expose", "--host", &host_of(&ns)]));
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
        // As a word: "31 permissions" holds "1 permissions".
        assert!(!text.contains(&format!(" {wrong}")), "{wrong}: {text}");
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
    let out = run(plugin_in(test, &ns).args(["expose", "--host", &host_of(&ns)]));
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
        expose
            .windows(2)
            .any(|w| w[0] == "--host" && w[1] == host_of(&ns)),
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
        .args(["expose", "--host", &host_of(&ns)]));
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
