//! `wizard` replayed from an answers file on the real test cluster: it runs
//! the whole chain and ends with a passing status, a replay changes nothing,
//! bad answers are refused with the field named, and neither the saved
//! answers nor any output holds the key.

mod support;

use std::os::unix::fs::PermissionsExt;

use base64::Engine;
use support::{
    TestCluster, assert_exit, cluster, give_load_balancer_address, istioctl_binary,
    own_gateway_namespaces, plugin, plugin_in, run, run_with_stdin, scratch_dir, stderr, stdout,
};

const USAGE: i32 = 2;

fn answers(ns: &(String, String)) -> String {
    format!(
        "kmsNamespace: {}\nistioNamespace: {}\nhosts: [10.9.8.7, kms.example.com]\n\
         gatewaySelector: istio=ingressgateway-{}\n\
         sourceCrn: 'crn:v1:staging:public:sts:us-south:a/1234:123456789::'\n\
         targetCrns: ['crn:v1:icp:private:kms:mycluster:n/kube-system:0d705d95-e216-4ce4-9c81-38eeef4eee3b::']\n",
        ns.0, ns.1, ns.1
    )
}

/// `answers` with another gateway label.
fn answers_selecting(ns: &(String, String), selector: &str) -> String {
    answers(ns).replace(
        &format!("gatewaySelector: istio=ingressgateway-{}", ns.1),
        &format!("gatewaySelector: {selector}"),
    )
}

fn wizard(test: &TestCluster, file: &std::path::Path) -> std::process::Command {
    let mut command = test.plugin();
    command
        .args(["wizard", "--yes", "--apikey-from-stdin", "--answers"])
        .arg(file)
        .arg("--istioctl")
        .arg(istioctl_binary())
        .arg("--backup-dir")
        .arg(scratch_dir("wizard-backups"));
    command
}

/// The wizard with the answers in `file` and a key on stdin, told to run an
/// istioctl that does not exist.
fn wizard_without_istioctl(test: &TestCluster, file: &std::path::Path) -> std::process::Output {
    run_with_stdin(
        test.plugin()
            .args(["wizard", "--yes", "--apikey-from-stdin", "--answers"])
            .arg(file)
            .args(["--istioctl", "/nonexistent/istioctl"]),
        b"some-key",
    )
}

