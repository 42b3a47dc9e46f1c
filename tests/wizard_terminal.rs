//! The wizard as a person uses it: in a real terminal (tmux), typing answers
//! at its prompts. Invalid input is refused inline, Ctrl-C at the plan leaves
//! the cluster untouched, and confirming runs the whole chain; a complete
//! setup can be uninstalled from it. Ctrl-C at uninstall's own question
//! deletes nothing.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{
    TestCluster, cluster, fresh_namespaces, host_of, istioctl_binary, plugin_binary, scratch_dir,
};

const SOURCE: &str = "crn:v1:staging:public:sts:us-south:a/1234:123456789::";
const TARGET: &str =
    "crn:v1:icp:private:kms:mycluster:n/kube-system:0d705d95-e216-4ce4-9c81-38eeef4eee3b::";

/// A wizard running in its own tmux server.
struct Terminal {
    socket: String,
}

impl Terminal {
    fn start(test: &TestCluster, ns: &(String, String), label: &str) -> Terminal {
        Terminal::run(
            label,
            &format!(
                "wizard --istioctl {} --backup-dir {}",
                istioctl_binary().display(),
                scratch_dir("wizard-terminal").display()
            ),
            test,
            ns,
        )
    }

    /// Runs the plugin with `arguments` (and the cluster and namespaces of
    /// `test` and `ns`) in a terminal of its own.
    fn run(label: &str, arguments: &str, test: &TestCluster, ns: &(String, String)) -> Terminal {
        let socket = format!("kms-sts-{label}-{}", std::process::id());
        let command = format!(
            "{} {arguments} --kubeconfig {} --kms-namespace {} --istio-namespace {}; echo EXIT=$?; sleep 60",
            plugin_binary().display(),
            test.kubeconfig.display(),
            ns.0,
            ns.1,
        );
        let status = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "new-session",
                "-d",
                "-x",
                "200",
                "-y",
                "60",
                &command,
            ])
            .status()
            .expect("tmux is installed (scripts/test installs it)");
        assert!(status.success());
        Terminal { socket }
    }

    /// The pane's text, lines the terminal wrapped joined again (`-J`), so a
    /// check reads what the program printed whatever the names' lengths.
    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-J", "-S", "-200"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {text:?}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn send(&self, keys: &[&str]) {
        let status = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys"])
            .args(keys)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

/// Every question of a fresh setup on the modern cluster, where the pair's
/// classic gateway pods run and the Gateway API is served: Istio's APIs
/// (the first choice) are kept.
fn answer_everything(term: &Terminal, host: &str) {
    answer_the_questions(term, host);
    term.wait_for("Expose KMS through");
    term.send(&["Enter"]);
    term.wait_for("Apply this plan?");
}

/// The questions asked of every fresh setup, with a mistake at two of them;
/// `host` is the gateway address given.
fn answer_the_questions(term: &Terminal, host: &str) {
    term.wait_for("STS API key:");
    term.send(&["interactive-sentinel-key", "Enter"]);
    term.wait_for("Gateway addresses");
    term.send(&["10.1.1", "Enter"]);
    term.wait_for("neither an IP address nor a DNS name");
    term.send(&["C-u", host, "Enter"]);
    term.wait_for("cert-manager ClusterIssuer");
    term.send(&["Enter"]);
    term.wait_for("Source CRN (STS):");
    term.send(&[
        "crn:v1:staging:public:sts:us-south:a/1234c123456789::",
        "Enter",
    ]);
    term.wait_for("this one has 9");
    term.send(&["C-u", SOURCE, "Enter"]);
    term.wait_for("Target CRN (KMS):");
    term.send(&[TARGET, "Enter"]);
}

#[test]
fn ctrl_c_at_the_plan_changes_nothing() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "wizard-cancel");
    let term = Terminal::start(test, &ns, "cancel");
    answer_everything(&term, &host_of(&ns));
    let screen = term.screen();
    assert!(
        !screen.contains("interactive-sentinel-key"),
        "the key is hidden:\n{screen}"
    );
    term.send(&["C-c"]);
    let screen = term.wait_for("EXIT=");
    assert!(
        screen.contains("cancelled; nothing was changed"),
        "{screen}"
    );
    assert!(screen.contains("EXIT=130"), "{screen}");
    assert_eq!(
        test.jsonpath(&ns.1, "secret/sts-apikey", "{.data.apikey}"),
        ""
    );
    assert_eq!(test.kms_generation(&ns.0), "1");
}

