//! Shared by the integration tests: the real local test cluster (started on
//! first use through `tests/cluster/up`, reused afterwards), the plugin binary
//! and the harness's kubectl. A test that needs the cluster fails when it
//! cannot have one; it never skips.

#![allow(dead_code)] // each test crate uses its own part of this module

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};

pub struct TestCluster {
    pub profile: &'static str,
    pub kubeconfig: PathBuf,
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run_harness(args: &[&str]) -> String {
    let output = Command::new(repo().join("tests/cluster").join(args[0]))
        .args(&args[1..])
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|err| panic!("cannot run tests/cluster/{}: {err}", args[0]));
    assert!(
        output.status.success(),
        "tests/cluster/{} failed ({}); the test cluster is required, see README",
        args.join(" "),
        output.status
    );
    String::from_utf8(output.stdout).expect("harness output is UTF-8")
}

fn last_line(text: &str) -> PathBuf {
    PathBuf::from(text.lines().last().expect("harness printed a path").trim())
}

/// The cluster of a profile (`modern` or `legacy`), started if needed.
pub fn cluster(profile: &'static str) -> &'static TestCluster {
    static MODERN: OnceLock<TestCluster> = OnceLock::new();
    static LEGACY: OnceLock<TestCluster> = OnceLock::new();
    let cell = match profile {
        "modern" => &MODERN,
        "legacy" => &LEGACY,
        other => panic!("unknown test cluster profile {other}"),
    };
    cell.get_or_init(|| TestCluster {
        profile,
        kubeconfig: last_line(&run_harness(&["up", "--profile", profile])),
    })
}

/// The directory of the harness's Kubernetes binaries (kubectl among them).
pub fn kubernetes_bin() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| last_line(&run_harness(&["build-tools", "kubernetes"])))
}

pub fn plugin_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_kubectl-kms_sts"))
}

/// The plugin, with no ambient kubeconfig: tests pass what they mean.
pub fn plugin() -> Command {
    let mut command = Command::new(plugin_binary());
    command
        .env_remove("KUBECONFIG")
        .env("HOME", scratch_dir("home"));
    command
}

impl TestCluster {
    /// The plugin pointed at this cluster.
    pub fn plugin(&self) -> Command {
        let mut command = plugin();
        command.arg("--kubeconfig").arg(&self.kubeconfig);
        command
    }

    /// The harness's kubectl pointed at this cluster.
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new(kubernetes_bin().join("kubectl"));
        command.arg("--kubeconfig").arg(&self.kubeconfig);
        command
    }

    /// istiod's log (the modern cluster runs it beside the API server, its
    /// log in the cluster's directory).
    fn istiod_log(&self) -> PathBuf {
        self.kubeconfig.parent().unwrap().join("logs/istiod.log")
    }

    /// Where istiod's log ends now.
    pub fn istiod_log_mark(&self) -> u64 {
        std::fs::metadata(self.istiod_log()).unwrap().len()
    }

    /// What istiod has logged since `mark`.
    pub fn istiod_logged_since(&self, mark: u64) -> String {
        use std::io::{Read, Seek};
        let mut log = std::fs::File::open(self.istiod_log()).unwrap();
        log.seek(std::io::SeekFrom::Start(mark)).unwrap();
        let mut logged = Vec::new();
        log.read_to_end(&mut logged).unwrap();
        String::from_utf8_lossy(&logged).into_owned()
    }

    /// A kubeconfig for a new user whose client certificate the cluster's CA
    /// signed; the user has no permissions until a test grants some.
    pub fn user_kubeconfig(&self, name: &str) -> PathBuf {
        last_line(&run_harness(&["user", name, "--profile", self.profile]))
    }
}

/// Runs a command to completion, capturing its output.
pub fn run(command: &mut Command) -> Output {
    let output = command
        .stdin(Stdio::null())
        .output()
        .expect("command starts");
    assert_written_for_people(command, &output);
    output
}

