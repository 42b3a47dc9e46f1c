//! `inject` against the real test cluster and the real istioctl: the KMS
//! Deployment gains the sidecar in place (same object, rolling update), the
//! original is backed up privately, re-runs do nothing, dry runs and bad
//! input change nothing, and a failed rollout is rolled back.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use support::{
    DefaultTag, IstioBuild, TestCluster, assert_exit, cluster, fresh_namespaces, host_of, inject,
    istioctl_binary, json_status, plugin, plugin_in, run, run_chain, run_with_stdin, scratch_dir,
    status_check, stderr, stdout,
};

const FAILURE: i32 = 1;
const USAGE: i32 = 2;
const MISSING: i32 = 6;
const CONFLICT: i32 = 7;

fn containers(test: &TestCluster, kms: &str) -> String {
    test.jsonpath(
        kms,
        "deployment/key-management-api",
        "{.spec.template.spec.containers[*].name} {.spec.template.spec.initContainers[*].name}",
    )
    .trim()
    .to_owned()
}

#[test]
fn injects_in_place_with_a_private_backup_and_is_idempotent() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "inject-ok");
    let uid = test.jsonpath(&ns.0, "deployment/key-management-api", "{.metadata.uid}");
    let backups = scratch_dir("inject-backups");

    let out = run(inject(test, &ns).arg("--backup-dir").arg(&backups));
    assert_exit(&out, 0);
    let err = stderr(&out);
    assert!(
        err.contains("deployment/key-management-api injected: 2 pods run the istio-proxy sidecar"),
        "{err}"
    );

    // The same object, never deleted, now carrying the sidecar.
    assert_eq!(
        test.jsonpath(&ns.0, "deployment/key-management-api", "{.metadata.uid}"),
        uid
    );
    assert!(
        containers(test, &ns.0).contains("istio-proxy"),
        "{}",
        containers(test, &ns.0)
    );
    let pods = test.jsonpath(
        &ns.0,
        "pods",
        "{range .items[*]}{.spec.containers[*].name}|{.status.phase}{\"\\n\"}{end}",
    );
    let live: Vec<&str> = pods
        .lines()
        .filter(|line| line.ends_with("|Running"))
        .collect();
    assert_eq!(live.len(), 2, "{pods}");
    assert!(
        live.iter().all(|line| line.contains("istio-proxy")),
        "{pods}"
    );

    // The backup: the original manifest, readable by the owner only.
    let files: Vec<_> = std::fs::read_dir(&backups).unwrap().flatten().collect();
    assert_eq!(files.len(), 1);
    let backup = files[0].path();
    assert!(
        err.contains(&backup.display().to_string()),
        "backup path printed: {err}"
    );
    assert_eq!(
        std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let saved = std::fs::read_to_string(&backup).unwrap();
    assert!(
        saved.contains("name: key-management-api") && !saved.contains("istio-proxy"),
        "{saved}"
    );

    // Again: already injected, nothing written.
    assert_inject_writes_nothing(test, &ns, &backups);
    assert_eq!(std::fs::read_dir(&backups).unwrap().count(), 1);
}

#[test]
fn dry_runs_print_the_injected_deployment_and_change_nothing() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "inject-dry");
    for mode in ["--dry-run=client", "--dry-run=server"] {
        let out = run(inject(test, &ns).args([mode, "-o", "yaml"]));
        assert_exit(&out, 0);
        let text = stdout(&out);
        assert!(
            text.contains("kind: Deployment") && text.contains("istio-proxy"),
            "{text}"
        );
        assert!(stderr(&out).contains("dry run"));
    }
    assert_eq!(containers(test, &ns.0), "key-management-api");
    assert_eq!(test.kms_generation(&ns.0), "1");
}

#[test]
fn missing_istioctl_deployment_or_injector_config_changes_nothing() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "inject-missing");

    let out = run(plugin_in(test, &ns).args(["inject", "--istioctl", "/nonexistent/istioctl"]));
    assert_exit(&out, MISSING);
    assert!(
        stderr(&out).contains("istioctl is needed: /nonexistent/istioctl does not exist"),
        "{}",
        stderr(&out)
    );

    let out = run(inject(test, &ns).args(["--deployment", "absent"]));
    assert_exit(&out, MISSING);
    assert!(stderr(&out).contains(&format!("Deployment {}/absent does not exist", ns.0)));

    let deleted =
        run(test
            .kubectl()
            .args(["delete", "configmap", "istio-sidecar-injector", "-n", &ns.1]));
    assert_exit(&deleted, 0);
    let out = run(&mut inject(test, &ns));
    assert_exit(&out, MISSING);
    assert!(
        stderr(&out).contains("istio-sidecar-injector"),
        "{}",
        stderr(&out)
    );

    assert_eq!(containers(test, &ns.0), "key-management-api");
    assert_eq!(test.kms_generation(&ns.0), "1");
}

