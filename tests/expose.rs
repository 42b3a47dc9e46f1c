//! `expose` against the real test cluster: the objects the real API server
//! accepted read back with the right fields and API versions in both
//! profiles, the modern profile's cert-manager issues the certificate, re-runs
//! change nothing, another manager's fields are not taken silently, and bad
//! input writes nothing.

mod support;

use support::{
    Gateways, TestCluster, assert_exit, cluster, own_gateway_namespaces, plugin_in, run, stderr,
    stdout,
};

const USAGE: i32 = 2;
const MISSING: i32 = 6;
const CONFLICT: i32 = 7;

/// `expose` for an IP address and a name, on the pair's own gateway: an IP
/// address makes KMS claim `*` there, which no other pair's Gateway may.
fn expose(test: &TestCluster, ns: &(String, String)) -> std::process::Command {
    let mut command = plugin_in(test, ns);
    command.args([
        "expose",
        "--host",
        "9.42.136.50",
        "--host",
        "kms.example.com",
        "--gateway-selector",
        &Gateways::of(ns).files,
    ]);
    command
}

fn resource_version(test: &TestCluster, ns: &str, object: &str) -> String {
    test.jsonpath(ns, object, "{.metadata.resourceVersion}")
}

#[test]
fn creates_the_four_objects_at_the_served_versions_in_both_profiles() {
    for (profile, cert_api, istio_api) in [
        ("modern", "cert-manager.io/v1", "networking.istio.io/v1"),
        (
            "legacy",
            "certmanager.k8s.io/v1alpha1",
            "networking.istio.io/v1alpha3",
        ),
    ] {
        let test = cluster(profile);
        let ns = own_gateway_namespaces(test, "expose-create");
        let out = run(&mut expose(test, &ns));
        assert_exit(&out, 0);
        let err = stderr(&out);
        assert!(
            err.contains("gateway.networking.istio.io/kmsgateway created"),
            "{err}"
        );

        let cert = format!(
            "certificates.{}/istio-ingressgateway-certs",
            cert_api.split('/').next().unwrap()
        );
        assert_eq!(test.jsonpath(&ns.1, &cert, "{.apiVersion}"), cert_api);
        assert_eq!(
            test.jsonpath(&ns.1, &cert, "{.spec.ipAddresses}"),
            r#"["9.42.136.50"]"#
        );
        assert_eq!(
            test.jsonpath(&ns.1, &cert, "{.spec.dnsNames}"),
            r#"["kms.example.com"]"#
        );
        assert_eq!(
            test.jsonpath(&ns.1, &cert, "{.spec.commonName}"),
            "istio-service"
        );
        assert_eq!(
            test.jsonpath(&ns.1, &cert, "{.spec.issuerRef.name}"),
            "icp-ca-issuer"
        );

        let vs = "virtualservices.networking.istio.io/kmsvservice";
        assert_eq!(
            test.jsonpath(&ns.0, vs, "{.apiVersion}"),
            istio_api,
            "{profile}"
        );
        assert_eq!(
            test.jsonpath(
                &ns.0,
                vs,
                "{.spec.http[0].route[0].destination.port.number}"
            ),
            "28674"
        );
        assert_eq!(
            test.jsonpath(&ns.0, vs, "{.spec.http[0].rewrite.uri}"),
            "/api"
        );
        assert_eq!(
            test.jsonpath(&ns.0, vs, "{.spec.gateways[0]}"),
            "kmsgateway"
        );
        let gw = "gateways.networking.istio.io/kmsgateway";
        assert_eq!(
            test.jsonpath(&ns.0, gw, "{.spec.servers[0].tls.mode}"),
            "SIMPLE"
        );
        assert_eq!(
            test.jsonpath(&ns.0, gw, "{.spec.selector.istio}"),
            format!("ingressgateway-{}", ns.1)
        );
        let dr = "destinationrules.networking.istio.io/kms-api-tls";
        assert_eq!(test.jsonpath(&ns.0, dr, "{.spec.host}"), "kms-api");

        // Second run: nothing changes, and it says so.
        let versions: Vec<String> = [vs, gw, dr]
            .iter()
            .map(|o| resource_version(test, &ns.0, o))
            .collect();
        let out = run(&mut expose(test, &ns));
        assert_exit(&out, 0);
        assert!(stderr(&out).contains("nothing changed"), "{}", stderr(&out));
        let after: Vec<String> = [vs, gw, dr]
            .iter()
            .map(|o| resource_version(test, &ns.0, o))
            .collect();
        assert_eq!(versions, after);

        // The update strategy agrees that nothing is to change.
        let out = run(expose(test, &ns).args(["--apply-strategy", "update"]));
        assert_exit(&out, 0);
        assert!(stderr(&out).contains("nothing changed"), "{}", stderr(&out));
    }
}

#[test]
fn cert_manager_issues_the_certificate_for_the_ip() {
    let test = cluster("modern");
    let ns = own_gateway_namespaces(test, "expose-issue");
    assert_exit(&run(&mut expose(test, &ns)), 0);
    test.wait_for_gateway_certificate(&ns);
    let crt = test.jsonpath(
        &ns.1,
        "secret/istio-ingressgateway-certs",
        "{.data.tls\\.crt}",
    );
    assert!(!crt.is_empty());
}

