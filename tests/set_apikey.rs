//! `set-apikey` against the real test cluster: the key lands as its exact
//! bytes, the token adapter is restarted and Ready, re-runs change nothing,
//! bad input changes nothing, and the key never appears in any output.

mod support;

use base64::Engine;
use support::{
    TestCluster, assert_exit, cluster, fresh_namespaces, plugin_in, run, run_with_stdin,
    scratch_dir, stderr, stdout,
};

const USAGE: i32 = 2;
const MISSING: i32 = 6;

fn stored_key(test: &TestCluster, istio: &str) -> Vec<u8> {
    let encoded = test.jsonpath(istio, "secret/sts-apikey", "{.data.apikey}");
    base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .unwrap()
}

fn adapter_generation(test: &TestCluster, istio: &str) -> String {
    test.jsonpath(istio, "deployment/tokenadapter", "{.metadata.generation}")
}

/// The key, its base64 and its URL-safe base64 appear nowhere in the output.
#[track_caller]
fn assert_not_leaked(output: &std::process::Output, key: &str) {
    let forms = [
        key.to_owned(),
        base64::engine::general_purpose::STANDARD.encode(key),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key),
    ];
    for form in forms {
        assert!(!stdout(output).contains(&form), "stdout leaks {form}");
        assert!(!stderr(output).contains(&form), "stderr leaks {form}");
    }
}

#[test]
fn stores_exact_bytes_and_restarts_the_token_adapter() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "apikey-store");
    let key = "sentinel-Kx9Qz7-set-apikey";
    let before = adapter_generation(test, &ns.1);

    let out = run_with_stdin(
        plugin_in(test, &ns).args(["set-apikey", "--from-stdin"]),
        format!("{key}\n").as_bytes(),
    );
    assert_exit(&out, 0);
    assert_not_leaked(&out, key);
    assert_eq!(
        stored_key(test, &ns.1),
        key.as_bytes(),
        "one trailing newline trimmed, no double encoding"
    );
    let err = stderr(&out);
    assert!(
        err.contains("secret/sts-apikey configured (key sha256:"),
        "{err}"
    );
    assert!(
        err.contains("deployment/tokenadapter restarted, 1 ready"),
        "{err}"
    );

    // Rolled like `kubectl rollout restart`: same Deployment, new template.
    assert_ne!(adapter_generation(test, &ns.1), before);
    let restarted = test.jsonpath(
        &ns.1,
        "deployment/tokenadapter",
        "{.spec.template.metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt}",
    );
    assert!(!restarted.is_empty());
    let ready = test.jsonpath(
        &ns.1,
        "deployment/tokenadapter",
        "{.status.readyReplicas}/{.status.updatedReplicas}",
    );
    assert_eq!(ready, "1/1");
}

#[test]
fn unchanged_key_writes_and_restarts_nothing_unless_forced() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "apikey-same");
    let key = "sentinel-unchanged-key";
    let dir = scratch_dir("apikey-file");
    let file = dir.join("key");
    std::fs::write(&file, format!("{key}\n")).unwrap();

    let out = run(plugin_in(test, &ns)
        .args(["set-apikey", "--from-file"])
        .arg(&file));
    assert_exit(&out, 0);
    let version = test.jsonpath(&ns.1, "secret/sts-apikey", "{.metadata.resourceVersion}");
    let generation = adapter_generation(test, &ns.1);

    let out = run(plugin_in(test, &ns)
        .args(["set-apikey", "--from-env", "KMS_TEST_KEY"])
        .env("KMS_TEST_KEY", key));
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("secret/sts-apikey unchanged"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("restarted"));
    assert_eq!(
        test.jsonpath(&ns.1, "secret/sts-apikey", "{.metadata.resourceVersion}"),
        version
    );
    assert_eq!(adapter_generation(test, &ns.1), generation);

    let out = run(plugin_in(test, &ns)
        .args(["set-apikey", "--restart", "--from-env", "KMS_TEST_KEY"])
        .env("KMS_TEST_KEY", key));
    assert_exit(&out, 0);
    assert!(stderr(&out).contains("deployment/tokenadapter restarted"));
    assert_ne!(adapter_generation(test, &ns.1), generation);
    assert_eq!(
        test.jsonpath(&ns.1, "secret/sts-apikey", "{.metadata.resourceVersion}"),
        version
    );
}

#[test]
fn no_restart_says_a_restart_is_still_needed() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "apikey-norestart");
    let generation = adapter_generation(test, &ns.1);
    let out = run_with_stdin(
        plugin_in(test, &ns).args(["set-apikey", "--from-stdin", "--no-restart"]),
        b"sentinel-norestart",
    );
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("not restarted: it keeps the old key until restarted"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stored_key(test, &ns.1), b"sentinel-norestart");
    assert_eq!(adapter_generation(test, &ns.1), generation);
}