#[test]
fn a_rollout_that_cannot_finish_is_rolled_back() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "inject-rollback");
    // A quota that admits no extra pod: the rolling update cannot surge.
    let quota =
        run(test
            .kubectl()
            .args(["create", "quota", "no-surge", "--hard=pods=2", "-n", &ns.0]));
    assert_exit(&quota, 0);
    let backups = scratch_dir("inject-rollback-backups");
    let template = test.jsonpath(&ns.0, "deployment/key-management-api", "{.spec.template}");

    let out = run(inject(test, &ns)
        .args(["--timeout", "3s"])
        .arg("--backup-dir")
        .arg(&backups));
    assert_exit(&out, FAILURE);
    let err = stderr(&out);
    assert!(err.contains("the previous version was restored"), "{err}");
    assert!(err.contains("did not finish within 3s"), "{err}");
    assert_eq!(containers(test, &ns.0), "key-management-api");
    assert_eq!(
        test.jsonpath(&ns.0, "deployment/key-management-api", "{.spec.template}"),
        template
    );
    assert_eq!(
        std::fs::read_dir(&backups).unwrap().count(),
        1,
        "backup kept"
    );
}

#[test]
fn undo_restores_the_backed_up_template_in_both_profiles() {
    for profile in ["modern", "legacy"] {
        let test = cluster(profile);
        let ns = fresh_namespaces(test, "inject-undo");
        let backups = scratch_dir("inject-undo-backups");
        let template = test.jsonpath(&ns.0, "deployment/key-management-api", "{.spec.template}");

        let out = run(inject(test, &ns).arg("--backup-dir").arg(&backups));
        assert_exit(&out, 0);
        assert!(containers(test, &ns.0).contains("istio-proxy"), "{profile}");
        // Each profile's injector is compared with too: current after the
        // injection, stale once another build is installed in place.
        let check = proxy_check(test, &ns, &[]);
        assert_eq!(check["result"], "pass", "{profile}: {check}");
        test.install_istio(&ns.1, IstioBuild::Previous, None);
        assert_check(
            &proxy_check(test, &ns, &[]),
            "warn",
            format!(
                "istio-proxy {}, now {}",
                IstioBuild::Current.proxy_image(),
                IstioBuild::Previous.proxy_image()
            ),
        );

        let out = run(plugin_in(test, &ns)
            .args(["inject", "--undo"])
            .arg("--backup-dir")
            .arg(&backups));
        assert_exit(&out, 0);
        assert!(
            stderr(&out).contains("deployment/key-management-api restored from"),
            "{}",
            stderr(&out)
        );
        assert_eq!(containers(test, &ns.0), "key-management-api", "{profile}");
        assert_eq!(
            test.jsonpath(&ns.0, "deployment/key-management-api", "{.spec.template}"),
            template
        );

        let out = run(plugin_in(test, &ns)
            .args(["inject", "--undo"])
            .arg("--backup-dir")
            .arg(&backups));
        assert_exit(&out, 0);
        assert!(stderr(&out).contains("nothing to undo"));
    }
}

#[test]
fn a_damaged_default_backup_is_named_without_blaming_a_flag_not_given() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "inject-bad-backup");
    // One home for both runs, so --undo finds the default backup directory.
    let home = scratch_dir("inject-bad-backup-home");
    let out = run(inject(test, &ns).env("HOME", &home));
    assert_exit(&out, 0);
    let saved = stderr(&out)
        .lines()
        .find_map(|line| line.split(" saved to ").nth(1).map(str::to_owned))
        .expect("the backup's path is printed");
    assert!(saved.starts_with(home.to_str().unwrap()), "{saved}");
    std::fs::write(&saved, "not: [a deployment").unwrap();

    let out = run(inject(test, &ns).arg("--undo").env("HOME", &home));
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(!err.contains("--backup-dir:"), "{err}");
    assert!(
        err.contains(&format!("the backup {saved} cannot be restored")),
        "{err}"
    );
    assert!(err.contains("not a Deployment manifest"), "{err}");
    assert!(containers(test, &ns.0).contains("istio-proxy"));
}

