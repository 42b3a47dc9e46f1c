//! A passing `status` means requests really reach KMS. After the plugin's
//! chain, Istio's own configuration generator and traffic simulation
//! (`tests/cluster/gomod/datapath`, from the pinned `istio.io/istio`) render
//! what the gateway pod would receive and replay an HTTPS request to each
//! host, with real TLS handshakes against the gateway's certificate and the
//! certificate kms-api serves; and each mistake that breaks the path makes
//! both the verifier and `status` fail, the latter with a hint.

mod support;

use serde_json::Value;
use support::{
    TestCluster, assert_exit, assert_only_unplayed_warning, cluster, fresh_namespaces, host_of,
    json_status, plugin_in, run, run_chain, scratch_dir, status_check, stderr, stdout,
    unplayed_warning,
};

const CHECKS_FAILED: i32 = 8;
const MISSING_PREREQUISITE: i32 = 6;

fn status(test: &TestCluster, ns: &(String, String), extra: &[&str]) -> (i32, Value) {
    json_status(plugin_in(test, ns).arg("status").args(extra))
}

fn data_path_category(report: &Value) -> &Value {
    report["categories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "data path")
        .unwrap_or_else(|| panic!("no data path category: {report:#}"))
}

/// The names a pair exposes KMS on: of its own (see `host_of`), and a
/// second one for a test that adds a host.
fn hosts_of(ns: &(String, String)) -> [String; 2] {
    let host = host_of(ns);
    let second = format!("api.{host}");
    [host, second]
}

/// `expose` for `hosts`, with `extra` arguments; it must succeed.
fn expose(test: &TestCluster, ns: &(String, String), hosts: &[&str], extra: &[&str]) {
    let mut command = plugin_in(test, ns);
    command.arg("expose");
    for host in hosts {
        command.args(["--host", host]);
    }
    assert_exit(&run(command.args(extra)), 0);
}

/// Every request of the verifier's report reached kms-api, rewritten to
/// `/api`, through a certificate source that exists, with both handshakes
/// completed.
fn assert_reaches(report: &Value, ns: &(String, String), hosts: &[&str]) {
    assert_eq!(report["ok"], true, "{report:#}");
    let requests = report["requests"].as_array().unwrap();
    assert_eq!(requests.len(), hosts.len(), "{report:#}");
    for (request, host) in requests.iter().zip(hosts) {
        assert_eq!(request["host"], *host);
        assert_eq!(request["reaches"], true, "{request:#}");
        assert_eq!(request["rewrite"], "/api", "{request:#}");
        assert_eq!(request["upstream_path"], "/api/v1/keys", "{request:#}");
        assert_eq!(
            request["cluster"],
            format!("outbound|28674||kms-api.{}.svc.cluster.local", ns.0)
        );
        assert_eq!(request["cluster_found"], true);
        for leg in ["downstream", "upstream"] {
            assert_eq!(request[leg]["source_exists"], true, "{leg}: {request:#}");
            assert_eq!(request[leg]["handshake"], "ok", "{leg}: {request:#}");
        }
        assert_eq!(
            request["upstream"]["sni"],
            format!("kms-api.{}.svc.cluster.local", ns.0)
        );
    }
}

/// Where the first request's gateway certificate and upstream trust came
/// from, as Envoy resource names.
fn assert_sources(report: &Value, certificate: &str, trust: &str) {
    let request = &report["requests"][0];
    assert_eq!(request["downstream"]["certificate_source"], certificate);
    assert_eq!(request["upstream"]["trust"], trust);
}

/// `status` waits until the Certificate is issued, then every check passes.
fn assert_status_passes(test: &TestCluster, ns: &(String, String)) -> Value {
    let (code, report) = status(test, ns, &["--wait", "60s"]);
    assert_eq!(code, 0, "{report:#}");
    assert_only_unplayed_warning(&report);
    let category = data_path_category(&report);
    let names: Vec<&str> = category["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "gateway pods",
            "shared gateway",
            "gateway certificate",
            "certificate hosts",
            "upstream trust",
            "gateway config"
        ]
    );
    report
}

