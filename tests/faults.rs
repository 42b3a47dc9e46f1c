//! Faults on the real test cluster: the API server stops answering in the
//! middle of `inject` (during its rollout wait), before `expose` writes,
//! between two of `expose`'s or `uninstall`'s writes (frozen by
//! `tests/cluster/interpose` right after the first), and a write whose answer
//! never reaches the plugin (`expose`, `set-apikey`).
//! The plugin fails within its request timeout saying which writes were
//! done, which were sent without an answer and which were not sent; nothing
//! is left deleted, and once the server is back a re-run converges. A write
//! sent to a frozen server may be carried out when it resumes, or not: the
//! tests assert what holds either way. These tests freeze the shared API
//! server, so they run one at a time in their own test binary.

mod support;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use support::{
    TestCluster, assert_exit, cluster, fresh_namespaces, host_of, istioctl_binary, plugin_as,
    plugin_in, run, run_with_stdin, scratch_dir, stderr,
};

const UNREACHABLE: i32 = 3;
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn inject_cut_off_during_its_rollout_converges_when_run_again() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "fault-inject");
    let uid = test.jsonpath(&ns.0, "deployment/key-management-api", "{.metadata.uid}");
    let quota =
        run(test
            .kubectl()
            .args(["create", "quota", "no-surge", "--hard=pods=2", "-n", &ns.0]));
    assert_exit(&quota, 0);
    let backups = scratch_dir("fault-inject-backups");
    let child = plugin_in(test, &ns)
        .args([
            "--request-timeout",
            "2s",
            "inject",
            "--timeout",
            "120s",
            "--no-rollback",
        ])
        .arg("--istioctl")
        .arg(istioctl_binary())
        .arg("--backup-dir")
        .arg(&backups)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !test
        .jsonpath(
            &ns.0,
            "deployment/key-management-api",
            "{.spec.template.spec.containers[*].name}",
        )
        .contains("istio-proxy")
    {
        assert!(
            Instant::now() < deadline,
            "inject never updated the deployment"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let paused = test.pause_api_server();
    let stopped = Instant::now();
    let out = child.wait_with_output().unwrap();
    let took = stopped.elapsed();
    drop(paused);
    assert_exit(&out, UNREACHABLE);
    assert!(
        took < Duration::from_secs(6),
        "failed after {took:?}, request timeout 2s"
    );
    let err = stderr(&out);
    assert!(err.contains("did not answer within 2s"), "{err}");
    assert!(
        err.contains("original deployment/key-management-api saved to"),
        "{err}"
    );

    // Back up: nothing was deleted, and a re-run finishes the job.
    assert_exit(
        &run(test
            .kubectl()
            .args(["delete", "quota", "no-surge", "-n", &ns.0])),
        0,
    );
    let out = run(plugin_in(test, &ns)
        .args(["inject", "--timeout", "60s"])
        .arg("--istioctl")
        .arg(istioctl_binary())
        .arg("--backup-dir")
        .arg(&backups));
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("already carries the Istio sidecar: 2 pods run it"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        test.jsonpath(&ns.0, "deployment/key-management-api", "{.metadata.uid}"),
        uid
    );
}

#[test]
fn expose_against_a_silent_server_writes_nothing_and_a_rerun_completes() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "fault-expose");
    let out = {
        let _paused = test.pause_api_server();
        let started = Instant::now();
        let out = run(plugin_in(test, &ns).args([
            "--request-timeout",
            "2s",
            "expose",
            "--host",
            &host_of(&ns),
        ]));
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "took {:?}",
            started.elapsed()
        );
        out
    };
    assert_exit(&out, UNREACHABLE);
    assert!(
        stderr(&out).contains("did not answer within 2s"),
        "{}",
        stderr(&out)
    );
    assert_eq!(test.object_names(&ns.0, "gateways.networking.istio.io"), "");

    let out = run(plugin_in(test, &ns).args(["expose", "--host", &host_of(&ns)]));
    assert_exit(&out, 0);
    assert_eq!(
        stderr(&out).matches(" created").count(),
        5,
        "{}",
        stderr(&out)
    );
}

/// The objects `expose --host IP` writes, in the order it writes them, as
/// `kubectl get` and the plugin name them, and whether each lives in the
/// Istio namespace (else in KMS's).
const EXPOSED: [(&str, bool); 5] = [
    (
        "certificate.cert-manager.io/istio-ingressgateway-certs",
        true,
    ),
    ("secret/istio-ingressgateway-ca-certs", true),
    ("gateway.networking.istio.io/kmsgateway", false),
    ("virtualservice.networking.istio.io/kmsvservice", false),
    ("destinationrule.networking.istio.io/kms-api-tls", false),
];

