//! What the README says is what the code does. Its permission table says
//! what each command needs; it is read here and compared with the lists the
//! commands' own preflight checks (and `rbac` grants), so the two cannot
//! drift apart. And every form of the test cluster's commands that it and
//! the harness's own documentation write is one the commands take
//! (`tests/cluster/check-usage`). And a step of the scripts keeps what its
//! tool prints in the log it names, as "Try it" says, and one run beside the
//! rest fails its script and stops with it. No cluster is needed.

mod support;

use kms_sts::cluster::permissions::{Command, Scope};
use kms_sts::objects::apis::CertManagerApi;

/// The rows of the table under "Prerequisites": command, then the cells for
/// the Istio namespace, the KMS namespace and cluster-wide.
fn table() -> Vec<(String, [String; 3])> {
    let readme = include_str!("../README.md");
    readme
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("| `"))
        .filter_map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            let [command, istio, kms, cluster] = cells.as_slice() else {
                return None;
            };
            let command = command.trim_matches('`').to_owned();
            Some((command, [istio, kms, cluster].map(|c| (*c).to_owned())))
        })
        .filter(|(command, _)| {
            [
                "set-apikey",
                "inject",
                "expose",
                "map-identity",
                "uninstall",
            ]
            .contains(&command.as_str())
        })
        .collect()
}

/// `resource (group): verb, verb (a note); ...` as `verb resource.group PLACE`,
/// leaving out what the notes say needs an option.
fn permissions(cell: &str, place: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in cell.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (what, verbs) = part.split_once(':').expect("resource: verbs");
        let (resources, group) = match what.split_once('(') {
            Some((resources, group)) => (resources, group.trim_end_matches(')').trim()),
            None => (what, ""),
        };
        let verbs = verbs.split('(').next().unwrap();
        for resource in resources.split(',').map(str::trim) {
            for verb in verbs.split(',').map(str::trim) {
                let resource = if group.is_empty() {
                    resource.to_owned()
                } else {
                    format!("{resource}.{group}")
                };
                out.push(format!("{verb} {resource} {place}"));
            }
        }
    }
    out
}

#[test]
fn the_readmes_permission_table_is_what_the_commands_check() {
    let scope = Scope {
        kms: "KMS",
        istio: "ISTIO",
        cert_manager: Some(CertManagerApi::Current),
        gateway_api: true,
    };
    let rows = table();
    assert_eq!(rows.len(), 5, "{rows:?}");
    for (command, [istio, kms, cluster]) in rows {
        let mut documented = permissions(&istio, "in ISTIO");
        documented.extend(permissions(&kms, "in KMS"));
        documented.extend(permissions(&cluster, "(cluster-wide)"));
        documented.sort();
        let which = match command.as_str() {
            "set-apikey" => Command::SetApikey,
            "inject" => Command::Inject,
            "expose" => Command::Expose,
            "uninstall" => Command::Uninstall,
            _ => Command::MapIdentity,
        };
        let mut checked: Vec<String> = which
            .needs(&scope)
            .iter()
            .map(ToString::to_string)
            .collect();
        checked.sort();
        checked.dedup();
        assert_eq!(documented, checked, "{command}");
    }
}

/// The forms `tests/cluster/check-usage` checked, and its exit code.
fn check_usage(readme: &std::path::Path) -> (i32, Vec<serde_json::Value>) {
    let out = std::process::Command::new(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cluster/check-usage"),
    )
    .arg(readme)
    .output()
    .expect("run tests/cluster/check-usage");
    let forms = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    (out.status.code().unwrap(), forms)
}

#[test]
fn the_test_cluster_commands_parse_every_form_their_documentation_writes() {
    let readme = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let (code, forms) = check_usage(&readme);
    let refused: Vec<_> = forms.iter().filter(|f| f["ok"] != true).collect();
    assert_eq!((code, refused.len()), (0, 0), "{refused:#?}");
    for command in [
        "up",
        "down",
        "clean",
        "user",
        "seed-namespaces",
        "install-istio",
        "issue-legacy-certificate",
        "request",
        "received",
        "seed-app",
    ] {
        assert!(
            forms.iter().any(|f| f["argv"][0] == command),
            "no documented form of {command} was checked"
        );
    }

    // A form the commands do not take is caught.
    let wrong = std::env::temp_dir().join(format!("usage-{}.md", std::process::id()));
    std::fs::write(&wrong, "Stop it with `tests/cluster/down --all`.\n").unwrap();
    let (code, forms) = check_usage(&wrong);
    assert_eq!(code, 1);
    assert!(
        forms
            .iter()
            .any(|f| f["ok"] == false && f["error"][0].as_str().unwrap().contains("--all")),
        "{forms:#?}"
    );
}