#[test]
fn ctrl_c_during_the_rollout_wait_exits_promptly_and_status_describes_the_state() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "inject-sigint");
    let quota =
        run(test
            .kubectl()
            .args(["create", "quota", "no-surge", "--hard=pods=2", "-n", &ns.0]));
    assert_exit(&quota, 0);
    let mut child = inject(test, &ns)
        .args(["--timeout", "120s"])
        .arg("--backup-dir")
        .arg(scratch_dir("inject-sigint-backups"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the Deployment was updated and the wait has begun: inject
    // says so on stderr, read line by line as it comes.
    let (lines, said) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
            let line = line.unwrap();
            all += &line;
            all.push('\n');
            let _ = lines.send(line);
        }
        all
    });
    loop {
        let line = said
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("inject says it waits for the rollout");
        if line.contains("waiting for deployment") {
            break;
        }
    }
    assert!(containers(test, &ns.0).contains("istio-proxy"));
    let sent = std::time::Instant::now();
    let kill = run(std::process::Command::new("kill").args(["-INT", &child.id().to_string()]));
    assert_exit(&kill, 0);
    let status = child.wait().unwrap();
    assert!(
        sent.elapsed() < std::time::Duration::from_secs(3),
        "took {:?}",
        sent.elapsed()
    );
    assert_eq!(status.code(), Some(130));
    let err = reader.join().unwrap();
    assert!(
        err.contains("interrupted; what was already sent stays in the cluster"),
        "{err}"
    );
    assert!(err.contains("kubectl kms-sts status"), "{err}");

    let out = run(plugin_in(test, &ns).args(["status", "-o", "json"]));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kms = report["categories"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["checks"].as_array().unwrap())
        .find(|c| c["name"] == "KMS deployment")
        .unwrap();
    assert_eq!(kms["result"], "warn", "{kms}");
    assert!(
        kms["message"].as_str().unwrap().contains("is rolling out"),
        "{kms}"
    );
}

#[test]
fn a_change_by_another_client_between_read_and_write_is_not_overwritten() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "inject-race");
    // An istioctl that lets another client change the Deployment first: the
    // change lands exactly between the plugin's read and its write.
    let dir = scratch_dir("inject-race");
    let racing = dir.join("istioctl");
    std::fs::write(
        &racing,
        format!(
            "#!/bin/sh\n{} --kubeconfig {} annotate deployment key-management-api -n {} other-writer=was-here >/dev/null\nexec {} \"$@\"\n",
            support::kubernetes_bin().join("kubectl").display(),
            test.kubeconfig.display(),
            ns.0,
            istioctl_binary().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&racing, std::fs::Permissions::from_mode(0o755)).unwrap();

    let out = run(plugin_in(test, &ns)
        .arg("inject")
        .arg("--istioctl")
        .arg(&racing)
        .arg("--backup-dir")
        .arg(dir.join("backups")));
    assert_exit(&out, 7);
    let err = stderr(&out);
    assert!(
        err.contains("was changed by another client while being updated"),
        "{err}"
    );
    assert!(err.contains("run the command again"), "{err}");
    assert_eq!(containers(test, &ns.0), "key-management-api");
    let annotation = "{.metadata.annotations.other-writer}";
    assert_eq!(
        test.jsonpath(&ns.0, "deployment/key-management-api", annotation),
        "was-here"
    );

    // Run again: the plugin reads the other client's version and keeps it.
    let out = run(inject(test, &ns)
        .arg("--backup-dir")
        .arg(dir.join("backups")));
    assert_exit(&out, 0);
    assert!(containers(test, &ns.0).contains("istio-proxy"));
    assert_eq!(
        test.jsonpath(&ns.0, "deployment/key-management-api", annotation),
        "was-here"
    );
}

/// The Deployment's annotation `key`, as written.
fn annotation(test: &TestCluster, kms: &str, key: &str) -> String {
    let escaped = key.replace('.', "\\.").replace('/', "\\/");
    test.jsonpath(
        kms,
        "deployment/key-management-api",
        &format!("{{.metadata.annotations.{escaped}}}"),
    )
}

/// A copy of the Istio namespace's ConfigMap `name` as `name-REV`: a
/// revisioned control plane's configuration, as `istioctl install
/// --revision REV` names it.
fn copy_as_revision(test: &TestCluster, istio: &str, name: &str, revision: &str) {
    copy_configmap(test, istio, name, &format!("{name}-{revision}"), revision);
}

/// A copy of the ConfigMap `from` as `to`, labelled with `revision`.
fn copy_configmap(test: &TestCluster, istio: &str, from: &str, to: &str, revision: &str) {
    let out = run(test
        .kubectl()
        .args(["get", "configmap", from, "-n", istio, "-o", "json"]));
    assert_exit(&out, 0);
    let mut map: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    map["metadata"] = serde_json::json!({
        "name": to,
        "namespace": istio,
        "labels": {"istio.io/rev": revision},
    });
    let out = run_with_stdin(
        test.kubectl().args(["create", "-f", "-"]),
        map.to_string().as_bytes(),
    );
    assert_exit(&out, 0);
}

