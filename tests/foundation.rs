//! The foundation every subcommand stands on: the binary as kubectl runs it,
//! kubeconfig handling with kubectl's flags and rules, authentication, and the
//! error classes with their exit codes. Cluster cases run against the real
//! local test cluster.

mod support;

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::{
    assert_exit, closed_port, cluster, is_from_plugin, kubeconfig_for_port, plugin, run,
    scratch_dir, stderr, stdout,
};

const USAGE: i32 = 2;
const UNREACHABLE: i32 = 3;
const UNAUTHORIZED: i32 = 4;

/// The cluster and CA of the test cluster's kubeconfig, with another user.
fn kubeconfig_with_user(dir: &Path, name: &str, user_yaml: &str) -> PathBuf {
    let admin = std::fs::read_to_string(&cluster("modern").kubeconfig).unwrap();
    let server = yaml_field(&admin, "server:");
    let ca = yaml_field(&admin, "certificate-authority:");
    let path = dir.join(format!("{name}.kubeconfig"));
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\n\
             users:\n- name: {name}\n  user:\n{user_yaml}\
             contexts:\n- name: {name}\n  context:\n    cluster: test\n    user: {name}\ncurrent-context: {name}\n"
        ),
    )
    .unwrap();
    path
}

fn yaml_field(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|line| line.trim().strip_prefix(key))
        .unwrap_or_else(|| panic!("{key} in kubeconfig"))
        .trim()
        .trim_matches('\'')
        .to_owned()
}

/// What the build recorded: the checkout's commit, this machine's target
/// and compiler, and a build date in RFC 3339 form.
fn expected_build() -> (String, String, String) {
    let git = run(Command::new("git")
        .arg("-C")
        .arg(env!("CARGO_MANIFEST_DIR"))
        .args(["rev-parse", "HEAD"]));
    assert_exit(&git, 0);
    let rustc = run(Command::new("rustc").arg("-vV"));
    assert_exit(&rustc, 0);
    let rustc_text = stdout(&rustc);
    let host = rustc_text
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .unwrap()
        .to_owned();
    let release = rustc_text.lines().next().unwrap().to_owned();
    (stdout(&git).trim().to_owned(), host, release)
}

fn assert_rfc3339_utc(date: &str) {
    let shape: String = date
        .chars()
        .map(|c| if c.is_ascii_digit() { '9' } else { c })
        .collect();
    assert_eq!(shape, "9999-99-99T99:99:99Z", "{date}");
}

#[test]
fn version_client_needs_no_cluster() {
    let out = run(plugin().args(["version", "--client"]));
    assert_exit(&out, 0);
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(format!("Client Version: v{}", env!("CARGO_PKG_VERSION")).as_str())
    );
    let (commit, target, rustc) = expected_build();
    assert_eq!(lines.next(), Some(format!("  Commit: {commit}").as_str()));
    assert_rfc3339_utc(lines.next().unwrap().strip_prefix("  Built: ").unwrap());
    assert_eq!(lines.next(), Some(format!("  Target: {target}").as_str()));
    assert_eq!(lines.next(), Some(format!("  Compiler: {rustc}").as_str()));
    assert_eq!(lines.next(), None, "{text}");

    let out = run(plugin().args(["version", "--client", "-o", "json"]));
    assert_exit(&out, 0);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json["clientVersion"],
        format!("v{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(json["build"]["commit"], commit.as_str());
    assert_eq!(json["build"]["target"], target.as_str());
    assert_eq!(json["build"]["rustcVersion"], rustc.as_str());
    assert_rfc3339_utc(json["build"]["buildDate"].as_str().unwrap());
    assert!(json.get("serverVersion").is_none(), "{json}");
}