/// Runs `script` in bash with the scripts' helpers (tests/cluster/lib.sh)
/// loaded and their logs in a directory of its own; the exit code, what it
/// printed and the directory.
fn with_helpers(script: &str) -> (Option<i32>, String, std::path::PathBuf) {
    let logs = support::scratch_dir("step-logs");
    // Into files, not pipes: a process left behind would hold a pipe open
    // and the test would wait for it instead of failing.
    let printed = support::scratch_dir("step-printed");
    let stdout = printed.join("stdout");
    let stderr = printed.join("stderr");
    let status = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(". tests/cluster/lib.sh && {script}"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("KMS_STS_LOGS_DIR", &logs)
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .status()
        .unwrap();
    let stdout = std::fs::read_to_string(stdout).unwrap();
    assert!(stdout.is_empty(), "{stdout}");
    (
        status.code(),
        std::fs::read_to_string(stderr).unwrap(),
        logs,
    )
}

/// The `step` helper running `command`.
fn step(command: &str) -> (Option<i32>, String, std::path::PathBuf) {
    with_helpers(&format!("step 'compiling a tool' 0 bash -c '{command}'"))
}

/// "What the builds print goes to a log, named on the step's line, and its
/// last lines are shown only when the step fails."
#[test]
fn a_step_keeps_what_a_tool_prints_in_its_log_and_shows_the_end_when_it_fails() {
    let (code, printed, logs) = step("echo busy compiling; echo warnings galore");
    assert_eq!(code, Some(0), "{printed}");
    let log = logs.join("compiling-a-tool.log");
    assert!(
        printed.contains(&format!("compiling a tool (log: {})", log.display())),
        "{printed}"
    );
    assert!(printed.contains("compiling a tool: done in "), "{printed}");
    assert!(!printed.contains("busy compiling"), "{printed}");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "busy compiling\nwarnings galore\n"
    );

    let (code, printed, logs) = step("for i in $(seq 1 50); do echo line $i; done; exit 3");
    assert_eq!(code, Some(3), "{printed}");
    assert!(
        printed.contains("error: compiling a tool failed after "),
        "{printed}"
    );
    assert!(
        printed.contains(&format!(
            "; the last lines of {}:",
            logs.join("compiling-a-tool.log").display()
        )),
        "{printed}"
    );
    assert!(printed.contains("  | line 50\n"), "{printed}");
    assert!(printed.contains("  | line 21\n"), "{printed}");
    assert!(!printed.contains("  | line 20\n"), "{printed}");
}

/// "Builds side by side": a step run beside the script keeps its log and
/// fails the script when it fails, and a script that stops early stops what
/// it started beside it.
#[test]
fn what_runs_beside_fails_the_script_and_stops_with_it() {
    let (code, printed, logs) = with_helpers(
        "beside step 'compiling a tool' 0 bash -c 'echo broken; exit 4'; \
         sleep 0.5; log 'meanwhile'; await_beside",
    );
    assert_eq!(code, Some(4), "{printed}");
    assert!(printed.contains("meanwhile\n"), "{printed}");
    assert!(
        printed.contains(&format!(
            "; the last lines of {}:\n  | broken\n",
            logs.join("compiling-a-tool.log").display()
        )),
        "{printed}"
    );

    // A pause no other process on the machine is taking.
    let pause = format!("977.{}", std::process::id());
    let (code, printed, _) = with_helpers(&format!(
        "set -e; beside step 'compiling a tool' 0 sleep {pause}; sleep 0.5; false"
    ));
    assert_eq!(code, Some(1), "{printed}");
    let running = || -> Vec<String> {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|entry| std::fs::read(entry.ok()?.path().join("cmdline")).ok())
            .map(|cmdline| String::from_utf8_lossy(&cmdline).replace('\0', " "))
            .filter(|cmdline| cmdline.contains(&pause))
            .collect()
    };
    // A signal takes effect a moment after it is sent.
    for _ in 0..50 {
        if running().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(running(), Vec::<String>::new(), "still running");
}