#[test]
fn injection_records_what_it_came_from_so_undo_needs_no_backup_and_refuses_a_stale_record() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "inject-record");
    let template = test.jsonpath(&ns.0, "deployment/key-management-api", "{.spec.template}");
    let template: serde_json::Value = serde_json::from_str(&template).unwrap();
    for name in ["istio-sidecar-injector", "istio"] {
        copy_as_revision(test, &ns.1, name, "canary");
    }

    // A revision without a control plane is refused, naming where to look.
    let out = run(inject(test, &ns).args(["--revision", "nope"]));
    assert_exit(&out, MISSING);
    let err = stderr(&out);
    assert!(err.contains("istio-sidecar-injector-nope"), "{err}");
    assert!(err.contains("-l istio.io/rev"), "{err}");
    assert_eq!(containers(test, &ns.0), "key-management-api");

    let backups = scratch_dir("inject-record-backups");
    let out = run(inject(test, &ns)
        .args(["--revision", "canary", "--backup-dir"])
        .arg(&backups));
    assert_exit(&out, 0);
    assert!(containers(test, &ns.0).contains("istio-proxy"));
    assert_eq!(
        annotation(test, &ns.0, "kubectl-kms-sts/injected-revision"),
        "canary"
    );
    let fingerprint = annotation(test, &ns.0, "kubectl-kms-sts/injector-fingerprint");
    assert!(
        fingerprint.starts_with("sha256:") && fingerprint.len() == 71,
        "{fingerprint}"
    );
    let recorded = annotation(test, &ns.0, "kubectl-kms-sts/original-template");
    let recorded: serde_json::Value = serde_json::from_str(&recorded).unwrap();
    assert_eq!(recorded, template, "the never-injected template, exactly");

    // The injector's two ConfigMaps are recorded by version. While they
    // keep it, status takes the recorded fingerprint without reading their
    // data; under a new version they are read, and the same data is still
    // current.
    let version = |name: &str| {
        test.jsonpath(
            &ns.1,
            &format!("configmap/{name}"),
            "{.metadata.resourceVersion}",
        )
    };
    assert_eq!(
        annotation(test, &ns.0, "kubectl-kms-sts/injector-inputs"),
        format!(
            "istio-sidecar-injector-canary@{},istio-canary@{}",
            version("istio-sidecar-injector-canary"),
            version("istio-canary")
        )
    );
    let reads_of_injector_data = |offset: u64| {
        test.audit_events_since(offset)
            .iter()
            .filter(|event| {
                let uri = event["requestURI"].as_str().unwrap_or_default();
                event["userAgent"]
                    .as_str()
                    .is_some_and(|agent| agent.starts_with("kubectl-kms-sts/"))
                    && uri.contains("/configmaps?")
                    && uri.contains("fieldSelector")
            })
            .count()
    };
    let offset = test.audit_offset();
    let check = proxy_check(test, &ns, &[]);
    assert_check(&check, "pass", "is what revision canary injects now");
    assert_eq!(reads_of_injector_data(offset), 0);
    let out = run(test.kubectl().args([
        "label",
        "configmap",
        "istio-sidecar-injector-canary",
        "-n",
        &ns.1,
        "touched=yes",
    ]));
    assert_exit(&out, 0);
    let offset = test.audit_offset();
    let check = proxy_check(test, &ns, &[]);
    assert_check(&check, "pass", "is what revision canary injects now");
    assert_eq!(reads_of_injector_data(offset), 2);

    // A backup that disagrees with the record is refused, and nothing is written.
    let saved = std::fs::read_dir(&backups)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(&saved).unwrap();
    let image = recorded["spec"]["containers"][0]["image"].as_str().unwrap();
    std::fs::write(&saved, text.replace(image, "registry.example/kms:other")).unwrap();
    let out = run(inject(test, &ns)
        .arg("--undo")
        .arg("--backup-dir")
        .arg(&backups));
    assert_exit(&out, CONFLICT);
    let err = stderr(&out);
    assert!(
        err.contains("the backup and the template recorded"),
        "{err}"
    );
    assert!(err.contains("--backup-dir"), "{err}");
    assert!(containers(test, &ns.0).contains("istio-proxy"));

    // Without any backup the record alone restores the template, exactly,
    // and the record goes with the sidecar.
    let empty = scratch_dir("inject-record-no-backups");
    let out = undo(test, &ns, &empty);
    assert!(
        stderr(&out).contains("restored from the template its injection recorded"),
        "{}",
        stderr(&out)
    );
    let restored = test.jsonpath(&ns.0, "deployment/key-management-api", "{.spec.template}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&restored).unwrap(),
        template
    );
    let annotations = test.jsonpath(
        &ns.0,
        "deployment/key-management-api",
        "{.metadata.annotations}",
    );
    assert!(!annotations.contains("kubectl-kms-sts/"), "{annotations}");

    // Injected again, then changed by someone else: the record would undo
    // that change, so it is refused with the change named.
    let out = run(inject(test, &ns).arg("--backup-dir").arg(&empty));
    assert_exit(&out, 0);
    let out = run(test.kubectl().args([
        "set",
        "image",
        "-n",
        &ns.0,
        "deployment/key-management-api",
        "key-management-api=registry.example/kms:2",
    ]));
    assert_exit(&out, 0);
    let out = run(inject(test, &ns)
        .arg("--undo")
        .arg("--backup-dir")
        .arg(scratch_dir("inject-record-none")));
    assert_exit(&out, CONFLICT);
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "container key-management-api: {image} -> registry.example/kms:2"
        )),
        "{err}"
    );
    assert!(containers(test, &ns.0).contains("istio-proxy"));

    // A KMS upgrade by its chart: a new, never-injected template (new
    // image, no sidecar) while the plugin's annotations stay. status sees
    // the sidecar missing; inject injects the new template and records it,
    // so undo never brings the older KMS back.
    let mut upgraded = template.clone();
    upgraded["spec"]["containers"][0]["image"] = "registry.example/kms:3".into();
    replace_template(test, &ns.0, &upgraded);
    assert!(!annotation(test, &ns.0, "kubectl-kms-sts/original-template").is_empty());
    let (_, report) = json_status(plugin_in(test, &ns).arg("status"));
    let check = status_check(&report, "sidecar");
    assert_eq!(check["result"], "fail", "{check}");
    let out = run(inject(test, &ns).arg("--backup-dir").arg(&empty));
    assert_exit(&out, 0);
    assert!(stderr(&out).contains("injected"), "{}", stderr(&out));
    let recorded = annotation(test, &ns.0, "kubectl-kms-sts/original-template");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&recorded).unwrap(),
        upgraded,
        "the chart's template is the never-injected one now"
    );
    undo(test, &ns, &scratch_dir("inject-record-chart"));
    let restored = test.jsonpath(&ns.0, "deployment/key-management-api", "{.spec.template}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&restored).unwrap(),
        upgraded
    );
}