/// What the plugin prints is written for a person: never a Rust debug form
/// of an API answer, in any test.
#[track_caller]
fn assert_written_for_people(command: &Command, output: &Output) {
    if command.get_program() != plugin_binary().as_os_str() {
        return;
    }
    for text in [stdout(output), stderr(output)] {
        for debug in ["Some(", "Status {", "ListMeta"] {
            assert!(!text.contains(debug), "{debug} printed:\n{text}");
        }
    }
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts the exit code, showing both streams when it differs.
#[track_caller]
pub fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "exit code\n--- stdout\n{}\n--- stderr\n{}",
        stdout(output),
        stderr(output)
    );
}

/// A fresh empty directory under the target directory, unique per call.
/// Kept after the test for reading a failure; `scripts/test` empties the
/// target's scratch area when it starts.
pub fn scratch_dir(label: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{label}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// `binary` installed at `path` under another name: a hard link where the
/// file system allows one (a test binary is hundreds of megabytes), a copy
/// where it does not.
pub fn install_as(binary: &Path, path: &Path) {
    if std::fs::hard_link(binary, path).is_err() {
        std::fs::copy(binary, path).expect("copy the binary");
    }
}

/// A DNS name for KMS of its own to a namespace pair. Every pair's Gateway
/// selects the same gateway labels (`istio=ingressgateway`), so istiod
/// merges them all onto each pair's gateway pods, as it would Gateways of
/// different applications: a host claimed by two pairs (an IP address makes
/// KMS claim `*`) is a conflict `expose` refuses.
pub fn host_of(namespaces: &(String, String)) -> String {
    format!("{}.example", namespaces.0)
}

/// A fresh pair of namespaces (KMS, Istio) holding the runbook's workloads,
/// so a test that writes owns everything it writes to.
pub fn fresh_namespaces(test: &TestCluster, label: &str) -> (String, String) {
    seeded_pair(label, &["--profile", test.profile])
}

/// A pair of namespaces named for this test process and `label`, seeded by
/// the harness with `flags`.
fn seeded_pair(label: &str, flags: &[&str]) -> (String, String) {
    let suffix = format!("{}-{}", std::process::id(), label);
    let kms = format!("kms-{suffix}");
    let istio = format!("istio-{suffix}");
    let mut args = vec!["seed-namespaces", kms.as_str(), istio.as_str()];
    args.extend_from_slice(flags);
    run_harness(&args);
    (kms, istio)
}

/// A fresh pair of namespaces whose gateways are labelled apart from every
/// other pair's (see `Gateways`), for a test that exposes KMS by IP address:
/// that claims `*` on the gateway, which no two Gateways on the same pods
/// may.
pub fn own_gateway_namespaces(test: &TestCluster, label: &str) -> (String, String) {
    seeded_pair(label, &["--own-gateways", "--profile", test.profile])
}

/// A live pair of namespaces on the modern cluster: seeded as
/// `fresh_namespaces`, with every pod of theirs played for real (gateway
/// proxies configured by istiod, the KMS stand-in), and their gateways
/// labelled apart from every other pair's (see `Gateways`).
pub fn live_namespaces(test: &TestCluster, label: &str) -> (String, String) {
    assert_eq!(
        test.profile, "modern",
        "only the modern cluster runs a mesh"
    );
    seeded_pair(label, &["--live"])
}

/// The selectors of a live pair's two gateways: the one that mounts the
/// certificate secrets as files (istioctl's `istio-ingressgateway`) and the
/// one that reads them by credentialName (the `gateway` Helm chart's).
pub struct Gateways {
    pub files: String,
    pub credential_name: String,
}

impl Gateways {
    pub fn of(namespaces: &(String, String)) -> Self {
        Gateways {
            files: format!("istio=ingressgateway-{}", namespaces.1),
            credential_name: format!("istio=ingress-{}", namespaces.1),
        }
    }
}

/// What `tests/cluster/request` says of an HTTPS request to `host` through a
/// played gateway of `selector` in `namespace`, tried until `until` holds
/// (`kms`: the KMS stand-in answered; `not-kms`: anything else happened).
pub fn gateway_request(
    namespace: &str,
    selector: &str,
    host: &str,
    until: &str,
) -> serde_json::Value {
    gateway_request_for(namespace, selector, host, "/kms/api/v1/keys", until)
}

/// `gateway_request` for `path`.
pub fn gateway_request_for(
    namespace: &str,
    selector: &str,
    host: &str,
    path: &str,
    until: &str,
) -> serde_json::Value {
    let out = run_harness(&[
        "request", namespace, selector, host, "--path", path, "--until", until,
    ]);
    serde_json::from_str(&out)
        .unwrap_or_else(|err| panic!("request printed no JSON ({err}): {out}"))
}

/// istiod's updates held back from the played gateway pods of `selector`
/// in `namespace` (`tests/cluster/hold-config`) until this is dropped.
pub struct HeldConfig {
    namespace: String,
    selector: String,
}

impl HeldConfig {
    pub fn hold(namespace: &str, selector: &str) -> HeldConfig {
        run_harness(&["hold-config", namespace, selector]);
        HeldConfig {
            namespace: namespace.into(),
            selector: selector.into(),
        }
    }
}

impl Drop for HeldConfig {
    fn drop(&mut self) {
        run_harness(&["hold-config", &self.namespace, &self.selector, "--release"]);
    }
}

/// Another application in its own live namespace `namespace`, served by the
/// gateway pods of `selector` in `gateway_namespace` for `hosts` (see
/// `tests/cluster/seed-app`).
pub fn seed_app(namespace: &str, gateway_namespace: &str, selector: &str, hosts: &[&str]) {
    let mut args = vec!["seed-app", namespace, gateway_namespace, selector];
    args.extend(hosts);
    run_harness(&args);
}

/// Requests to `host` through a played gateway, one after another on fresh
/// connections, from `start` until `finish`, which returns what happened to
/// each (as `gateway_request` says it).
pub struct RequestLoop {
    child: std::process::Child,
    stop: PathBuf,
}

impl RequestLoop {
    pub fn start(namespace: &str, selector: &str, host: &str) -> Self {
        let stop = scratch_dir("request-loop").join("stop");
        let child = Command::new(repo().join("tests/cluster/request"))
            .args([namespace, selector, host, "--while-missing"])
            .arg(&stop)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tests/cluster/request");
        RequestLoop { child, stop }
    }

    pub fn finish(self) -> Vec<serde_json::Value> {
        std::fs::write(&self.stop, "").expect("write the stop file");
        let out = self
            .child
            .wait_with_output()
            .expect("wait for the requests");
        assert!(out.status.success(), "the request loop failed");
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect()
    }
}

/// Every request the played pods of `namespace` received.
pub fn received(namespace: &str) -> Vec<serde_json::Value> {
    let out = run_harness(&["received", namespace]);
    serde_json::from_str(&out)
        .unwrap_or_else(|err| panic!("received printed no JSON ({err}): {out}"))
}

impl TestCluster {
    /// Issues a legacy (`certmanager.k8s.io/v1alpha1`) Certificate as its old
    /// controller did, since no controller serves that API here.
    pub fn issue_legacy_certificate(&self, namespace: &str, name: &str) {
        self.issue_legacy_certificate_for_days(namespace, name, 3650);
    }

    /// The same, valid for `days` only.
    pub fn issue_legacy_certificate_for_days(&self, namespace: &str, name: &str, days: u32) {
        assert_eq!(self.profile, "legacy");
        let days = days.to_string();
        run_harness(&["issue-legacy-certificate", namespace, name, "--days", &days]);
    }

    /// Waits, on a watch, until cert-manager has issued the gateway's
    /// certificate in the Istio namespace of `namespaces`.
    pub fn wait_for_gateway_certificate(&self, namespaces: &(String, String)) {
        let out = run(self.kubectl().args([
            "wait",
            "--for=condition=Ready",
            "--timeout=60s",
            "-n",
            &namespaces.1,
            "certificates.cert-manager.io/istio-ingressgateway-certs",
        ]));
        assert_exit(&out, 0);
    }

    /// What Istio's own configuration generator and traffic simulation say of
    /// an HTTPS request to each host through the gateway, with real TLS
    /// handshakes on both legs (`tests/cluster/gomod/datapath`): its exit code
    /// (0 when every request reaches kms-api) and its JSON report.
    pub fn datapath(
        &self,
        namespaces: &(String, String),
        hosts: &[&str],
    ) -> (i32, serde_json::Value) {
        static BIN: OnceLock<PathBuf> = OnceLock::new();
        let dir = BIN.get_or_init(|| last_line(&run_harness(&["build-tools", "datapath"])));
        let mut command = Command::new(dir.join("datapath"));
        command.arg("--kubeconfig").arg(&self.kubeconfig).args([
            "--kms-namespace",
            &namespaces.0,
            "--gateway-namespace",
            &namespaces.1,
        ]);
        for host in hosts {
            command.args(["--host", host]);
        }
        let out = run(&mut command);
        let report = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|err| panic!("datapath printed no report ({err}): {}", stderr(&out)));
        (out.status.code().expect("datapath exited"), report)
    }
}