#[test]
fn version_prints_the_server_version_of_the_test_cluster() {
    let out = run(cluster("modern").plugin().arg("version"));
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains(&format!("Client Version: v{}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(text.contains("Server Version: v1.36."), "{text}");

    let out = run(cluster("modern").plugin().args(["version", "-o", "json"]));
    assert_exit(&out, 0);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["serverVersion"]["major"], "1");
    assert_eq!(json["serverVersion"]["minor"], "36");
}

#[test]
fn missing_kubeconfig_file_is_named() {
    let out = run(plugin().args(["version", "--kubeconfig", "/nonexistent/kms.kubeconfig"]));
    assert_exit(&out, USAGE);
    let err = stderr(&out);
    assert!(
        err.contains("kubeconfig file /nonexistent/kms.kubeconfig does not exist"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
    assert!(stdout(&out).is_empty());
}

#[test]
fn kubeconfig_that_is_not_yaml_is_named() {
    let dir = scratch_dir("bad-yaml");
    let path = dir.join("broken.kubeconfig");
    std::fs::write(&path, "apiVersion: v1\nclusters: [ {name: a\n  - : :\n").unwrap();
    let out = run(plugin().arg("version").env("KUBECONFIG", &path));
    assert_exit(&out, USAGE);
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "kubeconfig file {} is not a valid kubeconfig",
            path.display()
        )),
        "{err}"
    );
    assert!(err.contains("caused by:"), "{err}");
}

#[test]
fn unknown_context_lists_the_existing_ones() {
    let out = run(cluster("modern")
        .plugin()
        .args(["version", "--context", "prod-east"]));
    assert_exit(&out, USAGE);
    let err = stderr(&out);
    assert!(
        err.contains("context \"prod-east\" does not exist"),
        "{err}"
    );
    assert!(
        err.contains("(contexts: kms-sts-admin@kms-sts-modern)"),
        "{err}"
    );
    assert!(err.contains("--context NAME"), "{err}");
}

#[test]
fn unknown_user_and_cluster_are_refused() {
    let out = run(cluster("modern")
        .plugin()
        .args(["version", "--user", "nobody"]));
    assert_exit(&out, USAGE);
    assert!(
        stderr(&out)
            .contains("user \"nobody\" does not exist in the kubeconfig (users: kms-sts-admin)")
    );
    let out = run(cluster("modern")
        .plugin()
        .args(["version", "--cluster", "elsewhere"]));
    assert_exit(&out, USAGE);
    assert!(stderr(&out).contains(
        "cluster \"elsewhere\" does not exist in the kubeconfig (clusters: kms-sts-modern)"
    ));
}

#[test]
fn refused_connection_names_the_server() {
    let port = closed_port();
    let path = kubeconfig_for_port(port);
    let out = run(plugin().arg("version").arg("--kubeconfig").arg(&path));
    assert_exit(&out, UNREACHABLE);
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "cannot reach the API server at https://127.0.0.1:{port}"
        )),
        "{err}"
    );
}

#[test]
fn silent_server_fails_within_the_request_timeout() {
    // Accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let path = kubeconfig_for_port(port);
    let started = Instant::now();
    let out = run(plugin()
        .args(["version", "--request-timeout", "2s"])
        .arg("--kubeconfig")
        .arg(&path));
    let elapsed = started.elapsed();
    assert_exit(&out, UNREACHABLE);
    let err = stderr(&out);
    assert!(err.contains(&format!("https://127.0.0.1:{port}")), "{err}");
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}

#[test]
fn invalid_request_timeout_is_a_usage_error() {
    let out = run(plugin().args(["version", "--request-timeout", "soon"]));
    assert_exit(&out, USAGE);
    assert!(stderr(&out).contains("\"soon\" is not a duration"));
}