#[test]
fn dry_runs_change_nothing_and_print_a_redacted_secret() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "apikey-dry");
    let key = "sentinel-dry-run-key";
    for mode in ["--dry-run=client", "--dry-run=server"] {
        for format in ["yaml", "json"] {
            let out = run_with_stdin(
                plugin_in(test, &ns).args(["set-apikey", "--from-stdin", mode, "-o", format]),
                key.as_bytes(),
            );
            assert_exit(&out, 0);
            assert_not_leaked(&out, key);
            assert!(
                stdout(&out).contains("REDACTED sha256:"),
                "{}",
                stdout(&out)
            );
            assert!(stderr(&out).contains("dry run"), "{}", stderr(&out));
        }
    }
    assert_eq!(stored_key(test, &ns.1), b"");
    assert_eq!(adapter_generation(test, &ns.1), "1");
}

#[test]
fn bad_keys_are_refused_before_anything_is_written() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "apikey-bad");
    let cases: [(&[u8], &str); 5] = [
        (b"", "the key is empty"),
        (b"\n", "the key is empty"),
        (b"two words", "the key contains whitespace"),
        (b"bell\x07key", "the key contains control characters"),
        (b"bin\xff\xfekey", "the key is not UTF-8 text"),
    ];
    for (input, message) in cases {
        let out = run_with_stdin(
            plugin_in(test, &ns).args(["set-apikey", "--from-stdin"]),
            input,
        );
        assert_exit(&out, USAGE);
        assert!(
            stderr(&out).contains(message),
            "{input:?}: {}",
            stderr(&out)
        );
    }
    let out =
        run(plugin_in(test, &ns).args(["set-apikey", "--from-env", "KMS_TEST_UNSET_VARIABLE"]));
    assert_exit(&out, USAGE);
    assert!(stderr(&out).contains("environment variable KMS_TEST_UNSET_VARIABLE is not set"));
    let out = run(plugin_in(test, &ns).args(["set-apikey"]));
    assert_exit(&out, USAGE);
    assert!(
        stderr(&out).contains("no API key given"),
        "{}",
        stderr(&out)
    );
    let out = run(plugin_in(test, &ns).args(["set-apikey", "--from-stdin", "--from-env", "X"]));
    assert_exit(&out, USAGE);
    let out =
        run(plugin_in(test, &ns).args(["set-apikey", "--from-env", "HOME", "--timeout", "0"]));
    assert_exit(&out, USAGE);
    assert!(stderr(&out).contains("--timeout"));

    assert_eq!(stored_key(test, &ns.1), b"");
    assert_eq!(adapter_generation(test, &ns.1), "1");
}

#[test]
fn missing_secret_or_deployment_is_a_missing_prerequisite() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "apikey-missing");
    let out = run_with_stdin(
        plugin_in(test, &ns).args(["set-apikey", "--from-stdin", "--secret", "absent"]),
        b"k1",
    );
    assert_exit(&out, MISSING);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("Secret {}/absent does not exist", ns.1)),
        "{err}"
    );
    assert!(err.contains("--create"), "{err}");

    // The Deployment is checked before the Secret is written.
    let out = run_with_stdin(
        plugin_in(test, &ns).args(["set-apikey", "--from-stdin", "--token-adapter", "nope"]),
        b"k2",
    );
    assert_exit(&out, MISSING);
    assert!(stderr(&out).contains(&format!("Deployment {}/nope does not exist", ns.1)));
    assert_eq!(stored_key(test, &ns.1), b"");

    let out = run_with_stdin(
        plugin_in(test, &ns).args([
            "set-apikey",
            "--from-stdin",
            "--secret",
            "fresh",
            "--create",
            "--no-restart",
        ]),
        b"created-key",
    );
    assert_exit(&out, 0);
    let encoded = test.jsonpath(&ns.1, "secret/fresh", "{.data.apikey}");
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .unwrap(),
        b"created-key"
    );
}

#[test]
fn legacy_profile_stores_and_restarts_too() {
    let test = cluster("legacy");
    let ns = fresh_namespaces(test, "apikey-legacy");
    let key = "sentinel-legacy-key";
    let out = run_with_stdin(
        plugin_in(test, &ns).args(["set-apikey", "--from-stdin"]),
        key.as_bytes(),
    );
    assert_exit(&out, 0);
    assert_not_leaked(&out, key);
    assert_eq!(stored_key(test, &ns.1), key.as_bytes());
    assert!(stderr(&out).contains("deployment/tokenadapter restarted, 1 ready"));
}