/// No pod of the pair carries the runbook's gateway label any more.
fn without_classic_gateway_pods(test: &support::TestCluster, ns: &(String, String)) {
    for args in [
        vec!["scale", "deployment/istio-ingressgateway", "--replicas=0"],
        vec![
            "wait",
            "--for=delete",
            "pod",
            "-l",
            "istio=ingressgateway",
            "--timeout=60s",
        ],
    ] {
        let out = support::run(test.kubectl().args(args).args(["-n", &ns.1]));
        support::assert_exit(&out, 0);
    }
}

#[test]
fn what_the_cluster_cannot_tell_about_the_gateway_is_asked_for() {
    // Legacy: kms-api's TLS secret is the harness's, not a controller's, so
    // it stays deleted.
    let test = cluster("legacy");
    let ns = fresh_namespaces(test, "wizard-ask-gateway");
    let kubectl = |args: &[&str]| {
        let out = support::run(test.kubectl().args(args));
        support::assert_exit(&out, 0);
        support::stdout(&out)
    };
    without_classic_gateway_pods(test, &ns);
    // kms-api's CA is kept in another secret; the one its pods mount is gone.
    let ca = kubectl(&[
        "get",
        "secret",
        "kms-api-tls",
        "-n",
        &ns.0,
        "-o",
        "jsonpath={.data.ca\\.crt}",
    ]);
    let copy = serde_json::json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "kms-ca", "namespace": ns.0}, "data": {"ca.crt": ca}});
    let out = support::run_with_stdin(
        test.kubectl().args(["apply", "-f", "-"]),
        copy.to_string().as_bytes(),
    );
    support::assert_exit(&out, 0);
    kubectl(&["delete", "secret", "kms-api-tls", "-n", &ns.0]);

    let term = Terminal::start(test, &ns, "ask-gateway");
    answer_the_questions(&term, &host_of(&ns));
    term.wait_for(&format!(
        "no pod in {} has the gateway label istio=ingressgateway",
        ns.1
    ));
    term.wait_for("Label of the ingress gateway pods");
    term.send(&["istio", "Enter"]);
    term.wait_for("is not LABEL=VALUE");
    term.send(&["C-u", "istio=ingress", "Enter"]);
    term.wait_for("mount no TLS secret");
    term.wait_for("whose ca.crt is the CA that signed kms-api's certificate");
    term.send(&["kms-ca", "Enter"]);
    let screen = term.wait_for("Apply this plan?");
    assert!(
        screen.contains("destinationrule.networking.istio.io/kms-api-tls: create"),
        "{screen}"
    );
    term.send(&["C-c"]);
    let screen = term.wait_for("EXIT=");
    assert!(screen.contains("EXIT=130"), "{screen}");
    assert_eq!(test.object_names(&ns.0, "gateways.networking.istio.io"), "");
}

#[test]
fn with_no_classic_gateway_pods_the_gateway_api_is_offered() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "wizard-ask-api");
    without_classic_gateway_pods(test, &ns);
    let term = Terminal::start(test, &ns, "ask-api");
    answer_the_questions(&term, &host_of(&ns));
    term.wait_for(&format!(
        "no pod in {} has the gateway label istio=ingressgateway",
        ns.1
    ));
    term.wait_for("the Gateway API, on a gateway istiod deploys for KMS");
    choose_the_gateway_api_then_cancel(test, &ns, &term);
}

/// At the question which API: the Gateway API; the plan shows its objects
/// and none of Istio's, and Ctrl-C there writes none of them.
fn choose_the_gateway_api_then_cancel(test: &TestCluster, ns: &(String, String), term: &Terminal) {
    term.send(&["Down", "Enter"]);
    let screen = term.wait_for("Apply this plan?");
    let plan = &screen[screen.find("Plan for context").expect("a plan")..];
    for object in [
        "(Gateway API), httproute and backendtlspolicy in",
        "httproute.gateway.networking.k8s.io/kms-api: create",
        "gateway.gateway.networking.k8s.io/kms-gateway: create",
    ] {
        assert!(plan.contains(object), "{object}: {plan}");
    }
    assert!(!plan.contains("virtualservice"), "{plan}");
    term.send(&["C-c"]);
    let screen = term.wait_for("EXIT=");
    assert!(screen.contains("EXIT=130"), "{screen}");
    assert_eq!(
        test.object_names(&ns.0, "httproutes.gateway.networking.k8s.io"),
        ""
    );
    assert_eq!(
        test.object_names(&ns.1, "gateways.gateway.networking.k8s.io"),
        ""
    );
}