#[test]
fn rejected_credentials_are_reported_as_such() {
    // A client certificate from a CA the API server does not trust.
    let dir = scratch_dir("rogue");
    let key = dir.join("rogue.key");
    let crt = dir.join("rogue.crt");
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/O=system:masters/CN=rogue",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let user = format!(
        "    client-certificate: {}\n    client-key: {}\n",
        crt.display(),
        key.display()
    );
    let path = kubeconfig_with_user(&dir, "rogue", &user);
    let out = run(plugin().arg("version").arg("--kubeconfig").arg(&path));
    assert_exit(&out, UNAUTHORIZED);
    assert!(
        stderr(&out).contains("rejected the credentials"),
        "{}",
        stderr(&out)
    );

    let path = kubeconfig_with_user(&dir, "badtoken", "    token: not-a-real-token\n");
    let out = run(plugin().arg("version").arg("--kubeconfig").arg(&path));
    assert_exit(&out, UNAUTHORIZED);
}

/// A ServiceAccount token for bearer-token and exec-plugin authentication.
fn service_account_token() -> String {
    let test = cluster("modern");
    let _ = run(test.kubectl().args([
        "create",
        "serviceaccount",
        "kms-sts-token-test",
        "-n",
        "default",
    ]));
    let out = run(test.kubectl().args([
        "create",
        "token",
        "kms-sts-token-test",
        "-n",
        "default",
        "--duration",
        "1h",
    ]));
    assert_exit(&out, 0);
    stdout(&out).trim().to_owned()
}

#[test]
fn bearer_token_and_exec_plugin_authenticate() {
    let token = service_account_token();
    let dir = scratch_dir("token");
    let account = "system:serviceaccount:default:kms-sts-token-test";
    let path = kubeconfig_with_user(&dir, "sa", &format!("    token: {token}\n"));
    assert_authenticated_as(plugin().arg("--kubeconfig").arg(&path), account);

    let script = dir.join("credential-helper.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"{token}\"}}}}'\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let exec = format!(
        "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {}\n      interactiveMode: Never\n",
        script.display()
    );
    let path = kubeconfig_with_user(&dir, "exec", &exec);
    assert_authenticated_as(plugin().arg("--kubeconfig").arg(&path), account);
}

/// The certificate and key, in PEM, of a test cluster user of that name.
fn user_identity(name: &str) -> (String, String) {
    let kubeconfig = std::fs::read_to_string(cluster("modern").user_kubeconfig(name)).unwrap();
    let read = |key| std::fs::read_to_string(yaml_field(&kubeconfig, key)).unwrap();
    (read("client-certificate:"), read("client-key:"))
}