/// Replaces the KMS Deployment's pod template with `template`, as a chart
/// upgrade or another tool would, and waits for its rollout.
fn replace_template(test: &TestCluster, kms: &str, template: &serde_json::Value) {
    let deployment = "deployment/key-management-api";
    let patch = serde_json::json!([
        {"op": "replace", "path": "/spec/template", "value": template}
    ]);
    let out = run(test.kubectl().args([
        "patch",
        "-n",
        kms,
        deployment,
        "--type",
        "json",
        "-p",
        &patch.to_string(),
    ]));
    assert_exit(&out, 0);
    let out =
        run(test
            .kubectl()
            .args(["rollout", "status", "-n", kms, deployment, "--timeout=60s"]));
    assert_exit(&out, 0);
}

/// Asserts a check's result and that its message says `says`.
fn assert_check(check: &serde_json::Value, result: &str, says: impl AsRef<str>) {
    assert_eq!(check["result"], result, "{check}");
    let message = check["message"].as_str().unwrap();
    assert!(message.contains(says.as_ref()), "{check}");
}

/// Deletes the ConfigMap `name` of the Istio namespace, as removing a
/// control plane does.
fn delete_configmap(test: &TestCluster, istio: &str, name: &str) {
    let out = run(test
        .kubectl()
        .args(["delete", "configmap", name, "-n", istio]));
    assert_exit(&out, 0);
}

/// The `proxy version` check of `status -o json` with `args`.
fn proxy_check(test: &TestCluster, ns: &(String, String), args: &[&str]) -> serde_json::Value {
    let (_, report) = json_status(plugin_in(test, ns).arg("status").args(args));
    status_check(&report, "proxy version").clone()
}

