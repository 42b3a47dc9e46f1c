//! Every kind of bad input, in one table: each row's message and exit code,
//! and, from the API server's audit log, that none of them wrote anything.

mod support;

use support::{
    assert_exit, cluster, fresh_namespaces, is_mutating, plugin, run_with_stdin, scratch_dir,
    stderr,
};

const USAGE: i32 = 2;
const MISSING: i32 = 6;

const SOURCE: &str = "crn:v1:staging:public:sts:us-south:a/1234:123456789::";
const TARGET: &str = "crn:v1:icp:private:kms:mycluster:n/kube-system:0d70::";

#[test]
fn bad_input_is_refused_with_a_message_and_nothing_is_written() {
    let test = cluster("modern");
    let ns = fresh_namespaces(test, "bad-input");
    let dir = scratch_dir("bad-input");
    let unknown_field = dir.join("unknown.yaml");
    std::fs::write(
        &unknown_field,
        format!("hosts: [10.0.0.1]\nsourceCrn: '{SOURCE}'\ntargetCrns: ['{TARGET}']\nkey: x\n"),
    )
    .unwrap();
    let wrong_type = dir.join("wrong-type.yaml");
    std::fs::write(
        &wrong_type,
        format!("hosts: 10\nsourceCrn: '{SOURCE}'\ntargetCrns: ['{TARGET}']\n"),
    )
    .unwrap();
    let (unknown, wrong) = (
        unknown_field.display().to_string(),
        wrong_type.display().to_string(),
    );

    #[rustfmt::skip]
    let table: Vec<(Vec<&str>, &[u8], i32, &str)> = vec![
        (vec!["set-apikey", "--from-stdin"], b"", USAGE, "the key is empty"),
        (vec!["set-apikey", "--from-stdin"], b"  \n", USAGE, "whitespace"),
        (vec!["set-apikey", "--from-stdin"], b"key\x1bvalue", USAGE, "control characters"),
        (vec!["set-apikey", "--from-stdin"], b"\xc3\x28key", USAGE, "not UTF-8"),
        (vec!["set-apikey", "--from-env", "KMS_BAD_INPUT_UNSET"], b"", USAGE, "is not set"),
        (vec!["set-apikey", "--from-stdin", "--from-file", "/tmp/x"], b"k", USAGE, "cannot be used with"),
        (vec!["set-apikey", "--from-stdin", "--timeout", "0"], b"k", USAGE, "--timeout"),
        (vec!["set-apikey", "--from-stdin", "--restart", "--no-restart"], b"k", USAGE, "cannot be used with"),
        (vec!["set-apikey", "--from-stdin", "--secret", "absent"], b"k", MISSING, "absent does not exist"),
        (vec!["set-apikey", "--from-stdin", "--token-adapter", "absent"], b"k", MISSING, "absent does not exist"),
        (vec!["set-apikey", "--from-stdin", "--timeout", "soon"], b"k", USAGE, "is not a duration"),
        (vec!["inject", "--deployment", "absent"], b"", MISSING, "absent does not exist"),
        (vec!["inject", "--istioctl", "/nonexistent/istioctl"], b"", MISSING, "istioctl is needed"),
        (vec!["inject", "--timeout", "0"], b"", USAGE, "--timeout"),
        (vec!["expose"], b"", USAGE, "--host <HOST>"),
        (vec!["expose", "--host", "9.42.136"], b"", USAGE, "neither an IP address nor a DNS name"),
        (vec!["expose", "--host", "kms_api"], b"", USAGE, "neither an IP address nor a DNS name"),
        (vec!["expose", "--host", "10.0.0.1", "--port", "0"], b"", USAGE, "not in 1..=65535"),
        (vec!["expose", "--host", "10.0.0.1", "--port", "70000"], b"", USAGE, "not in 1..=65535"),
        (vec!["expose", "--host", "10.0.0.1", "--common-name", "\u{201c}istio-service\u{201d}"], b"", USAGE, "without quotes"),
        (vec!["expose", "--host", "10.0.0.1", "--path-prefix", "kms/api"], b"", USAGE, "must start with '/'"),
        (vec!["expose", "--host", "10.0.0.1", "--issuer", "nobody"], b"", MISSING, "nobody does not exist"),
        (vec!["expose", "--host", "10.0.0.1", "--issuer-kind", "Boss"], b"", USAGE, "invalid value 'Boss'"),
        (vec!["expose", "--host", "10.0.0.1", "--dry-run=maybe"], b"", USAGE, "invalid value 'maybe'"),
        (vec!["map-identity", "--source-crn", "crn:v1:staging:public:sts:us-south:a/1234c123456789::", "--target-crn", TARGET], b"", USAGE, "this one has 9"),
        (vec!["map-identity", "--source-crn", SOURCE, "--target-crn", "crn:v1:icp:private:kms:c:n/kube-system:0d70- e216::"], b"", USAGE, "whitespace"),
        (vec!["map-identity", "--source-crn", SOURCE, "--target-crn", SOURCE], b"", USAGE, "not \"kms\""),
        (vec!["map-identity", "--source-crn", "crn:v1:staging:public:sts:us-south:x/1234:1::", "--target-crn", TARGET], b"", USAGE, "field 7 (scope)"),
        (vec!["map-identity", "--source-crn", "crn:v2:staging:public:sts:us-south:a/1234:1::", "--target-crn", TARGET], b"", USAGE, "field 2 (version)"),
        (vec!["map-identity", "--source-crn", SOURCE, "--target-crn", TARGET, "--secret", "absent", "--strict"], b"", MISSING, "absent (key apikey) does not exist"),
        (vec!["--context", "nope", "status"], b"", USAGE, "context \"nope\" does not exist"),
        (vec!["--kubeconfig", "/nonexistent/config", "status"], b"", USAGE, "/nonexistent/config does not exist"),
        (vec!["--request-timeout", "soon", "status"], b"", USAGE, "is not a duration"),
        (vec!["--kms-namespace", "no-such-namespace", "expose", "--host", "10.0.0.1"], b"", MISSING, "no-such-namespace/kms-api does not exist"),
        (vec!["status", "-o", "xml"], b"", USAGE, "invalid value 'xml'"),
        (vec!["status", "--probe-address", "10.1.1.1"], b"", USAGE, "--probe"),
        (vec!["status", "--probe", "--probe-address", "gateway"], b"", USAGE, "invalid IP address"),
        (vec!["rbac", "--for", "expose", "--to-user", "x", "--read-gateway-config"], b"", USAGE, "reads no gateway configuration"),
        (vec!["wizard", "--yes", "--answers", &unknown], b"", USAGE, "unknown field `key`"),
        (vec!["wizard", "--yes", "--answers", &wrong], b"", USAGE, "invalid answers"),
    ];
    assert!(table.len() >= 30);

    let offset = test.audit_offset();
    for (args, input, code, message) in &table {
        // Rows that name their own kubeconfig or namespace get no default for it.
        let mut command = if args.contains(&"--kubeconfig") {
            plugin()
        } else {
            test.plugin()
        };
        if !args.contains(&"--kms-namespace") {
            command.args(["--kms-namespace", &ns.0]);
        }
        command.args(["--istio-namespace", &ns.1]);
        let out = run_with_stdin(command.args(args), input);
        assert_exit(&out, *code);
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{args:?}");
    }
    let writes: Vec<String> = test
        .audit_events_since(offset)
        .iter()
        .filter(|e| support::is_from_plugin(e))
        .filter(|e| is_mutating(e))
        .map(|e| format!("{} {}", e["verb"], e["requestURI"]))
        .collect();
    assert!(writes.is_empty(), "bad input wrote: {writes:?}");
}
