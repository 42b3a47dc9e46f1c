//! The wizard as a person uses it: in a real terminal (tmux), typing answers
//! at its prompts. Invalid input is refused inline, Ctrl-C at the plan leaves
//! the cluster untouched, and confirming runs the whole chain.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{
    TestCluster, cluster, fresh_namespaces, istioctl_binary, plugin_binary, scratch_dir,
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
        let socket = format!("kms-sts-{label}-{}", std::process::id());
        let command = format!(
            "{} wizard --kubeconfig {} --kms-namespace {} --istio-namespace {} --istioctl {} --backup-dir {}; echo EXIT=$?; sleep 60",
            plugin_binary().display(),
            test.kubeconfig.display(),
            ns.0,
            ns.1,
            istioctl_binary().display(),
            scratch_dir("wizard-terminal").display()
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

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-S", "-200"])
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

fn answer_everything(term: &Terminal) {
    term.wait_for("STS API key:");
    term.send(&["interactive-sentinel-key", "Enter"]);
    term.wait_for("Gateway addresses");
    term.send(&["10.1.1", "Enter"]);
    term.wait_for("neither an IP address nor a DNS name");
    term.send(&["C-u", "10.1.1.1", "Enter"]);
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
    term.wait_for("Apply this plan?");
}

#[test]
fn ctrl_c_at_the_plan_changes_nothing() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "wizard-cancel");
    let term = Terminal::start(test, &ns, "cancel");
    answer_everything(&term);
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

#[test]
fn confirming_runs_the_whole_chain() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "wizard-confirm");
    let term = Terminal::start(test, &ns, "confirm");
    answer_everything(&term);
    term.send(&["y"]);
    let screen = term.wait_for("EXIT=");
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(
        screen.contains("Status: 22 passed, 0 warnings, 0 failed"),
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
    answer_everything(&first);
    first.send(&["y"]);
    assert!(first.wait_for("EXIT=").contains("EXIT=0"));
    drop(first);

    let again = Terminal::start(test, &ns, "again");
    let screen = again.wait_for("Apply this plan?");
    assert!(
        !screen.contains("STS API key:"),
        "the stored key is kept:\n{screen}"
    );
    assert!(
        screen.contains("keeping the exposure: hosts 10.1.1.1, issuer icp-ca-issuer"),
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