#[test]
fn where_both_apis_can_serve_the_wizard_asks_which() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "wizard-either-api");
    let term = Terminal::start(test, &ns, "either-api");
    answer_the_questions(&term, &host_of(&ns));
    let screen = term.wait_for("Expose KMS through");
    assert!(
        screen.contains(&format!(
            "Istio's Gateway and VirtualService, on the 1 gateway pod in {} labelled \
             istio=ingressgateway",
            ns.1
        )),
        "{screen}"
    );
    choose_the_gateway_api_then_cancel(test, &ns, &term);
}

#[test]
fn confirming_runs_the_whole_chain() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "wizard-confirm");
    let term = Terminal::start(test, &ns, "confirm");
    answer_everything(&term, &host_of(&ns));
    term.send(&["y"]);
    let screen = term.wait_for("EXIT=");
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(
        screen.contains("Status: 24 passed, 1 warning, 0 failed"),
        "{screen}"
    );
    assert!(!screen.contains("interactive-sentinel-key"), "{screen}");
    assert!(
        test.jsonpath(
            &ns.0,
            "deployment/key-management-api",
            "{.spec.template.spec.containers[*].name}"
        )
        .contains("istio-proxy")
    );
}

#[test]
fn a_second_run_asks_only_for_what_is_missing() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "wizard-again");
    let first = Terminal::start(test, &ns, "first");
    answer_everything(&first, &host_of(&ns));
    first.send(&["y"]);
    assert!(first.wait_for("EXIT=").contains("EXIT=0"));
    drop(first);

    let again = Terminal::start(test, &ns, "again");
    again.wait_for("The setup is complete. What now?");
    again.send(&["Enter"]);
    let screen = again.wait_for("Apply this plan?");
    assert!(
        !screen.contains("STS API key:"),
        "the stored key is kept:\n{screen}"
    );
    assert!(
        screen.contains(&format!(
            "keeping the exposure: hosts {}, issuer icp-ca-issuer",
            host_of(&ns)
        )),
        "{screen}"
    );
    assert!(
        screen.contains(&format!(
            "keeping the identity mapping: {SOURCE} to {TARGET}"
        )),
        "{screen}"
    );
    assert!(
        screen.contains("1. set-apikey: keep the stored key"),
        "{screen}"
    );
    assert!(screen.contains("2. inject: already done"), "{screen}");
    again.send(&["y"]);
    let screen = again.wait_for("EXIT=");
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(screen.contains("nothing changed"), "{screen}");
}

#[test]
fn a_complete_setup_can_be_uninstalled_from_the_wizard() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "wizard-uninstall");
    let first = Terminal::start(test, &ns, "setup");
    answer_everything(&first, &host_of(&ns));
    first.send(&["y"]);
    assert!(first.wait_for("EXIT=").contains("EXIT=0"));
    drop(first);

    let term = Terminal::start(test, &ns, "uninstall");
    term.wait_for("The setup is complete. What now?");
    term.send(&["Down", "Enter"]);
    let plan = term.wait_for("Uninstall as planned?");
    assert!(
        plan.contains("delete   gateway.networking.istio.io/kmsgateway"),
        "{plan}"
    );
    term.send(&["y"]);
    let screen = term.wait_for("EXIT=");
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(screen.contains("without the Istio sidecar"), "{screen}");
    assert_eq!(
        test.object_names(
            &ns.0,
            "gateways.networking.istio.io,virtualservices,destinationrules"
        ),
        ""
    );
    assert!(
        !test
            .jsonpath(
                &ns.0,
                "deployment/key-management-api",
                "{.spec.template.spec.containers[*].name}"
            )
            .contains("istio-proxy")
    );
}

#[test]
fn ctrl_c_at_the_uninstall_question_deletes_nothing() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "uninstall-cancel");
    let out = support::run(support::plugin_in(test, &ns).args(["expose", "--host", &host_of(&ns)]));
    support::assert_exit(&out, 0);
    let term = Terminal::run("uninstall-cancel", "uninstall", test, &ns);
    let plan = term.wait_for("Uninstall as planned?");
    assert!(
        plan.contains("delete   gateway.networking.istio.io/kmsgateway"),
        "{plan}"
    );
    term.send(&["C-c"]);
    let screen = term.wait_for("EXIT=");
    assert!(screen.contains("EXIT=130"), "{screen}");
    assert!(screen.contains("nothing was changed"), "{screen}");
    assert_eq!(
        test.object_names(
            &ns.0,
            "gateways.networking.istio.io,virtualservices,destinationrules"
        )
        .lines()
        .count(),
        3
    );
}
