//! The identity category: the IdentityMappingPolicy maps valid CRNs and
//! refers to the API key's Secret.

use crate::checks::snapshot::{Names, Snapshot};
use crate::checks::{Check, CheckId};
use crate::values::crn;

pub fn checks(s: &Snapshot, names: &Names) -> Vec<Check> {
    let Some(policy) = &s.policy else {
        return vec![Check::fail(
            CheckId::IdentityMappingPolicy,
            format!("{}/{} does not exist", names.istio_namespace, names.policy),
            format!(
                "run {}",
                names.command("map-identity", " --source-crn CRN --target-crn CRN")
            ),
        )];
    };
    let spec = &policy.spec;
    let mut checks = vec![Check::pass(
        CheckId::IdentityMappingPolicy,
        format!("{}/{} present", names.istio_namespace, names.policy),
    )];
    let source = &spec.identity_mapping.source_identity;
    let mut problems: Vec<String> = Vec::new();
    if let Err(err) = crn::parse(source) {
        problems.push(format!("source: {}", err.problem));
    }
    for target in &spec.target_resources {
        if let Err(err) = crn::parse_kms_target(target) {
            problems.push(format!("target: {}", err.problem));
        }
    }
    checks.push(if problems.is_empty() {
        Check::pass(CheckId::Crns, "source and targets are valid")
    } else {
        Check::fail(
            CheckId::Crns,
            problems.join("; "),
            format!(
                "run {} with corrected CRNs",
                names.command("map-identity", " --source-crn CRN --target-crn CRN")
            ),
        )
    });
    let reference = &spec.identity_mapping.target_credentials.api_key_ref;
    let secret = reference.secret_name.as_str();
    checks.push(if secret == names.secret && s.apikey_secret.is_some() {
        Check::pass(CheckId::ApiKeyReference, format!("secret {secret} exists"))
    } else if secret == names.secret {
        Check::fail(
            CheckId::ApiKeyReference,
            format!("secret {secret} does not exist"),
            format!("run {}", names.command("set-apikey", "")),
        )
    } else {
        Check::warn(
            CheckId::ApiKeyReference,
            format!("refers to secret {secret}, not {}", names.secret),
            format!(
                "check --secret, or run {} again",
                names.command("map-identity", " --source-crn CRN --target-crn CRN")
            ),
        )
    });
    checks
}