#[test]
fn after_the_chain_requests_reach_kms_with_both_handshakes_in_both_profiles() {
    for profile in ["modern", "legacy"] {
        let test = cluster(profile);
        let ns = fresh_namespaces(test, "datapath-chain");
        let [host, second] = hosts_of(&ns);
        run_chain(
            &test.kubeconfig,
            &ns,
            &scratch_dir(&format!("datapath-{profile}")),
        );
        // Another host: the Certificate is issued again with both.
        expose(test, &ns, &[second.as_str(), host.as_str()], &[]);
        if profile == "legacy" {
            test.issue_legacy_certificate(&ns.1, "istio-ingressgateway-certs");
        }
        let report = assert_status_passes(test, &ns);
        let hosts = status_check(&report, "certificate hosts")["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            hosts.contains(host.as_str()) && hosts.contains(second.as_str()),
            "{hosts}"
        );
        let (code, verified) = test.datapath(&ns, &[second.as_str(), host.as_str()]);
        assert_eq!(code, 0, "{profile}: {verified:#}");
        assert_reaches(&verified, &ns, &[second.as_str(), host.as_str()]);
        // Both profiles' default gateways mount the certificate secrets: the
        // runbook's files serve the certificate and the CA.
        assert_sources(
            &verified,
            "file-cert:/etc/istio/ingressgateway-certs/tls.crt~/etc/istio/ingressgateway-certs/tls.key",
            "file-root:/etc/istio/ingressgateway-ca-certs/ca.crt",
        );
    }
}

#[test]
fn a_gateway_that_mounts_no_certificate_is_served_by_credential_name() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "datapath-sds");
    let host = host_of(&ns);
    expose(
        test,
        &ns,
        &[host.as_str()],
        &["--gateway-selector", "istio=ingress"],
    );
    let gateway = stdout(&run(test.kubectl().args([
        "get",
        "gateways.networking.istio.io/kmsgateway",
        "-n",
        &ns.0,
        "-o",
        "jsonpath={.spec.servers[0].tls.credentialName} {.spec.selector.istio}",
    ])));
    assert_eq!(gateway, "istio-ingressgateway-certs ingress");
    let trust = stdout(&run(test.kubectl().args([
        "get",
        "destinationrules.networking.istio.io/kms-api-tls",
        "-n",
        &ns.0,
        "-o",
        "jsonpath={.spec.trafficPolicy.tls.credentialName}",
    ])));
    assert_eq!(trust, "istio-ingressgateway-ca-certs");
    test.wait_for_gateway_certificate(&ns);
    let (code, report) = status(test, &ns, &[]);
    assert_eq!(
        data_path_category(&report)["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["result"] != "pass" && !unplayed_warning(c))
            .count(),
        0,
        "{report:#}"
    );
    assert_eq!(code, CHECKS_FAILED, "the other steps were not run");
    let (code, verified) = test.datapath(&ns, &[host.as_str()]);
    assert_eq!(code, 0, "{verified:#}");
    assert_reaches(&verified, &ns, &[host.as_str()]);
    assert_sources(
        &verified,
        "kubernetes://istio-ingressgateway-certs",
        "kubernetes://istio-ingressgateway-ca-certs-cacert",
    );
}