/// Runs a `status` command with `-o json`: its exit code and report.
pub fn json_status(command: &mut Command) -> (i32, serde_json::Value) {
    let out = run(command.args(["-o", "json"]));
    let code = out.status.code().unwrap();
    (
        code,
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{}\n{}", stdout(&out), stderr(&out))),
    )
}

/// One check of a `status -o json` report, by name.
pub fn status_check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["categories"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["checks"].as_array().unwrap())
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {report:#}"))
}

/// Whether a `status -o json` check is the warning a pair whose pods are
/// not played gets: its gateway pods run no proxy, so what istiod sent them
/// cannot be read (see `live_namespaces` for pairs whose pods run one).
pub fn unplayed_warning(check: &serde_json::Value) -> bool {
    check["name"] == "gateway config"
        && check["result"] == "warn"
        && check["message"]
            .as_str()
            .is_some_and(|m| m.contains("could not read what a gateway proxy holds"))
}

/// Asserts that a `status -o json` report has no warning but
/// `unplayed_warning`.
pub fn assert_only_unplayed_warning(report: &serde_json::Value) {
    let checks = report["categories"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["checks"].as_array().unwrap());
    assert!(
        checks
            .filter(|check| check["result"] == "warn")
            .all(unplayed_warning),
        "{report:#}"
    );
}

