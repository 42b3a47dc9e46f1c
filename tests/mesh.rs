//! Requests cross a real gateway. On the modern cluster istiod runs for real
//! and the pods of a live namespace pair are played (`tests/cluster/mesh.py`):
//! the gateway pods by pilot-agent and Envoy, configured by istiod from the
//! objects the plugin wrote, the KMS pods by a stand-in that answers with what
//! it received. A request that reaches it has crossed the gateway's TLS, its
//! route with the rewrite, and a second TLS connection to kms-api.

mod support;

use serde_json::Value;
use support::{
    Gateways, HeldConfig, IstioBuild, RequestLoop, TestCluster, assert_exit, cluster,
    fresh_namespaces, gateway_request, gateway_request_for, give_load_balancer_address, inject,
    json_status, live_namespaces, plugin_as, plugin_in, received, run, run_with_stdin, scratch_dir,
    seed_app, status_check, stderr, stdout,
};

const HOSTS: [&str; 2] = ["kms.example.com", "10.20.30.40"];

/// The runbook's first steps for the pair: the API key, then the sidecar,
/// with the backup kept in a scratch directory named `label`, returned.
fn set_apikey_and_inject(
    test: &TestCluster,
    ns: &(String, String),
    label: &str,
) -> std::path::PathBuf {
    assert_exit(
        &run_with_stdin(
            plugin_in(test, ns).args(["set-apikey", "--from-stdin"]),
            b"mesh-test-key",
        ),
        0,
    );
    let backups = scratch_dir(label);
    assert_exit(&run(inject(test, ns).arg("--backup-dir").arg(&backups)), 0);
    backups
}

/// `expose` for HOSTS on the gateway of `selector`; it must succeed.
fn expose(test: &TestCluster, ns: &(String, String), selector: &str) {
    let mut command = plugin_in(test, ns);
    command.args(["expose", "--gateway-selector", selector]);
    for host in HOSTS {
        command.args(["--host", host]);
    }
    assert_exit(&run(&mut command), 0);
    test.wait_for_gateway_certificate(ns);
}

/// `expose` for HOSTS on the gateway of `selector`, whose Gateway then names
/// its certificate as `source` says (a field of its server's `tls`, and its
/// value), and a request to each host reaches KMS.
fn expose_and_reach_kms(
    test: &TestCluster,
    ns: &(String, String),
    selector: &str,
    source: (&str, &str),
) {
    expose(test, ns, selector);
    let named = test.jsonpath(
        &ns.0,
        "gateways.networking.istio.io/kmsgateway",
        &format!("{{.spec.servers[0].tls.{}}}", source.0),
    );
    assert_eq!(named, source.1);
    for host in HOSTS {
        assert_reaches_kms(ns, selector, host);
    }
}

