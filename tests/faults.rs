//! Faults on the real test cluster: the API server stops answering in the
//! middle of `inject` (during its rollout wait), before `expose` writes, and
//! between two of `expose`'s objects (frozen by `tests/cluster/interpose`
//! right after the first write).
//! The plugin fails within its request timeout saying what happened, nothing
//! is left deleted, and once the server is back a re-run converges. These
//! tests freeze the shared API server, so they run one at a time in their
//! own test binary.

mod support;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use support::{
    assert_exit, cluster, fresh_namespaces, istioctl_binary, plugin_as, plugin_in, run,
    scratch_dir, stderr,
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
            "10.7.7.7",
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

    let out = run(plugin_in(test, &ns).args(["expose", "--host", "10.7.7.7"]));
    assert_exit(&out, 0);
    assert_eq!(
        stderr(&out).matches(" created").count(),
        5,
        "{}",
        stderr(&out)
    );
}

#[test]
fn expose_cut_off_between_objects_says_what_was_done_and_a_rerun_completes() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "fault-expose-between");
    // The API server is stopped right after it answered the first write.
    let proxy = test.interpose("PATCH ^/apis/cert-manager\\.io/", &["--freeze"]);
    let started = Instant::now();
    let out = run(plugin_as(&proxy.kubeconfig, &ns).args([
        "--request-timeout",
        "2s",
        "expose",
        "--host",
        "10.7.7.7",
    ]));
    let took = started.elapsed();
    drop(proxy);
    assert_exit(&out, UNREACHABLE);
    assert!(took < Duration::from_secs(6), "took {took:?}");
    let err = stderr(&out);
    assert!(
        err.contains(
            "stopped part-way; done: certificate.cert-manager.io/istio-ingressgateway-certs; \
             not done: secret/istio-ingressgateway-ca-certs, gateway.networking.istio.io/kmsgateway, \
             virtualservice.networking.istio.io/kmsvservice, \
             destinationrule.networking.istio.io/kms-api-tls"
        ),
        "{err}"
    );
    assert!(err.contains("did not answer within 2s"), "{err}");
    assert!(
        err.contains("run the same command again to finish"),
        "{err}"
    );
    let certificate_uid = test.jsonpath(
        &ns.1,
        "certificates.cert-manager.io/istio-ingressgateway-certs",
        "{.metadata.uid}",
    );
    assert!(!certificate_uid.is_empty());

    let out = run(plugin_in(test, &ns).args(["expose", "--host", "10.7.7.7"]));
    assert_exit(&out, 0);
    let err = stderr(&out);
    assert!(
        err.contains("certificate.cert-manager.io/istio-ingressgateway-certs unchanged"),
        "{err}"
    );
    assert_eq!(err.matches(" created").count(), 4, "{err}");
    assert_eq!(
        test.jsonpath(
            &ns.1,
            "certificates.cert-manager.io/istio-ingressgateway-certs",
            "{.metadata.uid}",
        ),
        certificate_uid
    );
}