/// The UID of `object`, or `None` when it does not exist.
fn uid(test: &TestCluster, namespace: &str, object: &str) -> Option<String> {
    let out = run(test.kubectl().args([
        "get",
        object,
        "-n",
        namespace,
        "--ignore-not-found",
        "-o",
        "jsonpath={.metadata.uid}",
    ]));
    assert_exit(&out, 0);
    Some(support::stdout(&out)).filter(|uid| !uid.is_empty())
}

/// The UIDs of the exposed objects in `ns`, in `EXPOSED`'s order.
fn exposed_uids(test: &TestCluster, ns: &(String, String)) -> Vec<Option<String>> {
    EXPOSED
        .iter()
        .map(|(object, in_istio)| uid(test, if *in_istio { &ns.1 } else { &ns.0 }, object))
        .collect()
}

/// The writes a cut-off's message lists as done, not confirmed (sent, no
/// answer) or not sent; empty for "none".
fn listed(message: &str, label: &str) -> Vec<String> {
    let line = message
        .lines()
        .find(|line| line.contains("stopped part-way; "))
        .unwrap_or_else(|| panic!("no cut-off report in: {message}"));
    let heading = match label {
        "done" => "stopped part-way; done: ",
        "not confirmed" => {
            "; not confirmed (sent, no answer: may or may not have been carried out): "
        }
        "not sent" => "; not sent: ",
        other => panic!("no list is called {other}"),
    };
    let start = line
        .find(heading)
        .unwrap_or_else(|| panic!("no {label} list in: {line}"));
    let list = line[start + heading.len()..]
        .split("; ")
        .next()
        .unwrap_or_default();
    if list == "none" {
        Vec::new()
    } else {
        list.split(", ").map(str::to_owned).collect()
    }
}

/// Runs `expose` again once the server is back and checks that it
/// converged: every object exists once; each that existed before (`before`)
/// is the same object, left unchanged; each that did not was created now
/// (or was carried out by the server in the meantime, and left unchanged).
fn rerun_converges(test: &TestCluster, ns: &(String, String), before: &[Option<String>]) {
    let out = run(plugin_in(test, ns).args(["expose", "--host", &host_of(ns)]));
    assert_exit(&out, 0);
    let err = stderr(&out);
    let after = exposed_uids(test, ns);
    for (((object, _), before), after) in EXPOSED.iter().zip(before).zip(&after) {
        let after = after
            .as_ref()
            .unwrap_or_else(|| panic!("{object} missing after the re-run: {err}"));
        match before {
            Some(before) => {
                assert_eq!(before, after, "{object} was replaced: {err}");
                assert!(
                    err.contains(&format!("{object} unchanged")),
                    "{object}: {err}"
                );
            }
            None => assert!(
                err.contains(&format!("{object} created"))
                    || err.contains(&format!("{object} unchanged")),
                "{object}: {err}"
            ),
        }
    }
}

/// Runs the plugin with `args` (and `stdin`) through
/// `tests/cluster/interpose` acting with `action` after the request `after`,
/// with a 2 s request timeout, and checks that it ended as a server that
/// stopped answering does, within that timeout. Returns its stderr.
fn cut_off(
    test: &TestCluster,
    ns: &(String, String),
    (after, action): (&str, &str),
    args: &[&str],
    stdin: &[u8],
) -> String {
    let proxy = test.interpose(after, &[action]);
    let started = Instant::now();
    let out = run_with_stdin(
        plugin_as(&proxy.kubeconfig, ns)
            .args(["--request-timeout", "2s"])
            .args(args),
        stdin,
    );
    let took = started.elapsed();
    drop(proxy);
    assert_exit(&out, UNREACHABLE);
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let err = stderr(&out);
    assert!(err.contains("did not answer within 2s"), "{err}");
    err
}

#[test]
fn expose_cut_off_between_objects_says_what_was_done_and_a_rerun_completes() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "fault-expose-between");
    // The API server is stopped right after it answered the first write.
    let err = cut_off(
        test,
        &ns,
        ("PATCH ^/apis/cert-manager\\.io/", "--freeze"),
        &["expose", "--host", &host_of(&ns)],
        b"",
    );
    let names: Vec<String> = EXPOSED.iter().map(|(name, _)| name.to_string()).collect();
    // The first write was answered; the other four were sent at once to the
    // frozen server, which may carry each out once it resumes, or not.
    assert_eq!(listed(&err, "done"), names[..1], "{err}");
    assert_eq!(listed(&err, "not confirmed"), names[1..], "{err}");
    assert_eq!(listed(&err, "not sent"), Vec::<String>::new(), "{err}");
    assert!(
        err.contains("may or may not have been carried out"),
        "{err}"
    );
    assert!(err.contains("did not answer within 2s"), "{err}");
    assert!(
        err.contains("run the same command again to finish")
            && err.contains("`kubectl kms-sts status"),
        "{err}"
    );
    let before = exposed_uids(test, &ns);
    assert!(before[0].is_some(), "the confirmed certificate exists");
    rerun_converges(test, &ns, &before);
}

