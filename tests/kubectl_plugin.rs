//! The plugin as operators run it: through a real kubectl (the test
//! cluster's), found on PATH as `kubectl-kms_sts`, and the same under any name.

mod support;

use std::path::Path;
use std::process::Command;

use support::{
    assert_exit, cluster, install_as, kubernetes_bin, plugin_binary, run, scratch_dir, stderr,
    stdout,
};

/// A PATH holding only the plugin, installed as `name`, and kubectl.
fn path_with_plugin_as(name: &str) -> std::ffi::OsString {
    let dir = scratch_dir("path");
    install_as(plugin_binary(), &dir.join(name));
    std::env::join_paths([
        dir.as_path(),
        kubernetes_bin(),
        Path::new("/usr/bin"),
        Path::new("/bin"),
    ])
    .unwrap()
}

fn kubectl(path: &std::ffi::OsString) -> Command {
    let mut command = Command::new(kubernetes_bin().join("kubectl"));
    command.env("PATH", path).env_remove("KUBECONFIG");
    command
}

#[test]
fn kubectl_runs_the_plugin_by_its_underscore_name() {
    let path = path_with_plugin_as("kubectl-kms_sts");
    let out = run(kubectl(&path).args(["kms-sts", "--help"]));
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("Usage: kubectl kms-sts"),
        "{}",
        stdout(&out)
    );

    let out = run(kubectl(&path).args(["plugin", "list"]));
    assert_exit(&out, 0);
    assert!(stdout(&out).contains("kubectl-kms_sts"), "{}", stdout(&out));
    assert!(
        !stderr(&out).to_lowercase().contains("warning"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn kubectl_kms_sts_version_reports_plugin_and_server() {
    let path = path_with_plugin_as("kubectl-kms_sts");
    let out = run(kubectl(&path)
        .args(["kms-sts", "version", "--kubeconfig"])
        .arg(&cluster("modern").kubeconfig));
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains(&format!("Client Version: v{}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(text.contains("Server Version: v1.36."), "{text}");
}

#[test]
fn the_binary_behaves_the_same_under_any_name() {
    let canonical = run(Command::new(plugin_binary()).arg("--help"));
    let dir = scratch_dir("renamed");
    let renamed = dir.join("kms-sts-renamed");
    install_as(plugin_binary(), &renamed);
    let other = run(Command::new(&renamed).arg("--help"));
    assert_exit(&other, 0);
    assert_eq!(canonical.stdout, other.stdout);
}

#[test]
fn harness_kubectl_and_deployments_work_on_the_test_cluster() {
    let test = cluster("modern");
    let out = run(test.kubectl().args(["version", "-o", "json"]));
    assert_exit(&out, 0);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        json["serverVersion"]["gitVersion"]
            .as_str()
            .unwrap()
            .starts_with("v1.36.")
    );
    assert!(
        json["clientVersion"]["gitVersion"]
            .as_str()
            .unwrap()
            .starts_with("v1.36.")
    );

    // The seeded KMS deployment rolled out: every replica Ready on the KWOK node.
    let out = run(test.kubectl().args([
        "rollout",
        "status",
        "deployment/key-management-api",
        "-n",
        "kube-system",
        "--timeout=60s",
    ]));
    assert_exit(&out, 0);
    let out = run(test.kubectl().args([
        "get", "pods", "-n", "kube-system", "-l", "app=key-management-api", "-o",
        "jsonpath={range .items[*]}{.spec.nodeName} {.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
    ]));
    assert_exit(&out, 0);
    let lines: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    assert_eq!(lines, vec!["kwok-node-0 True".to_owned(); 2]);
}

#[test]
fn kubectl_completes_the_plugin_through_its_helper() {
    let dir = scratch_dir("completion");
    install_as(plugin_binary(), &dir.join("kubectl-kms_sts"));
    let helper = dir.join("kubectl_complete-kms_sts");
    let printed = run(Command::new(plugin_binary()).args(["completion", "kubectl"]));
    assert_exit(&printed, 0);
    std::fs::write(&helper, &printed.stdout).unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = std::env::join_paths([
        dir.as_path(),
        kubernetes_bin(),
        Path::new("/usr/bin"),
        Path::new("/bin"),
    ])
    .unwrap();

    let out = run(kubectl(&path).args(["__complete", "kms-sts", "ma"]));
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(text.starts_with("map-identity\t"), "{text}");
    let out = run(kubectl(&path).args(["__complete", "kms-sts", "status", "-o", ""]));
    assert!(stdout(&out).starts_with("json\nyaml\n"), "{}", stdout(&out));

    // --context offers the kubeconfig's contexts.
    let out = run(kubectl(&path)
        .env("KUBECONFIG", &cluster("modern").kubeconfig)
        .args(["__complete", "kms-sts", "status", "--context", ""]));
    assert!(
        stdout(&out).starts_with("kms-sts-admin@kms-sts-modern\n"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn shell_completion_scripts_are_printed() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef"),
        ("fish", "complete -c"),
    ] {
        let out = run(Command::new(plugin_binary()).args(["completion", shell]));
        assert_exit(&out, 0);
        assert!(stdout(&out).contains(marker), "{shell}: {}", stdout(&out));
        assert!(stdout(&out).contains("set-apikey"), "{shell}");
    }
}

/// Runs `command` with its stdout on a pipe nobody reads any more, as
/// `| head -1` leaves it once head has its line.
fn run_into_closed_pipe(command: &mut Command) -> std::process::Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    command
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn a_reader_that_stops_early_ends_the_output_quietly() {
    let test = cluster("modern");
    let ns = support::fresh_namespaces(test, "closed-pipe");
    let with_args = |mut command: Command, args: &[&str]| {
        command.args(args);
        command
    };
    let cases = [
        (
            "completion bash",
            with_args(support::plugin(), &["completion", "bash"]),
            0,
        ),
        (
            "completion kubectl",
            with_args(support::plugin(), &["completion", "kubectl"]),
            0,
        ),
        (
            "version -o yaml",
            with_args(test.plugin(), &["version", "-o", "yaml"]),
            0,
        ),
        // The fresh namespaces hold no setup: every check fails.
        (
            "status -o json",
            with_args(support::plugin_in(test, &ns), &["status", "-o", "json"]),
            8,
        ),
    ];
    for (label, mut command, code) in cases {
        let out = run_into_closed_pipe(&mut command);
        assert_eq!(out.status.code(), Some(code), "{label}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("panicked") && !stderr(&out).contains("Broken pipe"),
            "{label}: {}",
            stderr(&out)
        );
    }
}