/// Runs the command a check's hint names in backquotes, as printed (plus
/// `extra`), with istioctl on PATH.
fn run_hint(check: &serde_json::Value, extra: &[&str]) -> std::process::Output {
    let hint = check["hint"].as_str().unwrap();
    let line = hint
        .split('`')
        .nth(1)
        .unwrap_or_else(|| panic!("no command in {hint}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words[..2], ["kubectl", "kms-sts"], "{hint}");
    let istioctl_dir = istioctl_binary().parent().unwrap().to_owned();
    let path = std::env::join_paths(
        std::iter::once(istioctl_dir)
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    run(plugin().args(&words[2..]).args(extra).env("PATH", path))
}

/// The istio-proxy image of the template and of every pod of it.
fn proxy_images(test: &TestCluster, kms: &str) -> (String, Vec<String>) {
    let template = test.jsonpath(
        kms,
        "deployment/key-management-api",
        "{.spec.template.spec.containers[?(@.name==\"istio-proxy\")].image}\
         {.spec.template.spec.initContainers[?(@.name==\"istio-proxy\")].image}",
    );
    let out = run(test.kubectl().args([
        "get",
        "pods",
        "-n",
        kms,
        "-l",
        "app=key-management-api",
        "-o",
        "json",
    ]));
    assert_exit(&out, 0);
    let pods: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let images = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pod| pod["metadata"]["deletionTimestamp"].is_null())
        .flat_map(|pod| {
            let spec = &pod["spec"];
            let all = spec["containers"].as_array().cloned().unwrap_or_default();
            let init = spec["initContainers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            all.into_iter()
                .chain(init)
                .filter(|c| c["name"] == "istio-proxy")
                .map(|c| c["image"].as_str().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    (template.trim().to_owned(), images)
}

#[test]
fn without_the_flag_the_revision_is_the_only_one_installed_or_the_one_the_default_tag_names() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "inject-revisions");
    let backups = scratch_dir("inject-revisions-backups");
    let control_plane = ["istio-sidecar-injector", "istio"];
    // A revision-only install: the one revision there is is used.
    for name in control_plane {
        copy_as_revision(test, &ns.1, name, "blue");
        delete_configmap(test, &ns.1, name);
    }
    let out = run(inject(test, &ns).arg("--backup-dir").arg(&backups));
    assert_exit(&out, 0);
    assert_eq!(
        annotation(test, &ns.0, "kubectl-kms-sts/injected-revision"),
        "blue"
    );
    undo(test, &ns, &backups);

    // Two revisions and no default tag pointing at either: refused, named.
    let green = "green";
    for name in control_plane {
        let blue = format!("{name}-blue");
        copy_configmap(test, &ns.1, &blue, &format!("{name}-{green}"), green);
    }
    let out = run(inject(test, &ns).arg("--backup-dir").arg(&backups));
    assert_exit(&out, USAGE);
    let err = stderr(&out);
    assert!(err.contains(&format!("blue, {green}")), "{err}");
    assert!(err.contains("--revision blue"), "{err}");
    assert_eq!(containers(test, &ns.0), "key-management-api");

    // The default tag decides.
    let tag = DefaultTag::set(test, green);
    let out = run(inject(test, &ns).arg("--backup-dir").arg(&backups));
    drop(tag);
    assert_exit(&out, 0);
    assert_eq!(
        annotation(test, &ns.0, "kubectl-kms-sts/injected-revision"),
        green
    );
}

/// The Deployment's template and UID, to check later that it is the same
/// Deployment with its never-injected template exactly.
fn never_injected_check<'a>(test: &'a TestCluster, kms: &str) -> impl Fn() + 'a {
    let deployment = "deployment/key-management-api";
    let template: serde_json::Value =
        serde_json::from_str(&test.jsonpath(kms, deployment, "{.spec.template}")).unwrap();
    let uid = test.jsonpath(kms, deployment, "{.metadata.uid}");
    let kms = kms.to_owned();
    move || {
        let restored = test.jsonpath(&kms, deployment, "{.spec.template}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&restored).unwrap(),
            template
        );
        assert_eq!(test.jsonpath(&kms, deployment, "{.metadata.uid}"), uid);
    }
}

/// Runs `inject --undo`, which must succeed.
fn undo(test: &TestCluster, ns: &(String, String), backups: &Path) -> std::process::Output {
    let out = run(inject(test, ns)
        .arg("--undo")
        .arg("--backup-dir")
        .arg(backups));
    assert_exit(&out, 0);
    out
}

/// Runs `inject` and asserts it wrote nothing: the injection is current.
fn assert_inject_writes_nothing(test: &TestCluster, ns: &(String, String), backups: &Path) {
    let generation = test.kms_generation(&ns.0);
    let out = run(inject(test, ns).arg("--backup-dir").arg(backups));
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("already carries the Istio sidecar"),
        "{}",
        stderr(&out)
    );
    assert_eq!(test.kms_generation(&ns.0), generation);
}

/// A refresh happened in place: the same Deployment (`uid`) with one
/// sidecar whose image is `image` in the template and in every pod,
/// injected from the never-injected template.
fn assert_refreshed_in_place(test: &TestCluster, kms: &str, uid: &str, image: &str) {
    let deployment = "deployment/key-management-api";
    assert_eq!(test.jsonpath(kms, deployment, "{.metadata.uid}"), uid);
    assert_eq!(
        containers(test, kms),
        "key-management-api istio-proxy istio-init",
        "one sidecar, not a second one beside the first"
    );
    let (in_template, in_pods) = proxy_images(test, kms);
    assert_eq!(in_template, image);
    // Injected from the never-injected template: the proxy probes the
    // application's own health endpoint, not a rewritten one.
    let probers = test.jsonpath(
        kms,
        deployment,
        "{.spec.template.spec.containers[?(@.name==\"istio-proxy\")].env[?(@.name==\"ISTIO_KUBE_APP_PROBERS\")].value}",
    );
    let probers: serde_json::Value = serde_json::from_str(&probers).unwrap();
    let probed: Vec<&serde_json::Value> = probers
        .as_object()
        .unwrap()
        .values()
        .map(|probe| &probe["httpGet"]["path"])
        .collect();
    assert_eq!(
        probed,
        ["/api/v2/health", "/api/v2/health"],
        "the original liveness and readiness probes, never rewritten ones: {probers}"
    );
    let readiness = test.jsonpath(
        kms,
        deployment,
        "{.spec.template.spec.containers[?(@.name==\"key-management-api\")].readinessProbe.httpGet.path}",
    );
    assert!(readiness.starts_with("/app-health/"), "{readiness}");
    assert_eq!(
        in_pods,
        [image, image],
        "every pod rolled over to the new proxy"
    );
}

#[test]
fn a_stale_sidecar_is_refreshed_in_place_from_the_recorded_template() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "inject-refresh");
    let deployment = "deployment/key-management-api";
    test.install_istio(&ns.1, IstioBuild::Previous, None);
    let template = test.jsonpath(&ns.0, deployment, "{.spec.template}");
    let template: serde_json::Value = serde_json::from_str(&template).unwrap();
    let never_injected = never_injected_check(test, &ns.0);
    let uid = test.jsonpath(&ns.0, deployment, "{.metadata.uid}");
    let injector = "istio-sidecar-injector";
    let backups = scratch_dir("inject-refresh-backups");
    run_chain(&test.kubeconfig, &ns, &backups);
    let old = IstioBuild::Previous.proxy_image();
    assert_eq!(proxy_images(test, &ns.0).0, old);
    let fingerprint = annotation(test, &ns.0, "kubectl-kms-sts/injector-fingerprint");
    let check = proxy_check(test, &ns, &[]);
    assert_eq!(check["result"], "pass", "{check}");
    test.assert_setup_holds(&ns, &host_of(&ns));

    // An upgrade two minor versions on is beyond Istio's supported skew.
    test.set_proxy_version(&ns.1, injector, "docker.io/istio", "1.33.0");
    let check = proxy_check(test, &ns, &[]);
    assert_check(
        &check,
        "fail",
        "more than one minor version behind the control plane's 1.33.0",
    );

    // An in-place upgrade: the newer build's configuration replaces the
    // older one's. status warns, and the command it hints refreshes the
    // sidecar.
    test.install_istio(&ns.1, IstioBuild::Current, None);
    let new = IstioBuild::Current.proxy_image();
    let check = proxy_check(test, &ns, &[]);
    assert_check(&check, "warn", format!("istio-proxy {old}, now {new}"));
    let out = run_hint(&check, &["--backup-dir", backups.to_str().unwrap()]);
    assert_exit(&out, 0);
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "deployment/key-management-api refreshed (istio-proxy {old} -> {new}, revision \
             default): 2 pods run the istio-proxy sidecar"
        )),
        "{err}"
    );
    assert!(
        !err.contains("saved to"),
        "a refresh keeps the first backup: {err}"
    );
    assert_refreshed_in_place(test, &ns.0, &uid, new);
    assert_ne!(
        annotation(test, &ns.0, "kubectl-kms-sts/injector-fingerprint"),
        fingerprint
    );
    let recorded = annotation(test, &ns.0, "kubectl-kms-sts/original-template");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&recorded).unwrap(),
        template,
        "the record still holds the never-injected template"
    );
    test.assert_setup_holds(&ns, &host_of(&ns));

    // Current again: a second run writes nothing.
    assert_inject_writes_nothing(test, &ns, &backups);
    let check = proxy_check(test, &ns, &[]);
    assert_eq!(check["result"], "pass", "{check}");

    // After the refresh, undo puts the never-injected template back
    // exactly (checked against the first injection's backup).
    undo(test, &ns, &backups);
    never_injected();

    // So does uninstall, after another injection and another refresh: Istio
    // moved back in place to the older build.
    let out = run(inject(test, &ns).arg("--backup-dir").arg(&backups));
    assert_exit(&out, 0);
    test.install_istio(&ns.1, IstioBuild::Previous, None);
    let check = proxy_check(test, &ns, &[]);
    assert_check(&check, "warn", format!("istio-proxy {new}, now {old}"));
    let out = run(inject(test, &ns).arg("--backup-dir").arg(&backups));
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains(&format!("{new} -> {old}")),
        "{}",
        stderr(&out)
    );
    let out = run(plugin_in(test, &ns)
        .args(["uninstall", "--yes", "--backup-dir"])
        .arg(&backups));
    assert_exit(&out, 0);
    never_injected();
}