/// One way to break the path, applied with kubectl after `expose`.
struct Mistake {
    label: &'static str,
    /// kubectl arguments; `{kms}` and `{istio}` stand for the namespaces.
    steps: &'static [&'static [&'static str]],
    /// What the verifier's report says.
    verifier_says: &'static str,
    /// The `status` check that fails, and what it says.
    check: &'static str,
    status_says: &'static str,
}

const MISTAKES: [Mistake; 5] = [
    Mistake {
        label: "a VirtualService port that is not the Service's",
        steps: &[&[
            "patch",
            "virtualservices.networking.istio.io/kmsvservice",
            "-n",
            "{kms}",
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/spec/http/0/route/0/destination/port/number","value":8443}]"#,
        ]],
        verifier_says: "does not exist",
        check: "VirtualService",
        status_says: "routes to port 8443, but kms-api serves 28674",
    },
    Mistake {
        label: "a Gateway selector that matches no pod",
        steps: &[&[
            "patch",
            "gateways.networking.istio.io/kmsgateway",
            "-n",
            "{kms}",
            "--type=merge",
            "-p",
            r#"{"spec":{"selector":{"istio":"no-such-gateway"}}}"#,
        ]],
        verifier_says: "no Gateway selects a ready pod",
        check: "gateway pods",
        status_says: "has the Gateway's labels istio=no-such-gateway",
    },
    Mistake {
        label: "the DestinationRule removed",
        steps: &[&[
            "delete",
            "destinationrules.networking.istio.io/kms-api-tls",
            "-n",
            "{kms}",
        ]],
        verifier_says: "the gateway sends plain text to a TLS server",
        check: "upstream trust",
        status_says: "no DestinationRule",
    },
    Mistake {
        label: "a DestinationRule trusting the wrong CA",
        steps: &[
            &[
                "create",
                "secret",
                "generic",
                "wrong-ca",
                "-n",
                "{istio}",
                "--from-file=ca.crt={wrong_ca}",
            ],
            &[
                "patch",
                "destinationrules.networking.istio.io/kms-api-tls",
                "-n",
                "{kms}",
                "--type=json",
                "-p",
                r#"[{"op":"remove","path":"/spec/trafficPolicy/tls/caCertificates"},{"op":"add","path":"/spec/trafficPolicy/tls/credentialName","value":"wrong-ca"}]"#,
            ],
        ],
        verifier_says: "certificate signed by unknown authority",
        check: "upstream trust",
        status_says: "did not sign kms-api's certificate",
    },
    Mistake {
        label: "a file-mounted certificate on a gateway that does not mount it",
        steps: &[&[
            "patch",
            "gateways.networking.istio.io/kmsgateway",
            "-n",
            "{kms}",
            "--type=merge",
            "-p",
            r#"{"spec":{"selector":{"istio":"ingress"}}}"#,
        ]],
        verifier_says: "mounts no secret at /etc/istio/ingressgateway-certs",
        check: "gateway certificate",
        status_says: "the gateway pods mount no secret at /etc/istio/ingressgateway-certs",
    },
];

#[test]
fn each_mistake_fails_the_verifier_and_status_with_a_hint() {
    let test = cluster("modern");
    let wrong_ca = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/values/testdata/other-ca.crt"
    );
    for (index, mistake) in MISTAKES.iter().enumerate() {
        let ns = fresh_namespaces(test, &format!("datapath-mistake-{index}"));
        let host = host_of(&ns);
        expose(test, &ns, &[host.as_str()], &[]);
        // The path works before the mistake.
        test.wait_for_gateway_certificate(&ns);
        let (code, report) = status(test, &ns, &[]);
        assert_eq!(code, CHECKS_FAILED, "the other steps were not run");
        assert!(
            data_path_category(&report)["checks"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["result"] == "pass" || unplayed_warning(c)),
            "{}: before: {report:#}",
            mistake.label
        );
        let (code, verified) = test.datapath(&ns, &[host.as_str()]);
        assert_eq!(code, 0, "{}: before: {verified:#}", mistake.label);

        for step in mistake.steps {
            let args: Vec<String> = step
                .iter()
                .map(|arg| {
                    arg.replace("{kms}", &ns.0)
                        .replace("{istio}", &ns.1)
                        .replace("{wrong_ca}", wrong_ca)
                })
                .collect();
            assert_exit(&run(test.kubectl().args(&args)), 0);
        }

        let (code, verified) = test.datapath(&ns, &[host.as_str()]);
        assert_eq!(code, 1, "{}: {verified:#}", mistake.label);
        assert_eq!(verified["ok"], false);
        let text = verified.to_string();
        assert!(
            text.contains(mistake.verifier_says),
            "{}: {verified:#}",
            mistake.label
        );
        if let Some(request) = verified["requests"].get(0) {
            assert_eq!(request["reaches"], false, "{}", mistake.label);
        }

        let (code, report) = status(test, &ns, &[]);
        assert_eq!(code, CHECKS_FAILED);
        let failed = status_check(&report, mistake.check);
        assert_eq!(failed["result"], "fail", "{}: {failed:#}", mistake.label);
        assert!(
            failed["message"]
                .as_str()
                .unwrap()
                .contains(mistake.status_says),
            "{}: {failed:#}",
            mistake.label
        );
        assert!(
            failed["hint"]
                .as_str()
                .unwrap()
                .contains("kubectl kms-sts expose"),
            "{}: {failed:#}",
            mistake.label
        );
    }
}