/// Replays `file` with `key` on stdin, saving the answers to `saved`; the
/// run must end with every check passing.
fn replay_to_a_passing_setup(
    test: &TestCluster,
    file: &std::path::Path,
    saved: &std::path::Path,
    key: &[u8],
) {
    let out = run_with_stdin(wizard(test, file).arg("--save-answers").arg(saved), key);
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("Status: 24 passed, 1 warning, 0 failed"),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn replays_answers_to_a_passing_setup_without_leaking_the_key() {
    let test = cluster("modern");
    let ns = own_gateway_namespaces(test, "wizard-replay");
    let dir = scratch_dir("wizard-answers");
    let file = dir.join("answers.yaml");
    std::fs::write(&file, answers(&ns)).unwrap();
    let saved = dir.join("saved.yaml");
    let key = "sentinel-wizard-Qm4x9";

    let out = run_with_stdin(
        wizard(test, &file).arg("--save-answers").arg(&saved),
        key.as_bytes(),
    );
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains("Status: 24 passed, 1 warning, 0 failed"),
        "{text}\n{}",
        stderr(&out)
    );
    let err = stderr(&out);
    assert!(err.contains("Plan for context"), "{err}");
    for form in [
        key.to_owned(),
        base64::engine::general_purpose::STANDARD.encode(key),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key),
    ] {
        assert!(!text.contains(&form) && !err.contains(&form));
        assert!(!std::fs::read_to_string(&saved).unwrap().contains(&form));
    }
    assert_eq!(
        std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        std::fs::read_to_string(&saved)
            .unwrap()
            .contains("context: kms-sts-admin@kms-sts-modern")
    );

    // The saved answers replay, and change nothing the second time.
    let generation = test.kms_generation(&ns.0);
    let out = run_with_stdin(&mut wizard(test, &saved), key.as_bytes());
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("secret/sts-apikey unchanged"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("nothing changed"), "{}", stderr(&out));
    assert_eq!(test.kms_generation(&ns.0), generation);

    // After an in-place Istio upgrade, the plan shows the refresh (old
    // image -> new image, the revision) and carries it out.
    let proxy = test.jsonpath(
        &ns.0,
        "deployment/key-management-api",
        "{.spec.template.spec.containers[?(@.name==\"istio-proxy\")].image}",
    );
    test.set_proxy_version(&ns.1, "istio-sidecar-injector", "docker.io/istio", "1.32.0");
    let out = run_with_stdin(&mut wizard(test, &saved), key.as_bytes());
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains(&format!(
            "2. inject: refresh the istio-proxy sidecar of deployment {}/key-management-api in \
             place (istio-proxy {proxy} -> docker.io/istio/proxyv2:1.32.0, revision default; \
             rolling update)",
            ns.0
        )),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("Status: 24 passed, 1 warning, 0 failed"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn the_plan_shows_each_field_that_changes_before_anything_is_written() {
    let test = cluster("modern");
    let ns = own_gateway_namespaces(test, "wizard-plan-diff");
    let dir = scratch_dir("wizard-plan-diff");
    let first = dir.join("first.yaml");
    std::fs::write(&first, answers(&ns)).unwrap();
    let key = "sentinel-plan-diff-Hk2";
    let out = run_with_stdin(&mut wizard(test, &first), key.as_bytes());
    assert_exit(&out, 0);
    let err = stderr(&out);
    for object in [
        "certificate.cert-manager.io/istio-ingressgateway-certs: create",
        "gateway.networking.istio.io/kmsgateway: create",
        "identitymappingpolicy.policy.ibm.com/stspolicy: create",
    ] {
        assert!(err.contains(object), "{err}");
    }
    assert!(
        err.contains(&format!(
            "1. set-apikey: store key sha256:{} in secret {}/sts-apikey (was empty)",
            &sha256_hex(key)[..8],
            ns.1
        )),
        "{err}"
    );

    // One host fewer and another target: the plan names exactly those
    // fields, and the run changes exactly them.
    let second = dir.join("second.yaml");
    std::fs::write(
        &second,
        answers(&ns)
            .replace("[10.9.8.7, kms.example.com]", "[10.9.8.7]")
            .replace("0d705d95", "1e816e06"),
    )
    .unwrap();
    let gateway_version = test.jsonpath(
        &ns.0,
        "gateways.networking.istio.io/kmsgateway",
        "{.metadata.resourceVersion}",
    );
    let out = run_with_stdin(&mut wizard(test, &second), key.as_bytes());
    assert_exit(&out, 0);
    let err = stderr(&out);
    let plan = &err[err.find("Plan for context").expect("a plan")..];
    for line in [
        "1. set-apikey: key sha256:",
        "is already stored in secret",
        "certificate.cert-manager.io/istio-ingressgateway-certs: update\n       spec.dnsNames: [\"kms.example.com\"] -> (removed)",
        "gateway.networking.istio.io/kmsgateway: unchanged",
        "identitymappingpolicy.policy.ibm.com/stspolicy: update\n       spec.targetResources[0]: \"crn:v1:icp:private:kms:mycluster:n/kube-system:0d705d95-",
        "-> \"crn:v1:icp:private:kms:mycluster:n/kube-system:1e816e06-",
    ] {
        assert!(plan.contains(line), "{line}\n{plan}");
    }
    assert_eq!(
        test.jsonpath(
            &ns.0,
            "gateways.networking.istio.io/kmsgateway",
            "{.metadata.resourceVersion}",
        ),
        gateway_version
    );
    assert_eq!(
        test.jsonpath(
            &ns.1,
            "certificates.cert-manager.io/istio-ingressgateway-certs",
            "{.spec.dnsNames}",
        ),
        ""
    );
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[test]
fn without_a_terminal_it_names_the_answers_flag() {
    let test = cluster("modern");
    let out = run(test.plugin().arg("wizard"));
    assert_exit(&out, USAGE);
    let err = stderr(&out);
    assert!(err.contains("the wizard needs a terminal"), "{err}");
    assert!(err.contains("--answers FILE --yes"), "{err}");

    let out = run(plugin().args(["wizard", "--yes"]));
    assert_exit(&out, USAGE);
}

#[test]
fn answers_choose_the_gateway_and_the_ca_kms_is_verified_against() {
    let test = cluster("modern");
    let ns = own_gateway_namespaces(test, "wizard-gateway");
    let dir = scratch_dir("wizard-gateway");
    // The CA is named by the answers: the ca.crt of kms-api's own TLS secret.
    let file = dir.join("answers.yaml");
    std::fs::write(
        &file,
        format!(
            "{}upstreamCaSecret: kms-api-tls\n",
            answers_selecting(&ns, &format!("istio=ingress-{}", ns.1))
        ),
    )
    .unwrap();
    let saved = dir.join("saved.yaml");
    replay_to_a_passing_setup(test, &file, &saved, b"gateway-key");
    assert_eq!(
        test.jsonpath(
            &ns.0,
            "gateways.networking.istio.io/kmsgateway",
            "{.spec.selector.istio} {.spec.servers[0].tls.credentialName}"
        ),
        format!("ingress-{} istio-ingressgateway-certs", ns.1)
    );
    let saved = std::fs::read_to_string(&saved).unwrap();
    assert!(
        saved.contains(&format!("gatewaySelector: istio=ingress-{}", ns.1)),
        "{saved}"
    );
    assert!(saved.contains("upstreamCaSecret: kms-api-tls"), "{saved}");
    let (code, verified) = test.datapath(&ns, &["10.9.8.7", "kms.example.com"]);
    assert_eq!(code, 0, "{verified:#}");

    // A CA secret that does not exist is named, with the answers field.
    let ns = own_gateway_namespaces(test, "wizard-gateway-ca");
    std::fs::write(
        &file,
        format!("{}upstreamCaSecret: no-such-ca\n", answers(&ns)),
    )
    .unwrap();
    let out = run_with_stdin(&mut wizard(test, &file), b"gateway-key");
    assert_exit(&out, 6);
    assert!(stderr(&out).contains("no-such-ca"), "{}", stderr(&out));
    assert_eq!(test.kms_generation(&ns.0), "1");
}

#[test]
fn answers_choose_the_gateway_api() {
    let test = cluster("modern");
    let ns = own_gateway_namespaces(test, "wizard-gateway-api");
    let dir = scratch_dir("wizard-gateway-api");
    let file = dir.join("answers.yaml");
    std::fs::write(&file, format!("{}api: gateway-api\n", answers(&ns))).unwrap();
    let saved = dir.join("saved.yaml");
    // What a cloud's load balancer does for the Service istiod makes for
    // the Gateway, once it is there.
    let istio_namespace = ns.1.clone();
    let load_balancer = std::thread::spawn(move || {
        give_load_balancer_address(
            cluster("modern"),
            &istio_namespace,
            "kms-gateway-istio",
            "10.9.8.7",
        );
    });
    let out = run_with_stdin(
        wizard(test, &file).arg("--save-answers").arg(&saved),
        b"gateway-api-key",
    );
    load_balancer.join().unwrap();
    assert_exit(&out, 0);
    let report = stdout(&out);
    for passed in [
        format!(
            "√ Gateway: {}/kms-gateway programmed by istiod at 10.9.8.7",
            ns.1
        ),
        "√ HTTPRoute".to_owned(),
        "√ BackendTLSPolicy".to_owned(),
        "√ upstream trust".to_owned(),
    ] {
        assert!(report.contains(&passed), "{passed}: {report}");
    }
    assert_eq!(
        test.object_names(&ns.0, "httproutes.gateway.networking.k8s.io")
            .trim(),
        "httproute.gateway.networking.k8s.io/kms-api"
    );
    assert_eq!(test.object_names(&ns.0, "gateways.networking.istio.io"), "");
    let saved = std::fs::read_to_string(&saved).unwrap();
    assert!(saved.contains("api: gateway-api"), "{saved}");
}

#[test]
fn a_missing_secret_is_met_with_a_command_the_wizard_does_not_need_flags_for() {
    let test = cluster("modern");
    let ns = own_gateway_namespaces(test, "wizard-no-secret");
    let out = run(test
        .kubectl()
        .args(["delete", "secret", "sts-apikey", "-n", &ns.1]));
    assert_exit(&out, 0);
    let file = scratch_dir("wizard-no-secret").join("answers.yaml");
    std::fs::write(&file, answers(&ns)).unwrap();
    let out = run_with_stdin(&mut wizard(test, &file), b"some-key");
    assert_exit(&out, 6);
    let err = stderr(&out);
    assert!(!err.contains("pass --create"), "{err}");
    assert!(
        err.contains(&format!(
            "`kubectl kms-sts set-apikey --create --kubeconfig {} --kms-namespace {} \
             --istio-namespace {}`",
            test.kubeconfig.display(),
            ns.0,
            ns.1
        )),
        "{err}"
    );
    assert_eq!(test.kms_generation(&ns.0), "1");
}

#[test]
fn what_inject_needs_is_checked_before_the_key_is_written() {
    let test = cluster("modern");
    let ns = own_gateway_namespaces(test, "wizard-no-istioctl");
    let file = scratch_dir("wizard-no-istioctl").join("answers.yaml");
    std::fs::write(&file, answers(&ns)).unwrap();
    let out = wizard_without_istioctl(test, &file);
    assert_exit(&out, 6);
    let err = stderr(&out);
    assert!(err.contains("istioctl"), "{err}");
    assert!(!err.contains("Plan for context"), "{err}");
    assert_eq!(
        test.jsonpath(&ns.1, "secret/sts-apikey", "{.data.apikey}"),
        ""
    );
    assert_eq!(test.kms_generation(&ns.0), "1");
}

#[test]
fn every_unmet_prerequisite_of_every_step_is_named_before_the_confirmation() {
    let test = cluster("modern");
    let ns = own_gateway_namespaces(test, "wizard-unmet");
    let file = scratch_dir("wizard-unmet").join("answers.yaml");
    // Three steps cannot run: inject lacks istioctl, expose's issuer does not
    // exist, and the Secret the key goes into is gone.
    std::fs::write(&file, format!("{}issuer: no-such-issuer\n", answers(&ns))).unwrap();
    let deleted = run(test
        .kubectl()
        .args(["delete", "secret", "sts-apikey", "-n", &ns.1]));
    assert_exit(&deleted, 0);
    let offset = test.audit_offset();
    let out = wizard_without_istioctl(test, &file);
    assert_exit(&out, 6);
    let err = stderr(&out);
    assert!(err.contains("3 prerequisites are not met"), "{err}");
    assert!(err.contains("/nonexistent/istioctl"), "{err}");
    assert!(err.contains("no-such-issuer"), "{err}");
    assert!(err.contains("sts-apikey"), "{err}");
    assert!(err.contains("set-apikey --create"), "{err}");
    assert!(!err.contains("Plan for context"), "{err}");
    assert_eq!(test.kms_generation(&ns.0), "1");
    let writes: Vec<String> = test
        .audit_events_since(offset)
        .into_iter()
        .filter(|e| {
            e["userAgent"]
                .as_str()
                .is_some_and(|a| a.starts_with("kubectl-kms-sts/"))
        })
        // This pair's objects only: the tests beside it write their own.
        .filter(|e| {
            let namespace = e["objectRef"]["namespace"].as_str().unwrap_or_default();
            namespace == ns.0 || namespace == ns.1
        })
        .filter(|e| {
            let verb = e["verb"].as_str().unwrap_or_default();
            ["create", "update", "patch", "delete"].contains(&verb)
                && !e["objectRef"]["resource"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("selfsubject")
        })
        .map(|e| e["requestURI"].to_string())
        .collect();
    assert_eq!(writes, Vec::<String>::new());
}

#[test]
fn bad_answers_are_refused_with_the_field_named_and_nothing_written() {
    let test = cluster("modern");
    let ns = own_gateway_namespaces(test, "wizard-bad");
    let dir = scratch_dir("wizard-bad");
    let cases = [
        (
            format!("{}apiKey: plain-text-key\n", answers(&ns)),
            "unknown field `apiKey`",
        ),
        (answers(&ns).replace("10.9.8.7", "10.9.8"), "hosts[0]"),
        (answers(&ns).replace(":kms:", ":sts:"), "targetCrns[0]"),
        (
            answers(&ns).replace("hosts: [10.9.8.7, kms.example.com]", "hosts: {a: 1}"),
            "invalid answers",
        ),
        (answers_selecting(&ns, "istio"), "gatewaySelector"),
        (answers_selecting(&ns, "istio=no-such-gateway"), "no pod in"),
        (format!("{}api: gateway\n", answers(&ns)), "api"),
    ];
    for (index, (text, field)) in cases.iter().enumerate() {
        let file = dir.join(format!("answers-{index}.yaml"));
        std::fs::write(&file, text).unwrap();
        let out = run_with_stdin(&mut wizard(test, &file), b"some-key");
        assert_exit(&out, USAGE);
        assert!(stderr(&out).contains(field), "{field}: {}", stderr(&out));
    }
    // A missing key when the secret is empty.
    let file = dir.join("answers-ok.yaml");
    std::fs::write(&file, answers(&ns)).unwrap();
    let out = run(plugin_in(test, &ns)
        .args(["wizard", "--yes", "--answers"])
        .arg(&file));
    assert_exit(&out, USAGE);
    assert!(
        stderr(&out).contains("no API key given"),
        "{}",
        stderr(&out)
    );

    assert_eq!(
        test.jsonpath(&ns.1, "secret/sts-apikey", "{.data.apikey}"),
        ""
    );
    assert_eq!(test.kms_generation(&ns.0), "1");
}

#[test]
fn answers_name_the_objects_where_an_installation_differs_from_the_runbook() {
    let test = cluster("modern");
    let ns = own_gateway_namespaces(test, "wizard-names");
    // This installation's KMS Deployment has another name.
    let out = run(test.kubectl().args([
        "get",
        "deployment",
        "key-management-api",
        "-n",
        &ns.0,
        "-o",
        "json",
    ]));
    assert_exit(&out, 0);
    let mut deployment: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let meta = deployment["metadata"].as_object_mut().unwrap();
    meta.insert("name".into(), "kms-api-server".into());
    for field in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "generation",
        "managedFields",
    ] {
        meta.remove(field);
    }
    deployment.as_object_mut().unwrap().remove("status");
    let dir = scratch_dir("wizard-names");
    let renamed = dir.join("renamed.json");
    std::fs::write(&renamed, deployment.to_string()).unwrap();
    let out = run(test.kubectl().args(["create", "-f"]).arg(&renamed));
    assert_exit(&out, 0);
    let out = run(test.kubectl().args([
        "delete",
        "deployment",
        "key-management-api",
        "-n",
        &ns.0,
        // Its pods go first: they carry the same labels as the renamed one's.
        "--cascade=foreground",
        "--wait",
    ]));
    assert_exit(&out, 0);

    let file = dir.join("answers.yaml");
    let named = format!(
        "{}deployment: kms-api-server\npolicy: sts-to-kms\n",
        answers(&ns)
    );
    std::fs::write(&file, named).unwrap();
    let saved = dir.join("saved.yaml");
    replay_to_a_passing_setup(test, &file, &saved, b"sentinel-names-key");
    let saved = std::fs::read_to_string(&saved).unwrap();
    assert!(
        saved.contains("deployment: kms-api-server") && saved.contains("policy: sts-to-kms"),
        "{saved}"
    );
    assert!(
        test.jsonpath(
            &ns.0,
            "deployment/kms-api-server",
            "{.spec.template.spec.containers[*].name}"
        )
        .contains("istio-proxy")
    );
    assert_eq!(
        test.object_names(&ns.1, "identitymappingpolicies"),
        "identitymappingpolicy.policy.ibm.com/sts-to-kms\n"
    );
    // status takes the same names as flags.
    let out = run(plugin_in(test, &ns).args([
        "status",
        "--deployment",
        "kms-api-server",
        "--policy",
        "sts-to-kms",
    ]));
    assert_exit(&out, 0);
}

#[test]
fn a_wizard_run_discovers_the_served_apis_once() {
    let test = cluster("modern");
    let ns = own_gateway_namespaces(test, "wizard-once");
    // A user of its own, so that its requests can be told apart in the
    // audit log from those of tests running alongside.
    let user = format!("wizard-once-{}", std::process::id());
    let kubeconfig = test.user_kubeconfig(&user);
    let out = run(test.kubectl().args([
        "create",
        "clusterrolebinding",
        &user,
        "--clusterrole=cluster-admin",
        &format!("--user={user}"),
    ]));
    assert_exit(&out, 0);
    let file = scratch_dir("wizard-once").join("answers.yaml");
    std::fs::write(&file, answers(&ns)).unwrap();

    let offset = test.audit_offset();
    let mut command = support::plugin_as(&kubeconfig, &ns);
    command
        .args(["wizard", "--yes", "--apikey-from-stdin", "--answers"])
        .arg(&file)
        .arg("--istioctl")
        .arg(istioctl_binary())
        .arg("--backup-dir")
        .arg(scratch_dir("wizard-once-backups"));
    let out = run_with_stdin(&mut command, b"sentinel-once-key");
    assert_exit(&out, 0);
    let discoveries: Vec<String> = test
        .audit_events_since(offset)
        .iter()
        .filter(|e| e["user"]["username"] == user.as_str())
        .filter(|e| e["requestURI"] == "/apis" || e["requestURI"] == "/api")
        .map(|e| {
            format!(
                "{} {}",
                e["verb"].as_str().unwrap(),
                e["requestURI"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(discoveries, ["get /apis"], "one discovery per run");
}