/// The plugin pointed at a cluster and a namespace pair.
pub fn plugin_in(test: &TestCluster, namespaces: &(String, String)) -> Command {
    plugin_as(&test.kubeconfig, namespaces)
}

/// `inject` in `namespaces`, with the harness's istioctl.
pub fn inject(test: &TestCluster, namespaces: &(String, String)) -> Command {
    let mut command = plugin_in(test, namespaces);
    command
        .arg("inject")
        .arg("--istioctl")
        .arg(istioctl_binary());
    command
}

/// The plugin with a kubeconfig (another user's, or a proxy's) and a
/// namespace pair.
pub fn plugin_as(kubeconfig: &Path, namespaces: &(String, String)) -> Command {
    let mut command = plugin();
    command
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--kms-namespace")
        .arg(&namespaces.0)
        .arg("--istio-namespace")
        .arg(&namespaces.1);
    command
}

/// Runs a command with `input` on its standard input. A command may exit
/// without reading its input (a refused answers file, say): the broken pipe
/// that leaves the writer is not a failure, its exit status tells.
pub fn run_with_stdin(command: &mut Command, input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("command starts");
    match child.stdin.take().unwrap().write_all(input) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            panic!("writing the command's input: {error}")
        }
        _ => {}
    }
    let output = child.wait_with_output().unwrap();
    assert_written_for_people(command, &output);
    output
}

impl TestCluster {
    /// `kubectl get KINDS -n NAMESPACE -o name`: the objects there, one
    /// `kind.group/name` per line (empty when there are none).
    pub fn object_names(&self, namespace: &str, kinds: &str) -> String {
        let out = run(self
            .kubectl()
            .args(["get", kinds, "-n", namespace, "-o", "name"]));
        assert_exit(&out, 0);
        stdout(&out)
    }