/// A request to `host` through the gateway of `selector` reached a KMS pod
/// of the pair as `/api/...`, over TLS on both legs: the gateway's
/// certificate verified for the host against the issuing CA (by the
/// harness's client), and the upstream named by the Service's DNS name (the
/// stand-in only speaks TLS). Returns what the client saw.
fn assert_reaches_kms(ns: &(String, String), selector: &str, host: &str) -> Value {
    let seen = gateway_request(&ns.1, selector, host, "kms");
    assert_eq!(seen["reached_kms"], true, "{host}: {seen:#}");
    let answer = &seen["answer"];
    assert_eq!(answer["path"], "/api/v1/keys", "{seen:#}");
    assert_eq!(answer["host"], host, "{seen:#}");
    assert_eq!(answer["tls"], true, "{seen:#}");
    assert_eq!(
        answer["sni"],
        format!("kms-api.{}.svc.cluster.local", ns.0),
        "{seen:#}"
    );
    assert!(
        answer["pod"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/key-management-api-", ns.0)),
        "{seen:#}"
    );
    assert!(
        seen["certificate"]["names"]
            .as_array()
            .unwrap()
            .iter()
            .any(|name| name == host),
        "{seen:#}"
    );
    seen
}

/// Has cert-manager issue the gateway's certificate again now, as
/// `cmctl renew` does, and waits until the secret holds a new one.
fn renew_gateway_certificate(test: &TestCluster, ns: &(String, String)) {
    let before = gateway_certificate(test, ns);
    let out = run(test.kubectl().args([
        "patch",
        "certificates.cert-manager.io/istio-ingressgateway-certs",
        "-n",
        &ns.1,
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Issuing","status":"True","reason":"ManuallyTriggered","message":"renewal requested by the test"}]}}"#,
    ]));
    assert_exit(&out, 0);
    wait_for_new_gateway_certificate(test, ns, &before);
}

/// The gateway's certificate as its secret holds it.
fn gateway_certificate(test: &TestCluster, ns: &(String, String)) -> String {
    test.jsonpath(
        &ns.1,
        "secret/istio-ingressgateway-certs",
        "{.data.tls\\.crt}",
    )
}

/// Waits until cert-manager has put a certificate other than `before` in
/// the gateway's secret.
fn wait_for_new_gateway_certificate(test: &TestCluster, ns: &(String, String), before: &str) {
    for _ in 0..120 {
        if gateway_certificate(test, ns) != before {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    panic!("cert-manager did not issue the gateway's certificate again within 30s");
}

/// After a renewal, the same gateway (no pod replaced, no proxy restarted)
/// serves the new certificate.
fn assert_serves_renewed_certificate(test: &TestCluster, ns: &(String, String), selector: &str) {
    let before = assert_reaches_kms(ns, selector, HOSTS[0]);
    renew_gateway_certificate(test, ns);
    let mut served = before.clone();
    for _ in 0..60 {
        served = assert_reaches_kms(ns, selector, HOSTS[0]);
        if served["certificate"]["serial"] != before["certificate"]["serial"] {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert_ne!(
        served["certificate"]["serial"], before["certificate"]["serial"],
        "the gateway still serves the certificate from before the renewal"
    );
    assert_eq!(
        served["gateway"], before["gateway"],
        "the gateway pod was replaced"
    );
    // The gateway's proxy says it serves the certificate the secret holds
    // now.
    let (_, report) = json_status(plugin_in(test, ns).arg("status"));
    let live = status_check(&report, "gateway config");
    assert_eq!(live["result"], "pass", "{live:#}");
    assert!(
        live["message"].as_str().unwrap().contains(&format!(
            "certificate serial {}",
            served["certificate"]["serial"].as_str().unwrap()
        )),
        "{live:#} {served:#}"
    );
}

#[test]
fn after_the_chain_requests_reach_kms_through_a_gateway_that_mounts_its_certificate() {
    let test = cluster("modern");
    let ns = live_namespaces(test, "mesh-files");
    let gateways = Gateways::of(&ns);
    let backups = set_apikey_and_inject(test, &ns, "mesh-files");
    expose_and_reach_kms(
        test,
        &ns,
        &gateways.files,
        (
            "serverCertificate",
            "/etc/istio/ingressgateway-certs/tls.crt",
        ),
    );

    // A renewal reaches the files the gateway reads, and the proxy serves
    // the new certificate without a restart.
    assert_serves_renewed_certificate(test, &ns, &gateways.files);

    assert_status_names_a_route_the_proxy_refused(test, &ns, &gateways.files);

    // After uninstall the gateway no longer routes to KMS, and KMS never
    // sees the request.
    let out = run(plugin_in(test, &ns)
        .args(["uninstall", "--yes", "--backup-dir"])
        .arg(&backups));
    assert_exit(&out, 0);
    // Counted by time: uninstall's rollout replaces the KMS pods, and with
    // them what the stand-ins recorded.
    let asked = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let seen = gateway_request(&ns.1, &gateways.files, HOSTS[0], "not-kms");
    assert_eq!(seen["reached_kms"], false, "{seen:#}");
    let after: Vec<_> = received(&ns.0)
        .into_iter()
        .filter(|r| r["time"].as_f64().is_some_and(|time| time >= asked))
        .collect();
    assert_eq!(
        after,
        Vec::<Value>::new(),
        "KMS received a request after uninstall"
    );
}

#[test]
fn credential_name_gateway_routes_to_kms_follows_renewals_and_shows_what_istiod_sent() {
    let test = cluster("modern");
    let ns = live_namespaces(test, "mesh-sds");
    let gateways = Gateways::of(&ns);
    expose_and_reach_kms(
        test,
        &ns,
        &gateways.credential_name,
        ("credentialName", "istio-ingressgateway-certs"),
    );
    // istiod reads the secret for the gateway and pushes the new one.
    assert_serves_renewed_certificate(test, &ns, &gateways.credential_name);

    // What istiod sent and the proxy took, read as `istioctl proxy-config`
    // reads it: the proxy's admin interface through a port-forward.
    let seen = assert_reaches_kms(&ns, &gateways.credential_name, HOSTS[0]);
    let pod = seen["gateway"].as_str().unwrap().split('/').nth(1).unwrap();
    let admin = PortForward::to(test, &ns.1, pod, 15000);
    let config = admin.get("/config_dump");
    assert!(
        config.contains("\"prefix\": \"/kms/api\""),
        "no KMS route in {config}"
    );
    assert!(
        config.contains(&format!(
            "outbound|28674||kms-api.{}.svc.cluster.local",
            ns.0
        )),
        "no kms-api cluster in the config dump"
    );
    let stats = admin.get("/stats?filter=update_rejected");
    assert!(stats.contains("lds.update_rejected: 0"), "{stats}");
    assert!(stats.contains("cds.update_rejected: 0"), "{stats}");
    drop(admin);

    assert_status_follows_what_the_gateway_takes(test, &ns, &gateways.credential_name);
}

/// An EnvoyFilter that istiod takes (it validates only the patch's shape)
/// and whose patch makes every route of KMS's Gateway one Envoy refuses: a
/// hash policy on a header without a name. istiod logs the refusal
/// ("ADS:RDS: ACK ERROR") and the proxy keeps the routes it last took; a
/// route `expose` then moves never reaches it. The live check fails naming
/// the route it still serves; with the filter gone it passes, and a request
/// on the moved route reaches KMS.
fn assert_status_names_a_route_the_proxy_refused(
    test: &TestCluster,
    ns: &(String, String),
    selector: &str,
) {
    let (label, value) = selector.split_once('=').unwrap();
    let filter = format!(
        r#"apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {{name: unnamed-hash-header, namespace: {istio}}}
spec:
  workloadSelector: {{labels: {{{label}: {value}}}}}
  configPatches:
  - applyTo: HTTP_ROUTE
    match:
      context: GATEWAY
      routeConfiguration: {{name: https.443.https.kmsgateway.{kms}}}
    patch:
      operation: MERGE
      value: {{route: {{hash_policy: [{{header: {{header_name: ""}}}}]}}}}
"#,
        istio = ns.1,
        kms = ns.0,
    );
    let served = assert_reaches_kms(ns, selector, HOSTS[0]);
    let (pod_namespace, pod) = served["gateway"].as_str().unwrap().split_once('/').unwrap();
    let refused = format!("ADS:RDS: ACK ERROR {pod}.{pod_namespace}");
    let mark = test.istiod_log_mark();
    let out = run_with_stdin(test.kubectl().args(["apply", "-f", "-"]), filter.as_bytes());
    assert_exit(&out, 0);
    let mut moved = plugin_in(test, ns);
    moved.args([
        "expose",
        "--gateway-selector",
        selector,
        "--path-prefix",
        "/kms/v2",
    ]);
    for host in HOSTS {
        moved.args(["--host", host]);
    }
    assert_exit(&run(&mut moved), 0);
    for _ in 0..100 {
        if test.istiod_logged_since(mark).contains(&refused) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(
        test.istiod_logged_since(mark).contains(&refused),
        "istiod logged no {refused:?}"
    );
    let (_, report) = json_status(plugin_in(test, ns).arg("status"));
    let live = status_check(&report, "gateway config");
    assert_eq!(live["result"], "fail", "{live:#}");
    let said = live["message"].as_str().unwrap();
    assert!(said.contains("routes /kms/api -> "), "{live:#}");
    assert!(
        said.contains("where the VirtualService says /kms/v2 -> "),
        "{live:#}"
    );
    // The proxy serves the route it last took.
    assert_reaches_kms(ns, selector, HOSTS[0]);

    let out =
        run(test
            .kubectl()
            .args(["delete", "envoyfilter", "unnamed-hash-header", "-n", &ns.1]));
    assert_exit(&out, 0);
    assert_live_check_passes_soon(test, ns);
    let seen = gateway_request_for(&ns.1, selector, HOSTS[0], "/kms/v2/v1/keys", "kms");
    assert_eq!(seen["answer"]["path"], "/api/v1/keys", "{seen:#}");
}

/// The live check passes within a minute. The rest of a pair these tests
/// use is not set up, so `status --wait` would not end: the check is read
/// again until it passes.
fn assert_live_check_passes_soon(test: &TestCluster, ns: &(String, String)) {
    let mut live = Value::Null;
    for _ in 0..60 {
        let (_, report) = json_status(plugin_in(test, ns).arg("status"));
        live = status_check(&report, "gateway config").clone();
        if live["result"] == "pass" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    assert_eq!(live["result"], "pass", "{live:#}");
}

/// The `probe` check of `status --probe --probe-address address`.
fn probe_check(test: &TestCluster, ns: &(String, String), address: &str) -> Value {
    let (_, report) =
        json_status(plugin_in(test, ns).args(["status", "--probe", "--probe-address", address]));
    status_check(&report, "probe").clone()
}

/// The names of the checks of a `status -o json` report that do not pass.
fn not_passing(report: &Value) -> Vec<&str> {
    report["categories"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["checks"].as_array().unwrap())
        .filter(|c| c["result"] != "pass")
        .map(|c| c["name"].as_str().unwrap())
        .collect()
}

/// While istiod's updates cannot reach the gateway proxy, what it serves
/// falls behind the objects: `expose` narrowed to a name and moved to
/// another path gives a new certificate, a filter chain for the name and a
/// new route, none of which the proxy takes. Every check of the objects
/// passes; the live check fails with each difference. Once the updates
/// arrive it passes, and a request on the new path reaches KMS.
fn assert_status_follows_what_the_gateway_takes(
    test: &TestCluster,
    ns: &(String, String),
    selector: &str,
) {
    let before = gateway_certificate(test, ns);
    let served = assert_reaches_kms(ns, selector, HOSTS[0]);
    // What is not set up in this pair fails with or without the hold.
    let (_, report) = json_status(plugin_in(test, ns).arg("status"));
    let unset = not_passing(&report);
    assert!(!unset.contains(&"gateway config"), "{report:#}");
    let held = HeldConfig::hold(&ns.1, selector);
    let mut moved = plugin_in(test, ns);
    moved.args([
        "expose",
        "--gateway-selector",
        selector,
        "--host",
        HOSTS[0],
        "--path-prefix",
        "/kms/v2",
    ]);
    assert_exit(&run(&mut moved), 0);
    wait_for_new_gateway_certificate(test, ns, &before);
    test.wait_for_gateway_certificate(ns);

    let (code, report) = json_status(plugin_in(test, ns).arg("status"));
    let live = status_check(&report, "gateway config");
    assert_eq!(live["result"], "fail", "{live:#}");
    let said = live["message"].as_str().unwrap();
    for difference in [
        format!("no filter chain of KMS's answers {}", HOSTS[0]),
        format!(
            "serves certificate serial {}, the secret holds",
            served["certificate"]["serial"].as_str().unwrap()
        ),
        "routes /kms/api -> ".to_owned(),
        "where the VirtualService says /kms/v2 -> ".to_owned(),
    ] {
        assert!(said.contains(&difference), "{difference:?} in {live:#}");
    }
    assert!(
        live["hint"]
            .as_str()
            .unwrap()
            .contains("istioctl proxy-status"),
        "{live:#}"
    );
    // A request from here on the new path meets the old route: the gateway
    // answers it itself.
    let address = served["address"].as_str().unwrap().to_owned();
    let probe = || probe_check(test, ns, &address);
    let probed = probe();
    assert_eq!(probed["result"], "fail", "{probed:#}");
    assert!(
        probed["message"]
            .as_str()
            .unwrap()
            .contains("the gateway answered HTTP 404 itself"),
        "{probed:#}"
    );
    let mut failing = unset.clone();
    failing.push("gateway config");
    failing.sort_unstable();
    let mut now = not_passing(&report);
    now.sort_unstable();
    assert_eq!(now, failing, "{report:#}");
    assert_eq!(code, 8, "{report:#}");

    drop(held);
    assert_live_check_passes_soon(test, ns);
    let probed = probe();
    assert_eq!(probed["result"], "pass", "{probed:#}");
    let seen = gateway_request_for(&ns.1, selector, HOSTS[0], "/kms/v2/v1/keys", "kms");
    assert_eq!(seen["reached_kms"], true, "{seen:#}");
    assert_eq!(seen["answer"]["path"], "/api/v1/keys", "{seen:#}");
    assert_ne!(
        seen["certificate"]["serial"], served["certificate"]["serial"],
        "{seen:#}"
    );
}

/// `kubectl port-forward` to a played pod's port, for as long as it lives.
struct PortForward {
    child: std::process::Child,
    port: u16,
}

impl PortForward {
    fn to(test: &TestCluster, namespace: &str, pod: &str, port: u16) -> Self {
        use std::io::{BufRead, BufReader};
        let mut child = test
            .kubectl()
            .args([
                "port-forward",
                "-n",
                namespace,
                &format!("pod/{pod}"),
                &format!(":{port}"),
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("start kubectl port-forward");
        let mut line = String::new();
        let mut said = BufReader::new(child.stdout.take().unwrap());
        said.read_line(&mut line)
            .expect("read kubectl port-forward");
        // kubectl says more as connections come; it must have someone to
        // say it to, or its next line ends it.
        std::thread::spawn(move || std::io::copy(&mut said, &mut std::io::sink()));
        // "Forwarding from 127.0.0.1:PORT -> 15000"
        let local = line
            .split_whitespace()
            .nth(2)
            .and_then(|address| address.rsplit(':').next())
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("kubectl port-forward said {line:?}"));
        PortForward { child, port: local }
    }

    /// The body of an HTTP GET of `path` through the forward. Envoy's admin
    /// interface answers HTTP/1.1 only, in chunks; the body is read to its
    /// last chunk, on a connection kept open until then.
    fn get(&self, path: &str) -> String {
        use std::io::{BufRead, BufReader, Read, Write};
        let mut stream =
            std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect to the forward");
        write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).expect("read the status line");
        assert!(line.starts_with("HTTP/1.1 200"), "{line}");
        loop {
            line.clear();
            reader.read_line(&mut line).expect("read a header");
            if line == "\r\n" {
                break;
            }
            assert!(
                !line.to_ascii_lowercase().starts_with("content-length"),
                "expected a chunked answer"
            );
        }
        let mut body = Vec::new();
        loop {
            line.clear();
            reader.read_line(&mut line).expect("read a chunk's size");
            let size = usize::from_str_radix(line.trim(), 16).expect("a chunk size");
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).expect("read a chunk");
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
        String::from_utf8(body).expect("a UTF-8 answer")
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn requests_keep_reaching_kms_while_inject_refreshes_it_and_set_apikey_restarts_the_adapter() {
    let test = cluster("modern");
    let ns = live_namespaces(test, "mesh-refresh");
    let gateways = Gateways::of(&ns);
    test.install_istio(&ns.1, IstioBuild::Previous, None);
    let backups = scratch_dir("mesh-refresh");
    let refresh = || run(inject(test, &ns).arg("--backup-dir").arg(&backups));
    assert_exit(&refresh(), 0);
    expose(test, &ns, &gateways.files);
    let before = assert_reaches_kms(&ns, &gateways.files, HOSTS[0]);

    // Requests one after another through the gateway, each on its own
    // connection, while the changes run.
    let load = RequestLoop::start(&ns.1, &gateways.files, HOSTS[0]);
    std::thread::sleep(std::time::Duration::from_secs(1));
    // An in-place upgrade of Istio, and the refresh of the stale sidecar: a
    // rolling update that replaces every KMS pod.
    test.install_istio(&ns.1, IstioBuild::Current, None);
    assert_exit(&refresh(), 0);
    let out = run_with_stdin(
        plugin_in(test, &ns).args(["set-apikey", "--from-stdin"]),
        b"mesh-refresh-key",
    );
    assert_exit(&out, 0);
    // The gateway's endpoints catch up with the new pods.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let answers = load.finish();
    let failed: Vec<_> = answers
        .iter()
        .filter(|a| a["reached_kms"] != true)
        .collect();
    assert!(
        answers.len() >= 20,
        "only {} requests were made",
        answers.len()
    );
    assert!(
        failed.is_empty(),
        "{} of {} failed: {failed:#?}",
        failed.len(),
        answers.len()
    );
    // The pod that answered before the refresh is gone; one of the new
    // ones answered last.
    let old = before["answer"]["pod"]
        .as_str()
        .unwrap()
        .split('/')
        .nth(1)
        .unwrap();
    let out = run(test.kubectl().args(["get", "pod", old, "-n", &ns.0]));
    assert_exit(&out, 1);
    assert_ne!(
        answers.last().unwrap()["answer"]["pod"],
        before["answer"]["pod"]
    );
}

#[test]
fn kms_and_another_application_share_a_gateway_each_reached_by_its_own_host() {
    let test = cluster("modern");
    let ns = live_namespaces(test, "mesh-shared");
    let gateways = Gateways::of(&ns);
    let app = format!("app-{}-mesh-shared", std::process::id());
    seed_app(&app, &ns.1, &gateways.credential_name, &["other.example"]);
    expose(test, &ns, &gateways.credential_name);
    for host in HOSTS {
        assert_reaches_kms(&ns, &gateways.credential_name, host);
    }
    let seen = gateway_request(&ns.1, &gateways.credential_name, "other.example", "backend");
    assert_eq!(seen["reached"], "backend", "{seen:#}");
    let answer = &seen["answer"];
    assert!(
        answer["pod"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{app}/other-app-")),
        "{seen:#}"
    );
    // Its route has no rewrite, and its backend speaks plain HTTP.
    assert_eq!(answer["path"], "/kms/api/v1/keys", "{seen:#}");
    assert_eq!(answer["tls"], false, "{seen:#}");
    assert!(
        received(&ns.0).iter().all(|r| r["host"] != "other.example"),
        "KMS received the other application's request"
    );
}

#[test]
fn istiod_refuses_an_istio_object_it_would_not_accept_at_write_time() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "mesh-webhook");
    // An HTTPS server without TLS settings: the API server's schema accepts
    // it, Istio's validation does not.
    let gateway = format!(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: no-tls\n  namespace: {}\n\
         spec:\n  selector: {{istio: ingressgateway}}\n  servers:\n  - port: {{number: 443, name: https, protocol: HTTPS}}\n    hosts: ['*']\n",
        ns.0
    );
    let out = run_with_stdin(
        test.kubectl().args(["apply", "-f", "-"]),
        gateway.as_bytes(),
    );
    assert_exit(&out, 1);
    let message = stderr(&out);
    assert!(
        message.contains("admission webhook \"validation.istio.io\" denied the request"),
        "{message}"
    );
    assert!(message.contains("TLS"), "{message}");
    let out = run(test
        .kubectl()
        .args(["get", "gateways.networking.istio.io/no-tls", "-n", &ns.0]));
    assert_exit(&out, 1);
}

#[test]
fn beside_an_older_wildcard_gateway_kms_is_reached_by_its_name_and_a_conflict_is_refused_and_reported()
 {
    let test = cluster("modern");
    let ns = live_namespaces(test, "mesh-wildcard");
    let selector = Gateways::of(&ns).credential_name;
    // Another application, there first, claims every host on port 443.
    let app = format!("app-{}-mesh-wildcard", std::process::id());
    seed_app(&app, &ns.1, &selector, &["*"]);
    // Older by its creation time, which counts in seconds (in a tie istiod
    // orders by name, and `kmsgateway` comes first).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let other = format!("Gateway {app}/other-app claims * on port 443");

    // An IP address makes KMS claim `*` too: refused, nothing written.
    let mut by_ip = plugin_in(test, &ns);
    by_ip.args(["expose", "--gateway-selector", &selector]);
    for host in HOSTS {
        by_ip.args(["--host", host]);
    }
    let out = run(&mut by_ip);
    assert_exit(&out, 6);
    let err = stderr(&out);
    assert!(err.contains(&other), "{err}");
    assert!(err.contains("Istio keeps that one"), "{err}");
    assert!(err.contains("--gateway-selector"), "{err}");
    assert_eq!(
        test.object_names(
            &ns.0,
            "gateways.networking.istio.io,virtualservices.networking.istio.io"
        ),
        ""
    );

    // By its name, KMS gets a filter chain of its own beside the wildcard.
    let by_name = || {
        run(plugin_in(test, &ns).args([
            "expose",
            "--gateway-selector",
            &selector,
            "--host",
            HOSTS[0],
        ]))
    };
    assert_exit(&by_name(), 0);
    test.wait_for_gateway_certificate(&ns);
    assert_reaches_kms(&ns, &selector, HOSTS[0]);
    let seen = gateway_request(&ns.1, &selector, "other-app.example", "backend");
    assert_eq!(seen["reached"], "backend", "{seen:#}");
    // The static check and what the gateway proxy holds, by its own account.
    let checks = || {
        let (_, report) = json_status(plugin_in(test, &ns).arg("status"));
        (
            status_check(&report, "shared gateway").clone(),
            status_check(&report, "gateway config").clone(),
        )
    };
    let (check, live) = checks();
    assert_eq!(check["result"], "pass", "{check:#}");
    assert_eq!(live["result"], "pass", "{live:#}");
    assert!(
        live["message"]
            .as_str()
            .unwrap()
            .starts_with("1 gateway proxy serves kms.example.com"),
        "{live:#}"
    );
    // A request from here, as a client sends it, reaches KMS.
    let gateway_address = stdout(&run(test.kubectl().args([
        "get",
        "pods",
        "-n",
        &ns.1,
        "-l",
        &selector,
        "-o",
        "jsonpath={.items[0].status.podIP}",
    ])));
    let probe = || probe_check(test, &ns, &gateway_address);
    let probed = probe();
    assert_eq!(probed["result"], "pass", "{probed:#}");
    assert!(
        probed["message"]
            .as_str()
            .unwrap()
            .contains("kms.example.com (at ")
            && probed["message"]
                .as_str()
                .unwrap()
                .contains(": KMS answered HTTP 200 through the route"),
        "{probed:#}"
    );

    // Without the right to port-forward, that check is skipped and says
    // what grants it; the rbac it names makes it run.
    let user = format!("mesh-wildcard-{}", std::process::id());
    let kubeconfig = test.user_kubeconfig(&user);
    let grant = |extra: &[&str]| {
        let out = run(plugin_in(test, &ns)
            .args(["rbac", "--for", "status", "--to-user", &user])
            .args(extra));
        assert_exit(&out, 0);
        test.grant(&out.stdout, &user);
    };
    grant(&[]);
    let as_user = || {
        let (_, report) = json_status(plugin_as(&kubeconfig, &ns).arg("status"));
        status_check(&report, "gateway config").clone()
    };
    let skipped = as_user();
    assert_eq!(skipped["result"], "warn", "{skipped:#}");
    assert!(
        skipped["message"]
            .as_str()
            .unwrap()
            .contains("pods/portforward"),
        "{skipped:#}"
    );
    assert!(
        skipped["hint"]
            .as_str()
            .unwrap()
            .contains("rbac --for status --read-gateway-config"),
        "{skipped:#}"
    );
    grant(&["--read-gateway-config"]);
    let granted = as_user();
    assert_eq!(granted["result"], "pass", "{granted:#}");

    // KMS's Gateway as an earlier version wrote it: `*`, newer than the
    // other's. istiod drops it, KMS's requests land on the other
    // application's server, and status says so.
    // Written as the plugin writes: server-side, by its field manager.
    let claim_everything = |object: &str, pointer: &str| {
        let out = run(test
            .kubectl()
            .args(["get", object, "-n", &ns.0, "-o", "json"]));
        assert_exit(&out, 0);
        let mut written: Value = serde_json::from_slice(&out.stdout).unwrap();
        *written.pointer_mut(pointer).unwrap() = serde_json::json!(["*"]);
        let metadata = written["metadata"].as_object_mut().unwrap();
        metadata.remove("managedFields");
        metadata.remove("resourceVersion");
        let out = run_with_stdin(
            test.kubectl().args([
                "apply",
                "--server-side",
                "--field-manager=kubectl-kms-sts",
                "-f",
                "-",
            ]),
            written.to_string().as_bytes(),
        );
        assert_exit(&out, 0);
    };
    claim_everything(
        "gateways.networking.istio.io/kmsgateway",
        "/spec/servers/0/hosts",
    );
    claim_everything(
        "virtualservices.networking.istio.io/kmsvservice",
        "/spec/hosts",
    );
    // The connection lands on the other application's server, whose
    // certificate is not KMS's.
    let seen = gateway_request(&ns.1, &selector, HOSTS[0], "not-kms");
    assert_eq!(seen["reached_kms"], false, "{seen:#}");
    assert!(
        seen["error"]
            .as_str()
            .is_some_and(|error| error.contains("not valid for 'kms.example.com'")),
        "{seen:#}"
    );
    // From here, the request meets the other application's certificate.
    let probed = probe();
    assert_eq!(probed["result"], "fail", "{probed:#}");
    assert!(
        probed["message"]
            .as_str()
            .unwrap()
            .contains("TLS with the gateway failed"),
        "{probed:#}"
    );
    let (check, live) = checks();
    assert_eq!(check["result"], "fail", "{check:#}");
    assert_eq!(live["result"], "fail", "{live:#}");
    assert!(
        live["message"]
            .as_str()
            .unwrap()
            .contains("holds no filter chain for KMS's Gateway server"),
        "{live:#}"
    );
    assert!(
        check["message"].as_str().unwrap().contains(&other),
        "{check:#}"
    );
    assert!(
        check["hint"]
            .as_str()
            .unwrap()
            .contains("kubectl kms-sts expose"),
        "{check:#}"
    );

    // expose narrows it again, and says which fields it changes.
    let out = run(plugin_in(test, &ns).args([
        "expose",
        "--gateway-selector",
        &selector,
        "--host",
        HOSTS[0],
        "--dry-run",
    ]));
    assert_exit(&out, 0);
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "gateway.networking.istio.io/kmsgateway would be configured (dry run): \
             spec.servers[0].hosts[0]: \"*\" -> \"{}\"",
            HOSTS[0]
        )),
        "{err}"
    );
    assert_exit(&by_name(), 0);
    assert_reaches_kms(&ns, &selector, HOSTS[0]);
    let (check, live) = checks();
    assert_eq!(check["result"], "pass", "{check:#}");
    assert_eq!(live["result"], "pass", "{live:#}");
}

/// The pods of the gateway istiod deploys for KMS's Gateway API Gateway.
const DEPLOYED_GATEWAY: &str = "gateway.networking.k8s.io/gateway-name=kms-gateway";

/// The result of each check named in `names`, from `status -o json`,
/// asked again (istiod writes conditions a moment after a change) until
/// they are as `wanted` or 60 tries have passed; the last report.
fn status_until(test: &TestCluster, ns: &(String, String), wanted: &[(&str, &str)]) -> Value {
    let mut report = Value::Null;
    for _ in 0..60 {
        (_, report) = json_status(plugin_in(test, ns).arg("status"));
        if wanted
            .iter()
            .all(|(name, result)| status_check(&report, name)["result"] == *result)
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    report
}

#[test]
fn through_the_gateway_api_requests_reach_kms_through_the_gateway_istiod_deploys() {
    let test = cluster("modern");
    let ns = live_namespaces(test, "mesh-gwapi");
    let backups = set_apikey_and_inject(test, &ns, "mesh-gwapi");
    // No pod of the pair has the classic gateway's label (its gateways
    // carry labels of their own) and the cluster serves the Gateway API:
    // `expose` without --api chooses it.
    let expose = || {
        let mut command = plugin_in(test, &ns);
        command.arg("expose");
        for host in HOSTS {
            command.args(["--host", host]);
        }
        run(&mut command)
    };
    let out = expose();
    assert_exit(&out, 0);
    let err = stderr(&out);
    assert!(
        err.contains("httproute.gateway.networking.k8s.io/kms-api created"),
        "{err}"
    );
    assert!(!err.contains("networking.istio.io"), "{err}");
    test.wait_for_gateway_certificate(&ns);
    assert_exit(
        &run(plugin_in(test, &ns).args([
            "map-identity",
            "--source-crn",
            support::SOURCE_CRN,
            "--target-crn",
            support::TARGET_CRN,
        ])),
        0,
    );

    // What a cloud's load-balancer controller does: an address for the
    // Service istiod made; then istiod says the Gateway is programmed.
    give_load_balancer_address(test, &ns.1, "kms-gateway-istio", HOSTS[1]);
    let out = run(test.kubectl().args([
        "wait",
        "--for=condition=Programmed",
        "--timeout=60s",
        "-n",
        &ns.1,
        "gateways.gateway.networking.k8s.io/kms-gateway",
    ]));
    assert_exit(&out, 0);
    for host in HOSTS {
        assert_reaches_kms(&ns, DEPLOYED_GATEWAY, host);
    }
    let deployed = gateway_request(&ns.1, DEPLOYED_GATEWAY, HOSTS[0], "kms");
    // The prefix is matched by whole path segments. (The stand-in answers
    // `/api` itself with 404, so the request is not waited on as a success.)
    let seen = gateway_request_for(&ns.1, DEPLOYED_GATEWAY, HOSTS[0], "/kms/api", "not-kms");
    assert_eq!(seen["answer"]["role"], "kms", "{seen:#}");
    assert_eq!(seen["answer"]["path"], "/api", "{seen:#}");
    let seen = gateway_request_for(&ns.1, DEPLOYED_GATEWAY, HOSTS[0], "/kms/apix", "not-kms");
    assert_eq!(seen["status"], 404, "{seen:#}");

    // Exposed through the Gateway API: a run never switches it back.
    let out = run(plugin_in(test, &ns).args(["expose", "--api", "istio", "--host", HOSTS[0]]));
    assert_exit(&out, 7);
    let err = stderr(&out);
    assert!(
        err.contains("KMS is exposed through the Gateway API already"),
        "{err}"
    );
    assert!(
        err.contains("httproute.gateway.networking.k8s.io/kms-api"),
        "{err}"
    );
    assert!(err.contains("run expose with --api gateway-api"), "{err}");
    assert_eq!(test.object_names(&ns.0, "gateways.networking.istio.io"), "");

    let passing = [
        ("Gateway", "pass"),
        ("HTTPRoute", "pass"),
        ("BackendTLSPolicy", "pass"),
        ("upstream trust", "pass"),
        ("gateway config", "pass"),
    ];
    let report = status_until(test, &ns, &passing);
    assert_eq!(not_passing(&report), Vec::<&str>::new(), "{report:#}");
    let gateway = status_check(&report, "Gateway");
    assert!(
        gateway["message"]
            .as_str()
            .unwrap()
            .ends_with(&format!("programmed by istiod at {}", HOSTS[1])),
        "{gateway:#}"
    );
    // What the deployed gateway's proxy holds, read from it.
    let live = status_check(&report, "gateway config");
    assert!(
        live["message"]
            .as_str()
            .unwrap()
            .starts_with("1 gateway proxy serves *: certificate serial"),
        "{live:#}"
    );
    // A snapshot saved and checked from the file gives the same report.
    let saved = scratch_dir("mesh-gwapi-snapshot").join("snapshot.json");
    let (code, live) = json_status(plugin_in(test, &ns).arg("status").arg("--save").arg(&saved));
    assert_eq!(code, 0, "{live:#}");
    let (code, mut from_file) =
        json_status(support::plugin().arg("status").arg("--from").arg(&saved));
    assert_eq!(code, 0, "{from_file:#}");
    from_file.as_object_mut().unwrap().remove("checkedAt");
    assert_eq!(from_file, live);
    // `--probe` from here: at the deployed gateway each host reaches KMS
    // through the route; at the pair's classic gateway, which serves no
    // route for them, none does.
    let probe = probe_check(test, &ns, deployed["address"].as_str().unwrap());
    assert_eq!(probe["result"], "pass", "{probe:#}");
    assert!(
        probe["message"]
            .as_str()
            .unwrap()
            .contains("KMS answered HTTP 200 through the route"),
        "{probe:#}"
    );
    let classic = gateway_request(&ns.1, &Gateways::of(&ns).files, HOSTS[0], "not-kms");
    let probe = probe_check(test, &ns, classic["address"].as_str().unwrap());
    assert_eq!(probe["result"], "fail", "{probe:#}");

    // A CA that did not sign kms-api's certificate: istiod takes it, and
    // status names the mismatch. (When the gateway gets it depends on
    // istiod: its push after an edit in place may still serve the CA it
    // cached, until some later push; then every request fails its handshake.)
    let other_ca = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/values/testdata/other-ca.crt"
    ))
    .unwrap();
    let patch = serde_json::json!({"data": {"ca.crt": other_ca}}).to_string();
    let out = run(test.kubectl().args([
        "patch",
        "configmap",
        "kms-api-ca",
        "-n",
        &ns.0,
        "--type=merge",
        "-p",
        &patch,
    ]));
    assert_exit(&out, 0);
    let report = status_until(test, &ns, &[("upstream trust", "fail")]);
    let trust = status_check(&report, "upstream trust");
    assert!(
        trust["message"].as_str().unwrap().contains("did not sign"),
        "{trust:#}"
    );
    assert!(
        trust["hint"]
            .as_str()
            .unwrap()
            .contains("--api gateway-api"),
        "{trust:#}"
    );
    assert_eq!(status_check(&report, "BackendTLSPolicy")["result"], "pass");

    // The CA gone: istiod's own reason.
    let out = run(test
        .kubectl()
        .args(["delete", "configmap", "kms-api-ca", "-n", &ns.0]));
    assert_exit(&out, 0);
    let report = status_until(test, &ns, &[("BackendTLSPolicy", "fail")]);
    let policy = status_check(&report, "BackendTLSPolicy");
    let message = policy["message"].as_str().unwrap();
    assert!(
        message.contains("InvalidCACertificateRef") || message.contains("NoValidCACertificate"),
        "{policy:#}"
    );
    assert!(message.contains("kms-api-ca"), "{policy:#}");

    // `expose` again puts the CA back; everything passes and KMS answers.
    assert_exit(&expose(), 0);
    let report = status_until(test, &ns, &passing);
    assert_eq!(not_passing(&report), Vec::<&str>::new(), "{report:#}");
    assert_reaches_kms(&ns, DEPLOYED_GATEWAY, HOSTS[0]);

    // Uninstall takes out what expose wrote, and the gateway istiod
    // deployed goes with its Gateway.
    let out = run(plugin_in(test, &ns)
        .args(["uninstall", "--yes", "--backup-dir"])
        .arg(&backups));
    assert_exit(&out, 0);
    assert_eq!(
        test.object_names(
            &ns.0,
            "httproutes.gateway.networking.k8s.io,backendtlspolicies.gateway.networking.k8s.io"
        ),
        ""
    );
    assert_eq!(
        test.object_names(&ns.1, "gateways.gateway.networking.k8s.io"),
        ""
    );
    let mut left = String::new();
    for _ in 0..60 {
        left = test.object_names(&ns.1, "deployments,services")
            + &test.object_names(&ns.0, "configmaps");
        if !left.contains("kms-gateway-istio") && !left.contains("kms-api-ca") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    assert!(
        !left.contains("kms-gateway-istio") && !left.contains("kms-api-ca"),
        "{left}"
    );
}

#[test]
fn a_move_to_the_gateway_api_keeps_kms_served_through_the_switch() {
    let test = cluster("modern");
    let ns = live_namespaces(test, "mesh-move");
    let gateways = Gateways::of(&ns);
    // Exposed through Istio's APIs on the gateway behind the pair's
    // `istio-ingress` Service.
    expose(test, &ns, &gateways.credential_name);
    assert_reaches_kms(&ns, &gateways.credential_name, HOSTS[0]);

    let move_to_gateway_api = |extra: &[&str]| {
        let mut command = plugin_in(test, &ns);
        command.args(["expose", "--api", "gateway-api"]);
        for host in HOSTS {
            command.args(["--host", host]);
        }
        run(command.args(extra))
    };
    // Without the Service clients reach KMS at, the move is refused; a dry
    // run shows both halves and writes nothing.
    let out = move_to_gateway_api(&[]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("--gateway-service"),
        "{}",
        stderr(&out)
    );
    let out = move_to_gateway_api(&["--gateway-service", "istio-ingress", "--dry-run=client"]);
    assert_exit(&out, 0);
    let err = stderr(&out);
    for says in [
        "httproute.gateway.networking.k8s.io/kms-api would be created (dry run)".to_owned(),
        format!(
            "gateway.networking.istio.io/kmsgateway in {} would be deleted once the Gateway \
             API's route serves (dry run)",
            ns.0
        ),
    ] {
        assert!(err.contains(&says), "{says}: {err}");
    }
    assert_eq!(
        test.object_names(&ns.0, "httproutes.gateway.networking.k8s.io"),
        ""
    );

    // Moved onto the same gateway while requests keep coming: Istio's
    // objects go only once the new route serves, and none fails. While the
    // Service has no load-balancer address istiod does not program the
    // Gateway: past --timeout, Istio's objects stay and keep serving.
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    let load = RequestLoop::start(&ns.1, &gateways.credential_name, HOSTS[0]);
    std::thread::sleep(std::time::Duration::from_secs(1));
    let mut phases = vec![("first run", now())];
    let out = move_to_gateway_api(&["--gateway-service", "istio-ingress", "--timeout", "3s"]);
    phases.push(("first run ended", now()));
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains("httproute.gateway.networking.k8s.io/kms-api created"),
        "{err}"
    );
    assert!(err.contains("did not serve within 3s"), "{err}");
    assert!(err.contains("AddressNotAssigned"), "{err}");
    assert!(
        err.contains("gateway.networking.istio.io/kmsgateway in"),
        "{err}"
    );
    assert_eq!(
        test.object_names(&ns.0, "gateways.networking.istio.io")
            .trim(),
        "gateway.networking.istio.io/kmsgateway"
    );
    give_load_balancer_address(test, &ns.1, "istio-ingress", HOSTS[1]);
    phases.push(("address given, second run", now()));
    let out = move_to_gateway_api(&["--gateway-service", "istio-ingress"]);
    phases.push(("second run ended", now()));
    assert_exit(&out, 0);
    let err = stderr(&out);
    for object in [
        "gateway.networking.istio.io/kmsgateway",
        "virtualservice.networking.istio.io/kmsvservice",
        "destinationrule.networking.istio.io/kms-api-tls",
    ] {
        assert!(
            err.contains(&format!(
                "{object} in {} deleted: the Gateway API's route serves KMS",
                ns.0
            )),
            "{err}"
        );
    }
    std::thread::sleep(std::time::Duration::from_secs(3));
    let answers = load.finish();
    // Measured in istiod's log: while both servers claim the same hosts on
    // the pods, the proxy refuses the listener holding both (duplicate
    // filter chain matchers) and keeps the one it had; when Istio's objects
    // go, istiod's first push of the new route configuration can be empty,
    // for about a tenth of a second, before the one the proxy asks for.
    // Only a 404 from the gateway itself, that close to the switch, is let
    // pass; every other request reached KMS.
    let switched = phases.last().unwrap().1;
    let failed: Vec<_> = answers
        .iter()
        .filter(|a| a["reached_kms"] != true)
        .filter(|a| {
            let at_switch = a["time"]
                .as_f64()
                .is_some_and(|time| (time - switched).abs() < 1.0);
            !(at_switch && a["status"] == 404 && a["server"] == "istio-envoy")
        })
        .collect();
    assert!(answers.len() >= 10, "only {} requests", answers.len());
    assert!(
        failed.is_empty(),
        "{} of {} failed: {failed:#?} (the move's phases began at {phases:?})",
        failed.len(),
        answers.len()
    );
    let before_the_switch = answers
        .iter()
        .filter(|a| a["time"].as_f64().is_some_and(|time| time < switched - 1.0))
        .count();
    assert!(
        before_the_switch >= 5,
        "{before_the_switch} requests before the switch"
    );
    assert_eq!(
        test.object_names(
            &ns.0,
            "gateways.networking.istio.io,virtualservices.networking.istio.io,\
             destinationrules.networking.istio.io"
        ),
        ""
    );
    // The Gateway attached to the Service: no gateway of its own.
    assert_eq!(
        test.jsonpath(
            &ns.1,
            "gateways.gateway.networking.k8s.io/kms-gateway",
            "{.spec.addresses[0].value}"
        ),
        format!("istio-ingress.{}.svc.cluster.local", ns.1)
    );
    for host in HOSTS {
        assert_reaches_kms(&ns, &gateways.credential_name, host);
    }
    let report = status_until(
        test,
        &ns,
        &[
            ("Gateway", "pass"),
            ("HTTPRoute", "pass"),
            ("BackendTLSPolicy", "pass"),
        ],
    );
    for name in [
        "Gateway",
        "HTTPRoute",
        "BackendTLSPolicy",
        "upstream trust",
        "gateway config",
    ] {
        assert_eq!(status_check(&report, name)["result"], "pass", "{report:#}");
    }

    // Another application's Gateway on the same Service claims KMS's DNS
    // name, where KMS's listener answers every name (one of its hosts is
    // an IP): the gateway sends that name's requests to it. istiod's
    // conditions say nothing of it; what the proxies hold does.
    let shop = serde_json::json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "shop-gateway", "namespace": ns.1},
        "spec": {"gatewayClassName": "istio",
            "addresses": [{"type": "Hostname",
                           "value": format!("istio-ingress.{}.svc.cluster.local", ns.1)}],
            "listeners": [{"name": "shop", "hostname": HOSTS[0], "port": 443, "protocol": "HTTPS",
                "tls": {"mode": "Terminate",
                        "certificateRefs": [{"name": "istio-ingressgateway-certs"}]}}]}});
    let out = support::run_with_stdin(
        test.kubectl().args(["apply", "-f", "-"]),
        shop.to_string().as_bytes(),
    );
    assert_exit(&out, 0);
    let taken = gateway_request(&ns.1, &gateways.credential_name, HOSTS[0], "not-kms");
    assert_ne!(taken["reached_kms"], true, "{taken:#}");
    let report = status_until(test, &ns, &[("gateway config", "fail")]);
    let live = status_check(&report, "gateway config");
    assert!(
        live["message"].as_str().unwrap().contains(&format!(
            "another application's filter chain \
             (https.443.default.shop-gateway~istio-autogenerated-k8s-gateway~shop.{}) answers {} \
             on listener",
            ns.1, HOSTS[0]
        )),
        "{live:#}"
    );
    for name in ["Gateway", "HTTPRoute", "BackendTLSPolicy"] {
        assert_eq!(status_check(&report, name)["result"], "pass", "{report:#}");
    }
    let out = run(test.kubectl().args([
        "delete",
        "gateways.gateway.networking.k8s.io",
        "shop-gateway",
        "-n",
        &ns.1,
    ]));
    assert_exit(&out, 0);
    assert_reaches_kms(&ns, &gateways.credential_name, HOSTS[0]);
    status_until(test, &ns, &[("gateway config", "pass")]);
}