#[test]
fn client_certificates_inline_and_from_an_exec_plugin_authenticate() {
    use base64::Engine;
    let user = "kms-sts-identity-test";
    let (certificate, key) = user_identity(user);
    let dir = scratch_dir("identity");
    let encode = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
    let inline = format!(
        "    client-certificate-data: {}\n    client-key-data: {}\n",
        encode(&certificate),
        encode(&key)
    );
    let path = kubeconfig_with_user(&dir, "inline", &inline);
    assert_authenticated_as(plugin().arg("--kubeconfig").arg(&path), user);

    // A credential plugin that answers with a certificate instead of a token.
    let credential = serde_json::json!({
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": { "clientCertificateData": certificate, "clientKeyData": key },
    });
    let answer = dir.join("credential.json");
    std::fs::write(&answer, credential.to_string()).unwrap();
    let script = dir.join("certificate-helper.sh");
    std::fs::write(&script, format!("#!/bin/sh\ncat '{}'\n", answer.display())).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let exec = format!(
        "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {}\n      interactiveMode: Never\n",
        script.display()
    );
    let path = kubeconfig_with_user(&dir, "exec-certificate", &exec);
    assert_authenticated_as(plugin().arg("--kubeconfig").arg(&path), user);

    // Half an identity is refused before anything is sent, naming the user.
    let half = format!("    client-certificate-data: {}\n", encode(&certificate));
    let path = kubeconfig_with_user(&dir, "half", &half);
    let out = run(plugin().arg("version").arg("--kubeconfig").arg(&path));
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("user half") && stderr(&out).contains("no client key"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_server_is_trusted_as_the_kubeconfig_says() {
    let admin = std::fs::read_to_string(&cluster("modern").kubeconfig).unwrap();
    let ca = yaml_field(&admin, "certificate-authority:");
    let dir = scratch_dir("trust");
    let with_cluster = |name: &str, cluster_lines: &str| {
        let text = admin.replace(
            &format!("certificate-authority: {ca}"),
            cluster_lines.trim_start(),
        );
        assert_ne!(text, admin);
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };

    // tls-server-name is a name the server's certificate holds, not the URL's.
    let path = with_cluster(
        "server-name",
        &format!("certificate-authority: {ca}\n    tls-server-name: kubernetes.default.svc"),
    );
    assert_reaches_the_server(plugin().arg("--kubeconfig").arg(&path));

    // A name the certificate does not hold, or no CA at all (the public web
    // roots do not sign the test cluster), is an untrusted server.
    let wrong_name = with_cluster(
        "wrong-name",
        &format!("certificate-authority: {ca}\n    tls-server-name: elsewhere.example"),
    );
    let no_ca = with_cluster("no-ca", "insecure-skip-tls-verify: false");
    for (path, cause) in [
        (&wrong_name, "not valid for name \"elsewhere.example\""),
        (&no_ca, "UnknownIssuer"),
    ] {
        let out = run(plugin().arg("version").arg("--kubeconfig").arg(path));
        assert_exit(&out, UNREACHABLE);
        let err = stderr(&out);
        assert!(err.contains("did not prove its identity"), "{err}");
        assert!(err.contains(cause), "{err}");
        assert!(err.contains("certificate-authority"), "{err}");
    }
}

#[test]
fn kubeconfig_files_are_merged_like_kubectl() {
    // The first file sets only current-context, the last one defines that
    // context; the missing file between them is skipped, as kubectl does.
    let dir = scratch_dir("merge");
    let first = dir.join("first");
    std::fs::write(
        &first,
        "apiVersion: v1\nkind: Config\ncurrent-context: kms-sts-admin@kms-sts-modern\n",
    )
    .unwrap();
    let missing = dir.join("does-not-exist");
    let list = std::env::join_paths([
        first.as_path(),
        missing.as_path(),
        cluster("modern").kubeconfig.as_path(),
    ])
    .unwrap();
    assert_reaches_the_server(plugin().env("KUBECONFIG", &list));
}

/// `version` through `command` reaches the server as `username`, by the
/// server's own audit log (`/version` is also open to anonymous requests).
#[track_caller]
fn assert_authenticated_as(command: &mut std::process::Command, username: &str) {
    let test = cluster("modern");
    let offset = test.audit_offset();
    assert_reaches_the_server(command);
    let events = test.audit_events_since(offset);
    assert!(
        events.iter().any(|event| is_from_plugin(event)
            && event["requestURI"] == "/version"
            && event["user"]["username"] == username),
        "no /version request by {username} in the audit log"
    );
}

/// `version` through `command` reports the test cluster's server version.
#[track_caller]
fn assert_reaches_the_server(command: &mut std::process::Command) {
    let out = run(command.arg("version"));
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("Server Version: v1.36."),
        "{}",
        stderr(&out)
    );
}

#[test]
fn insecure_kubeconfig_is_warned_about() {
    let dir = scratch_dir("insecure");
    let admin = std::fs::read_to_string(&cluster("modern").kubeconfig).unwrap();
    let ca = yaml_field(&admin, "certificate-authority:");
    let insecure = admin.replace(
        &format!("certificate-authority: {ca}"),
        "insecure-skip-tls-verify: true",
    );
    assert_ne!(insecure, admin);
    let path = dir.join("kubeconfig");
    std::fs::write(&path, insecure).unwrap();
    let out = run(plugin().arg("version").arg("--kubeconfig").arg(&path));
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("warning: the kubeconfig turns off TLS verification"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn no_panic_or_debug_dump_in_errors() {
    let out = run(plugin().args(["version", "--kubeconfig", "/nonexistent"]));
    let err = stderr(&out);
    assert!(
        !err.contains("panicked") && !err.contains("{ ") && !err.contains("Error {"),
        "{err}"
    );
    let mut lines = err.lines();
    assert!(lines.next().unwrap().starts_with("error: "));
    assert!(lines.all(|line| line.starts_with("  ")));
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    let out = run(plugin().arg("frobnicate"));
    assert_exit(&out, USAGE);
    assert!(stderr(&out).contains("unrecognized subcommand 'frobnicate'"));
    let mut buf = String::new();
    let _ = out.stdout.as_slice().read_to_string(&mut buf);
    assert!(buf.is_empty());
}

/// A TCP pass-through to `upstream` that counts the connections it is
/// given; TLS goes through untouched (the API server's certificate names
/// 127.0.0.1, whatever the port).
fn counting_proxy(upstream: std::net::SocketAddr) -> (u16, std::sync::Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            counter.fetch_add(1, Ordering::SeqCst);
            let Ok(server) = std::net::TcpStream::connect(upstream) else {
                continue;
            };
            for (mut from, mut to) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Both);
                });
            }
        }
    });
    (port, accepted)
}