    /// `kubectl get` of one field, by JSONPath.
    pub fn jsonpath(&self, namespace: &str, object: &str, path: &str) -> String {
        let out = run(self
            .kubectl()
            .args(["get", object, "-n", namespace, "-o"])
            .arg(format!("jsonpath={path}")));
        assert_exit(&out, 0);
        stdout(&out)
    }
    /// What an in-place upgrade does to the injector: its `values` name
    /// another proxy hub and tag. `name` is `istio-sidecar-injector` or a
    /// revision's.
    pub fn set_proxy_version(&self, istio: &str, name: &str, hub: &str, tag: &str) {
        let out = run(self
            .kubectl()
            .args(["get", "configmap", name, "-n", istio, "-o", "json"]));
        assert_exit(&out, 0);
        let mut map: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        let mut values: serde_json::Value =
            serde_json::from_str(map["data"]["values"].as_str().unwrap()).unwrap();
        values["global"]["hub"] = hub.into();
        values["global"]["tag"] = tag.into();
        map["data"]["values"] = values.to_string().into();
        let out = run_with_stdin(
            self.kubectl().args(["replace", "-f", "-"]),
            map.to_string().as_bytes(),
        );
        assert_exit(&out, 0);
    }
}

/// The Istio builds the harness installs (`tests/cluster/install-istio`):
/// two published `istio.io/istio` versions, each with its own injection
/// templates, named as releases by their injector's values; and Istio 1.0's
/// injector.
#[derive(Clone, Copy, Debug)]
pub enum IstioBuild {
    /// What upgrade tests start from.
    Previous,
    /// What the cluster is seeded with and upgrades move to.
    Current,
    /// The injector configuration of the Istio 1.0 chart ICP shipped
    /// (`tests/cluster/seed/injector-istio-1.0.yaml`), which no istioctl
    /// built here renders.
    Istio10,
}

impl IstioBuild {
    fn name(self) -> &'static str {
        match self {
            IstioBuild::Previous => "previous",
            IstioBuild::Current => "current",
            IstioBuild::Istio10 => "1.0",
        }
    }

    /// The proxy image this build's injector names.
    pub fn proxy_image(self) -> &'static str {
        match self {
            IstioBuild::Previous => "docker.io/istio/proxyv2:1.31.0",
            IstioBuild::Current => "docker.io/istio/proxyv2:1.31.2",
            IstioBuild::Istio10 => "docker.io/istio/proxyv2:1.0.2",
        }
    }
}

impl TestCluster {
    /// Installs `build`'s injector configuration (`istio`,
    /// `istio-sidecar-injector`, generated by its istioctl) in the Istio
    /// namespace `istio`: in place of what is there (an in-place upgrade),
    /// or beside it as `revision` (a canary).
    pub fn install_istio(&self, istio: &str, build: IstioBuild, revision: Option<&str>) {
        let mut args = vec!["install-istio", istio, "--build", build.name()];
        if let Some(revision) = revision {
            args.extend(["--revision", revision]);
        }
        args.extend(["--profile", self.profile]);
        run_harness(&args);
    }

    /// The whole setup still holds: `status` passes every check without a
    /// warning (waiting for the Certificate), and Istio's own configuration
    /// generator routes a request for `host` to KMS with both handshakes.
    pub fn assert_setup_holds(&self, namespaces: &(String, String), host: &str) {
        let (code, report) =
            json_status(plugin_in(self, namespaces).args(["status", "--wait", "60s"]));
        assert_eq!(code, 0, "{report:#}");
        assert_only_unplayed_warning(&report);
        let (code, verified) = self.datapath(namespaces, &[host]);
        assert_eq!(code, 0, "{verified:#}");
        let request = &verified["requests"][0];
        assert_eq!(request["reaches"], true, "{verified:#}");
        for leg in ["downstream", "upstream"] {
            assert_eq!(request[leg]["handshake"], "ok", "{leg}: {verified:#}");
        }
    }
}