#[test]
fn a_certificate_that_misses_a_host_or_nears_its_end_is_reported() {
    // No controller re-issues legacy certificates here, so what the secret
    // holds stays as the test leaves it.
    let test = cluster("legacy");
    let ns = fresh_namespaces(test, "datapath-cert-drift");
    let [host, second] = hosts_of(&ns);
    expose(test, &ns, &[second.as_str()], &[]);
    test.issue_legacy_certificate_for_days(&ns.1, "istio-ingressgateway-certs", 10);
    let (_, report) = status(test, &ns, &[]);
    let near = status_check(&report, "certificate hosts");
    assert_eq!(near["result"], "warn", "{near:#}");
    assert!(
        near["message"].as_str().unwrap().contains("expires on"),
        "{near:#}"
    );
    assert!(
        near["hint"]
            .as_str()
            .unwrap()
            .contains("describe certificate")
    );

    // Another host is added; the secret still holds the old certificate.
    expose(test, &ns, &[second.as_str(), host.as_str()], &[]);
    let (code, report) = status(test, &ns, &[]);
    assert_eq!(code, CHECKS_FAILED);
    let missing = status_check(&report, "certificate hosts");
    assert_eq!(missing["result"], "fail", "{missing:#}");
    assert!(
        missing["message"]
            .as_str()
            .unwrap()
            .contains(&format!("does not cover {host}")),
        "{missing:#}"
    );
    let (code, verified) = test.datapath(&ns, &[host.as_str()]);
    assert_eq!(code, 1, "{verified:#}");
    assert!(
        verified["requests"][0]["downstream"]["handshake"]
            .as_str()
            .unwrap()
            .contains(host.as_str()),
        "{verified:#}"
    );

    // Issued again for both hosts: everything on the path passes.
    test.issue_legacy_certificate(&ns.1, "istio-ingressgateway-certs");
    let (_, report) = status(test, &ns, &[]);
    assert_eq!(status_check(&report, "certificate hosts")["result"], "pass");
    let (code, verified) = test.datapath(&ns, &[second.as_str(), host.as_str()]);
    assert_eq!(code, 0, "{verified:#}");
}

#[test]
fn expose_refuses_a_ca_that_did_not_sign_kms_certificate_and_writes_nothing() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "datapath-wrong-ca");
    let host = host_of(&ns);
    let wrong_ca = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/values/testdata/other-ca.crt"
    );
    let out = run(test.kubectl().args([
        "create",
        "secret",
        "generic",
        "their-ca",
        "-n",
        &ns.0,
        &format!("--from-file=ca.crt={wrong_ca}"),
    ]));
    assert_exit(&out, 0);
    for (args, says) in [
        (
            vec!["--upstream-ca-secret", "their-ca"],
            "the CA given did not sign kms-api's certificate",
        ),
        (vec!["--upstream-ca-secret", "no-such-secret"], "Secret"),
        (
            vec!["--gateway-selector", "istio=no-such-gateway"],
            "has the gateway label istio=no-such-gateway",
        ),
    ] {
        let out = run(plugin_in(test, &ns)
            .args(["expose", "--host", host.as_str()])
            .args(&args));
        assert_exit(&out, MISSING_PREREQUISITE);
        let err = stderr(&out);
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(err.contains("hint: "), "{err}");
        assert!(!err.contains("Some("), "{err}");
    }
    assert_eq!(test.object_names(&ns.0, "gateways.networking.istio.io"), "");
    assert_eq!(test.object_names(&ns.1, "certificates.cert-manager.io"), "");
    let out = run(test.kubectl().args([
        "get",
        "secret",
        "istio-ingressgateway-ca-certs",
        "-n",
        &ns.1,
    ]));
    assert!(!out.status.success(), "the CA Secret was not written");
}