#[test]
fn the_route_follows_the_services_port() {
    let test = cluster("modern");
    let ns = own_gateway_namespaces(test, "expose-port");
    let patched = run(test.kubectl().args([
        "patch",
        "service",
        "kms-api",
        "-n",
        &ns.0,
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/ports/0/port","value":30443}]"#,
    ]));
    assert_exit(&patched, 0);
    assert_exit(&run(&mut expose(test, &ns)), 0);
    let vs = "virtualservices.networking.istio.io/kmsvservice";
    assert_eq!(
        test.jsonpath(
            &ns.0,
            vs,
            "{.spec.http[0].route[0].destination.port.number}"
        ),
        "30443"
    );

    let out = run(expose(test, &ns).args(["--port", "28674"]));
    assert_exit(&out, USAGE);
    assert!(
        stderr(&out).contains("the Service has no port 28674 (its ports: 30443)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn another_managers_field_is_reported_not_overwritten() {
    let test = cluster("modern");
    let ns = own_gateway_namespaces(test, "expose-conflict");
    assert_exit(&run(&mut expose(test, &ns)), 0);
    let other = format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: kms-api-tls\n  namespace: {}\nspec:\n  host: kms-api\n  trafficPolicy:\n    tls:\n      mode: DISABLE\n",
        ns.0
    );
    let mut apply = test.kubectl();
    apply.args([
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager",
        "someone-else",
        "-f",
        "-",
    ]);
    assert_exit(&support::run_with_stdin(&mut apply, other.as_bytes()), 0);

    let out = run(&mut expose(test, &ns));
    assert_exit(&out, CONFLICT);
    let err = stderr(&out);
    assert!(
        err.contains(
            "destinationrule.networking.istio.io/kms-api-tls has fields owned by another manager"
        ),
        "{err}"
    );
    assert!(err.contains("someone-else"), "{err}");
    assert!(err.contains("--force-conflicts"), "{err}");
    let dr = "destinationrules.networking.istio.io/kms-api-tls";
    assert_eq!(
        test.jsonpath(&ns.0, dr, "{.spec.trafficPolicy.tls.mode}"),
        "DISABLE"
    );

    let out = run(expose(test, &ns).arg("--force-conflicts"));
    assert_exit(&out, 0);
    assert_eq!(
        test.jsonpath(&ns.0, dr, "{.spec.trafficPolicy.tls.mode}"),
        "SIMPLE"
    );
}

#[test]
fn yaml_output_is_accepted_by_kubectl_apply() {
    for profile in ["modern", "legacy"] {
        let test = cluster(profile);
        let ns = own_gateway_namespaces(test, "expose-yaml");
        let out = run(expose(test, &ns).args(["--dry-run=client", "-o", "yaml"]));
        assert_exit(&out, 0);
        let manifest = stdout(&out);
        assert_eq!(manifest.matches("---\n").count(), 4, "{manifest}");
        // Nothing was written by the dry run.
        assert_eq!(test.object_names(&ns.0, "gateways.networking.istio.io"), "");
        // Through the Gateway API: the modern cluster's CRDs (their schemas
        // and validation rules) accept every object; the legacy one serves
        // no Gateway API, and says so.
        let out =
            run(expose(test, &ns).args(["--api", "gateway-api", "--dry-run=client", "-o", "yaml"]));
        if profile == "legacy" {
            assert_exit(&out, MISSING);
            let err = stderr(&out);
            assert!(err.contains("gateway.networking.k8s.io/v1"), "{err}");
            assert!(err.contains("--api istio"), "{err}");
        } else {
            assert_exit(&out, 0);
            let manifest = stdout(&out);
            for kind in [
                "Certificate",
                "Gateway",
                "ConfigMap",
                "BackendTLSPolicy",
                "HTTPRoute",
            ] {
                assert!(manifest.contains(&format!("kind: {kind}\n")), "{manifest}");
            }
            let mut apply = test.kubectl();
            apply.args(["apply", "--dry-run=server", "-f", "-"]);
            let applied = support::run_with_stdin(&mut apply, manifest.as_bytes());
            assert_exit(&applied, 0);
        }
        let mut apply = test.kubectl();
        apply.args(["apply", "-f", "-"]);
        let applied = support::run_with_stdin(&mut apply, manifest.as_bytes());
        assert_exit(&applied, 0);
        assert_eq!(
            stdout(&applied)
                .lines()
                .filter(|l| l.ends_with(" created"))
                .count(),
            5,
            "{}",
            stdout(&applied)
        );

        let out = run(expose(test, &ns).args(["--dry-run=client", "-o", "json"]));
        assert_exit(&out, 0);
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(list["kind"], "List");
        assert_eq!(list["items"].as_array().unwrap().len(), 5);

        // Exposed through Istio's APIs now, by kubectl: a move to the
        // Gateway API needs the Service clients reach the gateway at, and
        // takes out only what the plugin alone manages.
        if profile == "modern" {
            let out = run(expose(test, &ns).args(["--api", "gateway-api"]));
            assert_exit(&out, USAGE);
            assert!(
                stderr(&out).contains("--gateway-service"),
                "{}",
                stderr(&out)
            );
            let out = run(expose(test, &ns).args([
                "--api",
                "gateway-api",
                "--gateway-service",
                "istio-ingressgateway",
            ]));
            assert_exit(&out, CONFLICT);
            let err = stderr(&out);
            assert!(
                err.contains("is managed by kubectl-client-side-apply too"),
                "{err}"
            );
            assert_eq!(
                test.object_names(&ns.0, "httproutes.gateway.networking.k8s.io"),
                ""
            );
        }
    }
}

#[test]
fn bad_input_and_missing_prerequisites_write_nothing() {
    let test = cluster("modern");
    let ns = own_gateway_namespaces(test, "expose-bad");
    let usage_cases: [(&[&str], &str); 7] = [
        (&["expose"], "--host <HOST>"),
        (
            &["expose", "--host", "9.42.136"],
            "neither an IP address nor a DNS name",
        ),
        (
            &["expose", "--host", "kms_api.local"],
            "neither an IP address nor a DNS name",
        ),
        (
            &[
                "expose",
                "--host",
                "10.0.0.1",
                "--common-name",
                "\u{201c}istio-service\u{201d}",
            ],
            "without quotes",
        ),
        (
            &["expose", "--host", "10.0.0.1", "--port", "0"],
            "0 is not in 1..=65535",
        ),
        (
            &["expose", "--host", "10.0.0.1", "--port", "70000"],
            "70000 is not in 1..=65535",
        ),
        (
            &["expose", "--host", "10.0.0.1", "--path-prefix", "kms/api"],
            "must start with '/'",
        ),
    ];
    for (args, message) in usage_cases {
        let out = run(plugin_in(test, &ns).args(args));
        assert_exit(&out, USAGE);
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }

    let out =
        run(plugin_in(test, &ns).args(["expose", "--host", "10.0.0.1", "--issuer", "nobody"]));
    assert_exit(&out, MISSING);
    assert!(
        stderr(&out).contains("ClusterIssuer cluster/nobody does not exist"),
        "{}",
        stderr(&out)
    );
    // A gateway Service that is not there: nothing is attached to it.
    let out = run(plugin_in(test, &ns).args([
        "expose",
        "--host",
        "10.0.0.1",
        "--api",
        "gateway-api",
        "--gateway-service",
        "istio-ingresgateway",
    ]));
    assert_exit(&out, MISSING);
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "Service {}/istio-ingresgateway does not exist",
            ns.1
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("`kubectl get services -n {}", ns.1)),
        "{err}"
    );
    assert_eq!(
        test.object_names(&ns.1, "gateways.gateway.networking.k8s.io"),
        ""
    );

    assert_exit(
        &run(test
            .kubectl()
            .args(["delete", "service", "kms-api", "-n", &ns.0])),
        0,
    );
    let out = run(plugin_in(test, &ns).args(["expose", "--host", "10.0.0.1"]));
    assert_exit(&out, MISSING);
    assert!(
        stderr(&out).contains(&format!("Service {}/kms-api does not exist", ns.0)),
        "{}",
        stderr(&out)
    );

    assert_eq!(
        test.object_names(
            &ns.0,
            "gateways.networking.istio.io,virtualservices.networking.istio.io"
        ),
        ""
    );
    assert_eq!(test.object_names(&ns.1, "certificates.cert-manager.io"), "");
}