#[test]
fn a_canary_upgrade_moves_the_sidecar_to_the_new_revision_and_back_in_place() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "inject-canary");
    test.install_istio(&ns.1, IstioBuild::Previous, None);
    let never_injected = never_injected_check(test, &ns.0);
    let uid = test.jsonpath(&ns.0, "deployment/key-management-api", "{.metadata.uid}");
    let backups = scratch_dir("inject-canary-backups");
    run_chain(&test.kubeconfig, &ns, &backups);
    let (old, new) = (
        IstioBuild::Previous.proxy_image(),
        IstioBuild::Current.proxy_image(),
    );
    let canary = "1-31-2";
    // A run that moved KMS from one proxy to another, onto `revision`, in
    // place.
    let moved = |out: &std::process::Output, from: &str, to: &str, revision: &str| {
        assert_exit(out, 0);
        assert!(
            stderr(out).contains(&format!("{from} -> {to}, revision {revision}")),
            "{}",
            stderr(out)
        );
        assert_refreshed_in_place(test, &ns.0, &uid, to);
    };

    // The newer build installed as a revision beside the older one, and
    // the default tag moved to it: KMS stays on the revision it was
    // injected with, which status still finds current.
    test.install_istio(&ns.1, IstioBuild::Current, Some(canary));
    let tag = DefaultTag::set(test, canary);
    assert_eq!(proxy_check(test, &ns, &[])["result"], "pass");
    let check = proxy_check(test, &ns, &["--revision", canary]);
    assert_check(
        &check,
        "warn",
        format!(
            "KMS runs istio-proxy {old}; revision {canary} (named by --revision) injects {new}"
        ),
    );
    let out = run_hint(&check, &["--backup-dir", backups.to_str().unwrap()]);
    moved(&out, old, new, canary);
    assert_eq!(
        annotation(test, &ns.0, "kubectl-kms-sts/injected-revision"),
        canary
    );
    assert_eq!(proxy_check(test, &ns, &[])["result"], "pass");
    test.assert_setup_holds(&ns, &host_of(&ns));

    // Moving back to the old revision is a refresh too.
    let out = run(inject(test, &ns)
        .args(["--revision", "default", "--backup-dir"])
        .arg(&backups));
    moved(&out, new, old, "default");
    assert_eq!(proxy_check(test, &ns, &[])["result"], "pass");

    // The old control plane removed while KMS is still on it: status finds
    // the revision KMS was injected with gone, and hints the move to the
    // one the default tag names.
    for name in ["istio-sidecar-injector", "istio"] {
        delete_configmap(test, &ns.1, name);
    }
    let check = proxy_check(test, &ns, &[]);
    assert_check(
        &check,
        "fail",
        "revision default, which is no longer installed",
    );
    let out = run_hint(&check, &["--backup-dir", backups.to_str().unwrap()]);
    moved(&out, old, new, canary);
    drop(tag);
    assert_eq!(proxy_check(test, &ns, &[])["result"], "pass");
    test.assert_setup_holds(&ns, &host_of(&ns));
    // The revision recorded is kept by a run without the flag.
    assert_inject_writes_nothing(test, &ns, &backups);
    assert_eq!(proxy_images(test, &ns.0).1, [new, new]);

    // After the moves, undo puts the never-injected template back exactly.
    undo(test, &ns, &backups);
    never_injected();
}