#[test]
fn the_key_is_never_on_the_command_line() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "apikey-cmdline");
    let key = "sentinel-cmdline-Zr8w";
    let mut child = plugin_in(test, &ns)
        .args(["set-apikey", "--from-env", "KMS_CMDLINE_KEY", "--restart"])
        .env("KMS_CMDLINE_KEY", key)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let cmdline_path = format!("/proc/{}/cmdline", child.id());
    let mut samples = 0;
    while child.try_wait().unwrap().is_none() {
        if let Ok(cmdline) = std::fs::read(&cmdline_path) {
            samples += 1;
            let text = String::from_utf8_lossy(&cmdline);
            assert!(!text.contains(key), "{text}");
            assert!(!text.contains(&base64::engine::general_purpose::STANDARD.encode(key)));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        samples > 0,
        "the command line was read while the process ran"
    );
    let out = child.wait_with_output().unwrap();
    assert_exit(&out, 0);
    assert_not_leaked(&out, key);
    assert_eq!(stored_key(test, &ns.1), key.as_bytes());
}

/// Response codes of the plugin's writes to the Secret, from the audit log.
fn plugin_secret_write_codes(test: &TestCluster, offset: u64, istio: &str) -> Vec<i64> {
    test.audit_events_since(offset)
        .iter()
        .filter(|event| event["stage"] == "ResponseComplete")
        .filter(|event| event["objectRef"]["namespace"] == istio)
        .filter(|event| event["objectRef"]["name"] == "sts-apikey")
        .filter(|e| support::is_from_plugin(e))
        .filter(|event| support::is_mutating(event))
        .map(|event| event["responseStatus"]["code"].as_i64().unwrap_or_default())
        .collect()
}

/// Another client's change; `{n}` makes each of its writes a real change.
const OTHER_WRITERS_CHANGE: &str = r#"{"metadata":{"annotations":{"rotated-by":"other-operator","write":"{n}"}},"data":{"other":"b3RoZXI="}}"#;

/// Runs `set-apikey --from-stdin` with `args` while another client changes
/// the Secret right after each of the plugin's first `times` reads of it (0:
/// every read). Returns the output and the response codes of the plugin's
/// writes to the Secret.
fn set_apikey_racing(
    test: &TestCluster,
    ns: &(String, String),
    key: &str,
    times: &str,
    args: &[&str],
) -> (std::process::Output, Vec<i64>) {
    let proxy = test.interpose(
        &format!("GET ^/api/v1/namespaces/{}/secrets/sts-apikey$", ns.1),
        &["--merge-patch", OTHER_WRITERS_CHANGE, "--times", times],
    );
    let offset = test.audit_offset();
    let out = run_with_stdin(
        support::plugin_as(&proxy.kubeconfig, ns)
            .args(["set-apikey", "--from-stdin"])
            .args(args),
        key.as_bytes(),
    );
    drop(proxy);
    assert_not_leaked(&out, key);
    assert_eq!(
        test.jsonpath(
            &ns.1,
            "secret/sts-apikey",
            "{.metadata.annotations.rotated-by}"
        ),
        "other-operator",
        "the other client's change is kept"
    );
    assert_eq!(
        test.jsonpath(&ns.1, "secret/sts-apikey", "{.data.other}"),
        "b3RoZXI="
    );
    (out, plugin_secret_write_codes(test, offset, &ns.1))
}

#[test]
fn another_writer_between_read_and_write_is_retried_and_its_change_kept() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "apikey-race");
    let key = "sentinel-race-Tq2m";
    let (out, write_codes) = set_apikey_racing(test, &ns, key, "1", &["--no-restart"]);
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("was changed by another client since it was read; reading it again"),
        "{}",
        stderr(&out)
    );
    // The first write carried the stale resourceVersion and was refused; the
    // second was made on what the other client left.
    assert_eq!(write_codes, [409, 200]);
    assert_eq!(stored_key(test, &ns.1), key.as_bytes());
}

#[test]
fn a_writer_that_never_stops_is_reported_and_nothing_is_overwritten() {
    const CONFLICT: i32 = 7;
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "apikey-race-lost");
    let (out, write_codes) = set_apikey_racing(test, &ns, "sentinel-race-lost-Wd4p", "0", &[]);
    assert_exit(&out, CONFLICT);
    assert!(
        stderr(&out).contains(&format!(
            "Secret {}/sts-apikey was changed by another client while being updated (attempts: 5); nothing was overwritten",
            ns.1
        )),
        "{}",
        stderr(&out)
    );
    assert_eq!(write_codes, [409; 5]);
    assert_eq!(stored_key(test, &ns.1), b"");
    assert_eq!(adapter_generation(test, &ns.1), "1");
}
