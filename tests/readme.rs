//! The README's permission table says what each command needs; it is read
//! here and compared with the lists the commands' own preflight checks (and
//! `rbac` grants), so the two cannot drift apart. No cluster is needed.

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