/// Tests that point the cluster-wide `default` tag somewhere take turns.
static DEFAULT_TAG: Mutex<()> = Mutex::new(());

/// The `default` tag pointed at `revision`, as `istioctl tag set default
/// --revision REV` writes it (a MutatingWebhookConfiguration); removed
/// when dropped.
pub struct DefaultTag<'a> {
    test: &'a TestCluster,
    _turn: MutexGuard<'static, ()>,
}

impl<'a> DefaultTag<'a> {
    pub fn set(test: &'a TestCluster, revision: &str) -> Self {
        let turn = DEFAULT_TAG
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let tag = serde_json::json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "istio-revision-tag-default",
                         "labels": {"istio.io/tag": "default", "istio.io/rev": revision}},
            "webhooks": [],
        });
        let out = run_with_stdin(
            test.kubectl().args(["apply", "-f", "-"]),
            tag.to_string().as_bytes(),
        );
        assert_exit(&out, 0);
        DefaultTag { test, _turn: turn }
    }
}

impl Drop for DefaultTag<'_> {
    fn drop(&mut self) {
        let out = run(self.test.kubectl().args([
            "delete",
            "mutatingwebhookconfiguration",
            "istio-revision-tag-default",
        ]));
        assert_exit(&out, 0);
    }
}

/// The harness's istioctl, built from Istio's published module.
pub fn istioctl_binary() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| last_line(&run_harness(&["build-tools", "istioctl"])))
        .join("istioctl")
}

/// The directory of the harness's krew binaries (krew, validate-krew-manifest).
pub fn krew_bin() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| last_line(&run_harness(&["build-tools", "krew"])))
}

pub fn actionlint_bin() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| last_line(&run_harness(&["build-tools", "actionlint"])))
}

/// The directory `scripts/release-tools` installs the release tools into.
pub fn release_tools_bin() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let output = Command::new(repo().join("scripts/release-tools"))
            .stderr(Stdio::inherit())
            .output()
            .expect("scripts/release-tools starts");
        assert!(output.status.success(), "scripts/release-tools failed");
        last_line(&String::from_utf8(output.stdout).expect("a path"))
    })
}

impl TestCluster {
    /// The API server's audit log (JSON lines, metadata level).
    pub fn audit_log(&self) -> PathBuf {
        self.kubeconfig.with_file_name("audit.log")
    }