#[test]
fn a_host_dropped_from_the_command_is_removed_from_the_certificate() {
    let test = cluster("modern");
    let ns = own_gateway_namespaces(test, "expose-drop-host");
    assert_exit(&run(&mut expose(test, &ns)), 0);
    let certificate = "certificates.cert-manager.io/istio-ingressgateway-certs";
    assert_eq!(
        test.jsonpath(&ns.1, certificate, "{.spec.dnsNames}"),
        r#"["kms.example.com"]"#
    );

    // Every field still wanted is already there; the one no longer wanted
    // is what makes the write.
    let by_ip_only = || {
        run(plugin_in(test, &ns).args([
            "expose",
            "--host",
            "9.42.136.50",
            "--gateway-selector",
            &Gateways::of(&ns).files,
        ]))
    };
    let out = by_ip_only();
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("certificate.cert-manager.io/istio-ingressgateway-certs configured"),
        "{}",
        stderr(&out)
    );
    assert_eq!(test.jsonpath(&ns.1, certificate, "{.spec.dnsNames}"), "");
    assert_eq!(
        test.jsonpath(&ns.1, certificate, "{.spec.ipAddresses}"),
        r#"["9.42.136.50"]"#
    );

    let out = by_ip_only();
    assert_exit(&out, 0);
    assert!(stderr(&out).contains("nothing changed"), "{}", stderr(&out));
}