#[test]
fn an_istio_1_0_injector_is_refused_by_inject_and_compared_with_by_status() {
    let test = cluster("legacy");
    let ns = fresh_namespaces(test, "inject-istio-1-0");
    let deployment = "deployment/key-management-api";
    let never_injected = never_injected_check(test, &ns.0);
    let original = test.jsonpath(&ns.0, deployment, "{.spec.template}");
    let original: serde_json::Value = serde_json::from_str(&original).unwrap();
    test.install_istio(&ns.1, IstioBuild::Istio10, None);
    let backups = scratch_dir("inject-istio-1-0-backups");

    // No istioctl built since renders its template: refused, unchanged.
    let generation = test.kms_generation(&ns.0);
    let out = run(inject(test, &ns).arg("--backup-dir").arg(&backups));
    assert_exit(&out, MISSING);
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "ConfigMap {}/istio-sidecar-injector holds Istio 1.0's sidecar injector",
            ns.1
        )),
        "{err}"
    );
    assert!(err.contains("upgrade Istio first"), "{err}");
    assert_eq!(test.kms_generation(&ns.0), generation);

    // Injected as Istio 1.0's own kube-inject did: status finds the sidecar
    // current by the image the 1.0 template names.
    let old = IstioBuild::Istio10.proxy_image();
    let mut injected = original.clone();
    injected["metadata"]["annotations"]["sidecar.istio.io/status"] =
        r#"{"version":"1.0.2","initContainers":["istio-init"],"containers":["istio-proxy"]}"#
            .into();
    injected["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "istio-proxy", "image": old}));
    replace_template(test, &ns.0, &injected);
    let check = proxy_check(test, &ns, &[]);
    assert_check(
        &check,
        "pass",
        format!("istio-proxy {old} is what revision default injects now"),
    );

    // Istio upgraded in place to a current release: far beyond the skew.
    // The sidecar was not injected by the plugin, so the hint says to put
    // the never-injected template back first; done, inject injects.
    test.install_istio(&ns.1, IstioBuild::Current, None);
    let check = proxy_check(test, &ns, &[]);
    assert_check(
        &check,
        "fail",
        "more than one minor version behind the control plane's 1.31.2",
    );
    let hint = check["hint"].as_str().unwrap();
    assert!(hint.contains("put the original manifest back"), "{hint}");
    replace_template(test, &ns.0, &original);
    let out = run_hint(&check, &["--backup-dir", backups.to_str().unwrap()]);
    assert_exit(&out, 0);
    let new = IstioBuild::Current.proxy_image();
    assert_eq!(
        proxy_images(test, &ns.0),
        (new.to_owned(), vec![new.to_owned(); 2])
    );
    assert_eq!(proxy_check(test, &ns, &[])["result"], "pass");
    undo(test, &ns, &backups);
    never_injected();
}