    /// Audit events written after `offset` bytes. A marker request (a read
    /// of a namespace no one has) is sent after the caller's requests, and
    /// the log is read once the server has written the marker's event, so
    /// the events of every request that came before it are in.
    pub fn audit_events_since(&self, offset: u64) -> Vec<serde_json::Value> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let marker = format!(
            "audit-marker-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let out = run(self
            .kubectl()
            .args(["get", "namespace", &marker, "--ignore-not-found"]));
        assert_exit(&out, 0);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let bytes = self.audit_bytes_since(offset);
            let events: Vec<serde_json::Value> = bytes
                .split(|b| *b == b'\n')
                .filter(|line| !line.is_empty())
                .filter_map(|line| serde_json::from_slice(line).ok())
                .collect();
            let (markers, events): (Vec<_>, Vec<_>) = events
                .into_iter()
                .partition(|event| event["objectRef"]["name"].as_str() == Some(marker.as_str()));
            if !markers.is_empty() {
                return events;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the marker request {marker} never reached the audit log"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// The audit log's bytes after `offset`. The server rotates the log when
    /// it grows past its size limit: when the log is shorter than `offset`,
    /// the rest of the rotated file (the newest `audit-*.log`) comes first.
    fn audit_bytes_since(&self, offset: u64) -> Vec<u8> {
        let log = self.audit_log();
        let current = std::fs::read(&log).expect("audit log");
        if current.len() as u64 >= offset {
            return current[offset as usize..].to_vec();
        }
        let dir = log.parent().expect("the log is in the cluster's directory");
        let mut rotated: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("the cluster's directory is readable")
            .map(|entry| entry.expect("the cluster's directory is readable").path())
            .filter(|path| {
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                name.starts_with("audit-") && name.ends_with(".log")
            })
            .collect();
        rotated.sort();
        let previous =
            std::fs::read(rotated.last().expect("a rotated audit log")).expect("audit log");
        let mut bytes = previous.get(offset as usize..).unwrap_or_default().to_vec();
        bytes.extend(current);
        bytes
    }

    pub fn audit_offset(&self) -> u64 {
        std::fs::metadata(self.audit_log())
            .expect("audit log")
            .len()
    }
}

/// Whether an audit event is a request of the plugin (by its User-Agent).
pub fn is_from_plugin(event: &serde_json::Value) -> bool {
    event["userAgent"]
        .as_str()
        .is_some_and(|agent| agent.starts_with("kubectl-kms-sts/"))
}

/// Whether an audit event is a write (reviews of one's own permissions are
/// sent as creates but change nothing, and are not counted).
pub fn is_mutating(event: &serde_json::Value) -> bool {
    let verb = event["verb"].as_str().unwrap_or_default();
    let resource = event["objectRef"]["resource"].as_str().unwrap_or_default();
    ["create", "update", "patch", "delete", "deletecollection"].contains(&verb)
        && !resource.starts_with("selfsubject")
}

/// A kubeconfig pointing at `https://127.0.0.1:PORT` with a dummy token, for
/// servers that refuse or never answer.
pub fn kubeconfig_for_port(port: u16) -> PathBuf {
    let path = scratch_dir("raw-server").join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{port}\n\
             users:\n- name: u\n  user:\n    token: abc\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n"
        ),
    )
    .expect("write kubeconfig");
    path
}

/// A loopback port nothing listens on (it was free a moment ago).
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind a loopback port")
        .port()
}

/// Freezes the test cluster's API server (SIGSTOP) until dropped (SIGCONT),
/// so a test can see how the plugin behaves when the server stops answering.
pub struct PausedApiServer {
    pid: String,
}

impl TestCluster {
    pub fn pause_api_server(&self) -> PausedApiServer {
        let pid = self.api_server_pid();
        let status = Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .expect("kill runs");
        assert!(status.success());
        PausedApiServer { pid }
    }
}

impl Drop for PausedApiServer {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.pid]).status();
    }
}

/// `tests/cluster/interpose` in front of a test cluster: a proxy that acts
/// right after one request (another client's write, or freezing the API
/// server), so a fault lands at an exact point of the plugin's conversation.
/// Dropping it stops the proxy and resumes the API server.
pub struct Interposer {
    child: std::process::Child,
    pub kubeconfig: PathBuf,
    api_server_pid: String,
}

impl TestCluster {
    /// Starts the proxy, acting with `action` (`--merge-patch JSON`,
    /// `--freeze`, `--times N`) after each request matching `after`
    /// (`METHOD PATH-REGEX`).
    pub fn interpose(&self, after: &str, action: &[&str]) -> Interposer {
        use std::io::BufRead;
        let mut child = Command::new(repo().join("tests/cluster/interpose"))
            .args(["--profile", self.profile, "--after", after])
            .args(action)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("tests/cluster/interpose starts");
        let mut first_line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first_line)
            .expect("interpose prints its kubeconfig");
        assert!(!first_line.is_empty(), "tests/cluster/interpose failed");
        Interposer {
            child,
            kubeconfig: PathBuf::from(first_line.trim()),
            api_server_pid: self.api_server_pid(),
        }
    }

    fn api_server_pid(&self) -> String {
        std::fs::read_to_string(
            self.kubeconfig
                .with_file_name("run")
                .join("kube-apiserver.pid"),
        )
        .expect("the API server's pid file")
        .trim()
        .to_owned()
    }
}

impl Drop for Interposer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("kill")
            .args(["-CONT", &self.api_server_pid])
            .status();
    }
}

