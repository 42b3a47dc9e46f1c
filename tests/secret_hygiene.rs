//! The API key never leaves the Secret: with a sentinel key, every subcommand
//! is run in every mode (normal, client and server dry runs, `-o yaml|json`,
//! failing runs, the wizard from an answers file) and the key, its base64
//! and its URL-safe base64 are looked for in stdout, stderr, the process's
//! command line while it runs, and every file the plugin wrote (backups,
//! saved answers, anything under its HOME). Those files are private (0600).

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use support::{
    SOURCE_CRN, TARGET_CRN, closed_port, cluster, fresh_namespaces, host_of, istioctl_binary,
    kubeconfig_for_port, plugin_in, scratch_dir, stderr, stdout,
};

/// Chosen so that its base64 holds `+` and `/`, which the URL-safe
/// alphabet replaces: the three forms all differ.
const KEY: &str = "hygiene~~?>>sentinel-Zq7";

fn forms() -> Vec<String> {
    let forms = vec![
        KEY.to_owned(),
        STANDARD.encode(KEY),
        URL_SAFE.encode(KEY),
        URL_SAFE_NO_PAD.encode(KEY),
    ];
    assert_ne!(forms[1], forms[2], "the key exercises both alphabets");
    forms
}

#[track_caller]
fn assert_clean(what: &str, text: &str) {
    for form in forms() {
        assert!(!text.contains(&form), "{what} holds the key as {form:?}");
    }
}

static COMMAND_LINES_READ: AtomicUsize = AtomicUsize::new(0);