#[test]
fn expose_write_without_an_answer_is_not_confirmed_and_the_rest_not_sent() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "fault-expose-unanswered");
    // The API server carries out the first write; its answer never comes.
    let err = cut_off(
        test,
        &ns,
        ("PATCH ^/apis/cert-manager\\.io/", "--hold"),
        &["expose", "--host", &host_of(&ns)],
        b"",
    );
    let names: Vec<String> = EXPOSED.iter().map(|(name, _)| name.to_string()).collect();
    assert_eq!(listed(&err, "done"), Vec::<String>::new(), "{err}");
    assert_eq!(listed(&err, "not confirmed"), names[..1], "{err}");
    assert_eq!(listed(&err, "not sent"), names[1..], "{err}");
    let before = exposed_uids(test, &ns);
    assert!(
        before[0].is_some(),
        "the server carried the unanswered write out"
    );
    assert!(
        before[1..].iter().all(Option::is_none),
        "a write not sent exists: {before:?}"
    );
    rerun_converges(test, &ns, &before);
}

#[test]
fn uninstall_cut_off_between_deletes_says_what_was_done_and_a_rerun_completes() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "fault-uninstall");
    assert_exit(
        &run(plugin_in(test, &ns).args(["expose", "--host", &host_of(&ns)])),
        0,
    );
    let exposed = exposed_uids(test, &ns);
    assert!(exposed.iter().all(Option::is_some), "{exposed:?}");
    // The API server is stopped right after it answered the first delete.
    let err = cut_off(
        test,
        &ns,
        ("DELETE ^/api", "--freeze"),
        &["uninstall", "--yes"],
        b"",
    );
    let (done, unconfirmed, not_sent) = (
        listed(&err, "done"),
        listed(&err, "not confirmed"),
        listed(&err, "not sent"),
    );
    assert_eq!((done.len(), unconfirmed.len()), (1, 1), "{err}");
    // Each listed as `delete OBJECT in NAMESPACE`.
    let object = |write: &String| {
        let (object, namespace) = write
            .strip_prefix("delete ")
            .and_then(|deleted| deleted.split_once(" in "))
            .unwrap_or_else(|| panic!("not a delete: {write}"));
        (object.to_owned(), namespace.to_owned())
    };
    let mut deleted: Vec<String> = [&done, &unconfirmed, &not_sent]
        .into_iter()
        .flatten()
        .map(|write| object(write).0)
        .collect();
    deleted.sort();
    let mut expected: Vec<String> = EXPOSED.iter().map(|(name, _)| name.to_string()).collect();
    expected.sort();
    assert_eq!(deleted, expected, "{err}");
    for write in &done {
        let (object, namespace) = object(write);
        assert_eq!(uid(test, &namespace, &object), None, "{write}");
    }
    for write in &not_sent {
        let (object, namespace) = object(write);
        assert!(uid(test, &namespace, &object).is_some(), "{write}");
    }

    let out = run(plugin_in(test, &ns).args(["uninstall", "--yes"]));
    assert_exit(&out, 0);
    assert!(
        exposed_uids(test, &ns).iter().all(Option::is_none),
        "{}",
        stderr(&out)
    );
}

#[test]
fn set_apikey_store_without_an_answer_hints_the_restart_a_rerun_needs() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "fault-apikey");
    let key = "sentinel-unanswered-Hq7v";
    let adapter_restarted = |test: &TestCluster| {
        test.jsonpath(
            &ns.1,
            "deployment/tokenadapter",
            "{.spec.template.metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt}",
        )
    };
    let restarted_before = adapter_restarted(test);
    let err = cut_off(
        test,
        &ns,
        (
            &format!("PATCH ^/api/v1/namespaces/{}/secrets/sts-apikey$", ns.1),
            "--hold",
        ),
        &["set-apikey", "--from-stdin"],
        key.as_bytes(),
    );
    assert!(!err.contains(key), "the key leaked: {err}");
    assert_eq!(
        listed(&err, "not confirmed"),
        ["store the key in secret/sts-apikey"],
        "{err}"
    );
    assert_eq!(
        listed(&err, "not sent"),
        ["restart deployment/tokenadapter"],
        "{err}"
    );
    assert!(
        err.contains("run the same command again with --restart to finish"),
        "{err}"
    );
    assert_eq!(
        adapter_restarted(test),
        restarted_before,
        "nothing restarted the adapter"
    );

    // The hint, followed: the key (stored already) is left, the adapter restarted.
    let out = run_with_stdin(
        plugin_in(test, &ns).args(["set-apikey", "--from-stdin", "--restart"]),
        key.as_bytes(),
    );
    assert_exit(&out, 0);
    let err = stderr(&out);
    assert!(err.contains("secret/sts-apikey unchanged"), "{err}");
    assert!(err.contains("deployment/tokenadapter restarted"), "{err}");
    assert_ne!(adapter_restarted(test), restarted_before);
}