impl TestCluster {
    /// Applies RBAC objects (as `kubectl apply -f -` takes them) and waits
    /// until the API server's authorizer, which learns of new roles and
    /// bindings a moment later, grants `user` the first verb of every Role
    /// and ClusterRole among them (`kubectl auth can-i --as`), on the object
    /// a rule names where it names one.
    pub fn grant(&self, manifest: &[u8], user: &str) {
        let out = run_with_stdin(
            self.kubectl().args(["apply", "-f", "-", "-o", "json"]),
            manifest,
        );
        assert_exit(&out, 0);
        let applied: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let items = match applied["items"].as_array() {
            Some(items) => items.clone(),
            None => vec![applied],
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        for role in items
            .iter()
            .filter(|item| item["kind"] == "Role" || item["kind"] == "ClusterRole")
        {
            let Some(rule) = role["rules"].as_array().and_then(|rules| rules.first()) else {
                continue;
            };
            let (verb, group, resource) = (
                rule["verbs"][0].as_str().unwrap(),
                rule["apiGroups"][0].as_str().unwrap_or(""),
                rule["resources"][0].as_str().unwrap(),
            );
            let mut target = if group.is_empty() {
                resource.to_owned()
            } else {
                format!("{resource}.{group}")
            };
            if let Some(name) = rule["resourceNames"][0].as_str() {
                target = format!("{target}/{name}");
            }
            let mut check = self.kubectl();
            check.args(["auth", "can-i", verb, &target, "--as", user]);
            if let Some(namespace) = role["metadata"]["namespace"].as_str() {
                check.args(["-n", namespace]);
            }
            while !check.output().expect("kubectl starts").status.success() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{user} was never granted {verb} {target}"
                );
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    }
}

/// The runbook's source CRN and a KMS target CRN, corrected to be valid.
pub const SOURCE_CRN: &str = "crn:v1:staging:public:sts:us-south:a/1234:123456789::";
pub const TARGET_CRN: &str =
    "crn:v1:icp:private:kms:mycluster:n/kube-system:0d705d95-e216-4ce4-9c81-38eeef4eee3b::";

/// Runs set-apikey, inject, expose and map-identity in order with
/// `kubeconfig`'s user, each of which must succeed; inject backs up to
/// `backups`.
pub fn run_chain(kubeconfig: &Path, namespaces: &(String, String), backups: &Path) {
    let out = run_with_stdin(
        plugin_as(kubeconfig, namespaces).args(["set-apikey", "--from-stdin"]),
        b"chain-test-key",
    );
    assert_exit(&out, 0);
    let out = run(plugin_as(kubeconfig, namespaces)
        .arg("inject")
        .arg("--istioctl")
        .arg(istioctl_binary())
        .arg("--backup-dir")
        .arg(backups));
    assert_exit(&out, 0);
    let out =
        run(plugin_as(kubeconfig, namespaces).args(["expose", "--host", &host_of(namespaces)]));
    assert_exit(&out, 0);
    let out = run(plugin_as(kubeconfig, namespaces).args([
        "map-identity",
        "--source-crn",
        SOURCE_CRN,
        "--target-crn",
        TARGET_CRN,
    ]));
    assert_exit(&out, 0);
}

impl TestCluster {
    /// The KMS Deployment's generation: unchanged means never written.
    pub fn kms_generation(&self, kms_namespace: &str) -> String {
        self.jsonpath(
            kms_namespace,
            "deployment/key-management-api",
            "{.metadata.generation}",
        )
    }
}

/// Gives the LoadBalancer Service `service` the ingress address `address`,
/// as a cloud's controller would, once it exists.
pub fn give_load_balancer_address(
    test: &TestCluster,
    namespace: &str,
    service: &str,
    address: &str,
) {
    let patch =
        serde_json::json!({"status": {"loadBalancer": {"ingress": [{"ip": address}]}}}).to_string();
    for _ in 0..60 {
        let out = run(test.kubectl().args([
            "patch",
            "service",
            service,
            "-n",
            namespace,
            "--subresource=status",
            "--type=merge",
            "-p",
            &patch,
        ]));
        if out.status.success() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    panic!("service {namespace}/{service} never appeared");
}