/// Runs the plugin with `input` on stdin, reading its command line from
/// /proc every few milliseconds while it runs; asserts the command line
/// never held the key and returns the output, checked the same way.
fn run_watched(label: &str, command: &mut Command, input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the plugin starts");
    let cmdline = PathBuf::from(format!("/proc/{}/cmdline", child.id()));
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(input);
    drop(stdin);
    let mut stdout_pipe = child.stdout.take().unwrap();
    let mut stderr_pipe = child.stderr.take().unwrap();
    let readers = (
        std::thread::spawn(move || {
            let mut buffer = Vec::new();
            std::io::Read::read_to_end(&mut stdout_pipe, &mut buffer).map(|_| buffer)
        }),
        std::thread::spawn(move || {
            let mut buffer = Vec::new();
            std::io::Read::read_to_end(&mut stderr_pipe, &mut buffer).map(|_| buffer)
        }),
    );
    let status = loop {
        if let Ok(line) = std::fs::read(&cmdline)
            && !line.is_empty()
        {
            COMMAND_LINES_READ.fetch_add(1, Ordering::Relaxed);
            assert_clean(
                &format!("{label}: the command line"),
                &String::from_utf8_lossy(&line),
            );
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let output = Output {
        status,
        stdout: readers.0.join().unwrap().unwrap(),
        stderr: readers.1.join().unwrap().unwrap(),
    };
    assert_clean(&format!("{label}: stdout"), &stdout(&output));
    assert_clean(&format!("{label}: stderr"), &stderr(&output));
    output
}

#[track_caller]
fn expect_exit(label: &str, output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "{label}\n--- stdout\n{}\n--- stderr\n{}",
        stdout(output),
        stderr(output)
    );
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn no_subcommand_in_any_mode_lets_the_key_out() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "hygiene");
    let home = scratch_dir("hygiene-home");
    let answers_dir = scratch_dir("hygiene-answers");
    let key_file = scratch_dir("hygiene-keyfile").join("key");
    std::fs::write(&key_file, KEY).unwrap();
    let saved_answers = answers_dir.join("saved.yaml");
    let answers = answers_dir.join("answers.yaml");
    std::fs::write(
        &answers,
        format!(
            "kmsNamespace: {}\nistioNamespace: {}\nhosts: [{}]\n\
             sourceCrn: '{SOURCE_CRN}'\ntargetCrns: ['{TARGET_CRN}']\n",
            ns.0,
            ns.1,
            host_of(&ns)
        ),
    )
    .unwrap();
    let bad_answers = answers_dir.join("bad.yaml");
    std::fs::write(&bad_answers, "hosts: 7\nkeyy: x\n").unwrap();

    let plugin = || {
        let mut command = plugin_in(test, &ns);
        command.env("HOME", &home).env("KMS_HYGIENE_KEY", KEY);
        command
    };
    let istioctl = istioctl_binary();
    let host = host_of(&ns);
    let crns = ["--source-crn", SOURCE_CRN, "--target-crn", TARGET_CRN];
    let stdin = KEY.as_bytes();
    let unreachable = kubeconfig_for_port(closed_port());

    // (label, arguments, expected exit code); each runs with the key on stdin.
    let runs: Vec<(&str, Vec<&str>, i32)> = vec![
        (
            "set-apikey client dry run, yaml",
            vec!["set-apikey", "--from-stdin", "--dry-run", "-o", "yaml"],
            0,
        ),
        (
            "set-apikey server dry run, json",
            vec![
                "set-apikey",
                "--from-stdin",
                "--dry-run=server",
                "-o",
                "json",
            ],
            0,
        ),
        (
            "set-apikey from a file, json",
            vec![
                "set-apikey",
                "--from-file",
                key_file.to_str().unwrap(),
                "-o",
                "json",
            ],
            0,
        ),
        (
            "set-apikey unchanged, from the environment, yaml",
            vec!["set-apikey", "--from-env", "KMS_HYGIENE_KEY", "-o", "yaml"],
            0,
        ),
        (
            "set-apikey forced restart",
            vec!["set-apikey", "--from-stdin", "--restart"],
            0,
        ),
        (
            "set-apikey into a missing Secret",
            vec!["set-apikey", "--from-stdin", "--secret", "no-such-secret"],
            6,
        ),
        (
            "set-apikey with a missing token adapter",
            vec![
                "set-apikey",
                "--from-stdin",
                "--restart",
                "--token-adapter",
                "no-such-adapter",
            ],
            6,
        ),
        (
            "set-apikey with an unknown context",
            vec!["--context", "no-such-context", "set-apikey", "--from-stdin"],
            2,
        ),
        (
            "set-apikey with conflicting sources",
            vec![
                "set-apikey",
                "--from-stdin",
                "--from-env",
                "KMS_HYGIENE_KEY",
            ],
            2,
        ),
        (
            "inject",
            vec!["inject", "--istioctl", istioctl.to_str().unwrap()],
            0,
        ),
        (
            "inject dry run, yaml",
            vec![
                "inject",
                "--dry-run",
                "-o",
                "yaml",
                "--istioctl",
                istioctl.to_str().unwrap(),
            ],
            0,
        ),
        (
            "expose, yaml",
            vec!["expose", "--host", host.as_str(), "-o", "yaml"],
            0,
        ),
        (
            "expose server dry run, json",
            vec![
                "expose",
                "--host",
                host.as_str(),
                "--dry-run=server",
                "-o",
                "json",
            ],
            0,
        ),
        (
            "map-identity, json",
            [&["map-identity", "-o", "json"][..], &crns[..]].concat(),
            0,
        ),
        (
            "map-identity client dry run, yaml",
            [&["map-identity", "--dry-run", "-o", "yaml"][..], &crns[..]].concat(),
            0,
        ),
        // cert-manager issues the certificate in its own time.
        ("status", vec!["status", "--wait", "60s"], 0),
        ("status, json", vec!["status", "-o", "json"], 0),
        ("status, yaml", vec!["status", "-o", "yaml"], 0),
        (
            "wizard from answers, saving them",
            vec![
                "wizard",
                "--yes",
                "--apikey-from-stdin",
                "--answers",
                answers.to_str().unwrap(),
                "--save-answers",
                saved_answers.to_str().unwrap(),
                "--istioctl",
                istioctl.to_str().unwrap(),
            ],
            0,
        ),
        (
            "wizard from saved answers, key from the environment",
            vec![
                "wizard",
                "--yes",
                "--apikey-from-env",
                "KMS_HYGIENE_KEY",
                "--answers",
                saved_answers.to_str().unwrap(),
                "--istioctl",
                istioctl.to_str().unwrap(),
            ],
            0,
        ),
        (
            "wizard from bad answers",
            vec![
                "wizard",
                "--yes",
                "--apikey-from-stdin",
                "--answers",
                bad_answers.to_str().unwrap(),
            ],
            2,
        ),
        (
            "uninstall dry run with the key secret, yaml",
            vec!["uninstall", "--delete-apikey", "--dry-run", "-o", "yaml"],
            0,
        ),
        (
            "uninstall server dry run with the key secret, json",
            vec![
                "uninstall",
                "--delete-apikey",
                "--dry-run=server",
                "-o",
                "json",
            ],
            0,
        ),
    ];
    for (label, args, code) in &runs {
        let out = run_watched(label, plugin().args(args), stdin);
        expect_exit(label, &out, *code);
    }
    let label = "set-apikey against an unreachable server";
    let out = run_watched(
        label,
        support::plugin()
            .env("HOME", &home)
            .arg("--kubeconfig")
            .arg(&unreachable)
            .args(["--request-timeout", "2s", "set-apikey", "--from-stdin"]),
        stdin,
    );
    expect_exit(label, &out, 3);

    assert!(
        COMMAND_LINES_READ.load(Ordering::Relaxed) >= runs.len(),
        "the command lines were read while the commands ran"
    );
    // The key did land, so the runs above had it in hand.
    assert_eq!(
        STANDARD
            .decode(test.jsonpath(&ns.1, "secret/sts-apikey", "{.data.apikey}"))
            .unwrap(),
        KEY.as_bytes()
    );
    // Every file the plugin wrote: backups (under HOME by default) and the
    // saved answers; none holds the key and each is private.
    let written: Vec<PathBuf> = files_under(&home)
        .into_iter()
        .chain(files_under(&answers_dir))
        .filter(|path| *path != answers && *path != bad_answers)
        .collect();
    assert!(
        written.iter().any(|path| path.starts_with(&home)),
        "inject wrote a backup under HOME: {written:?}"
    );
    assert!(written.contains(&saved_answers), "{written:?}");
    for path in &written {
        let bytes = std::fs::read(path).unwrap();
        assert_clean(
            &path.display().to_string(),
            &String::from_utf8_lossy(&bytes),
        );
        assert_eq!(
            std::fs::metadata(path).unwrap().permissions().mode() & 0o777,
            0o600,
            "{}",
            path.display()
        );
    }
}