/// The test cluster's kubeconfig with its server at `address`.
fn kubeconfig_at(test: &support::TestCluster, address: &str) -> (PathBuf, String) {
    let text = std::fs::read_to_string(&test.kubeconfig).unwrap();
    let server = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("server: https://"))
        .unwrap()
        .to_owned();
    let path = scratch_dir("moved-server").join("kubeconfig");
    std::fs::write(&path, text.replace(&server, address)).unwrap();
    (path, server)
}

#[test]
fn concurrent_requests_share_one_http2_connection() {
    let test = cluster("modern");
    let (_, server) = kubeconfig_at(test, "unused");
    let (port, accepted) = counting_proxy(server.parse().unwrap());
    let (path, _) = kubeconfig_at(test, &format!("127.0.0.1:{port}"));
    // `status` sends its reads in concurrent batches, over one HTTP/2
    // connection; beside it, the HTTP/1.1 connection port-forwards take
    // (the API server upgrades only HTTP/1.1) is opened with the first
    // batch.
    let out = run(plugin().arg("--kubeconfig").arg(&path).arg("status"));
    assert!(
        stdout(&out).contains(&format!(
            "√ API server: reachable at https://127.0.0.1:{port}"
        )),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "connections opened");
}

#[test]
fn a_server_that_speaks_only_http1_gets_a_connection_per_concurrent_request() {
    use std::io::BufRead;
    let test = cluster("modern");
    let mut proxy = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/cluster/http1-proxy"
    ))
    .args(["--profile", test.profile])
    .stdout(std::process::Stdio::piped())
    .spawn()
    .expect("start tests/cluster/http1-proxy");
    let mut lines = std::io::BufReader::new(proxy.stdout.take().unwrap()).lines();
    let address = lines.next().unwrap().unwrap();
    let (path, _) = kubeconfig_at(test, &address);
    let out = run(plugin().arg("--kubeconfig").arg(&path).arg("status"));
    proxy.kill().unwrap();
    proxy.wait().unwrap();
    assert!(
        stdout(&out).contains(&format!("√ API server: reachable at https://{address}")),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("√ permissions: "), "{}", stdout(&out));
    let connections: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(connections.len() > 2, "{connections:?}");
    // Every connection of the API client negotiated HTTP/1.1; the
    // port-forwards' one offers no protocol (HTTP/1.1 is all it speaks).
    let (offered_none, negotiated): (Vec<&String>, Vec<&String>) = connections
        .iter()
        .partition(|line| *line == "connection None");
    assert_eq!(offered_none.len(), 1, "{connections:?}");
    assert!(
        negotiated.iter().all(|line| *line == "connection http/1.1"),
        "{connections:?}"
    );
}
