//! `map-identity`: the runbook's steps 13-14. Validates the CRNs before
//! anything is sent, checks the API-key secret the policy will reference, and
//! applies the IdentityMappingPolicy idempotently.

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use crate::apply::{self, Desired};
use crate::cli::MapIdentityArgs;
use crate::cluster::{Cluster, Target};
use crate::crn::{self, Crn};
use crate::discovery::{self, IDENTITY_POLICY_GROUP, IDENTITY_POLICY_VERSION, ServedApis};
use crate::error::{Error, Result};
use crate::manifests::identity::IdentityMapping;
use crate::permissions::{self, Scope};

/// Parses every CRN, naming the flag of the first bad one.
pub fn parse_crns(args: &MapIdentityArgs) -> Result<(Crn, Vec<Crn>)> {
    let source = crn::parse(&args.source_crn).map_err(|source| Error::InvalidCrn {
        flag: "--source-crn",
        source,
    })?;
    let targets = args
        .target_crns
        .iter()
        .map(|text| {
            crn::parse_kms_target(text).map_err(|source| Error::InvalidCrn {
                flag: "--target-crn",
                source,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((source, targets))
}

pub async fn run(target: &Target, args: &MapIdentityArgs) -> Result<()> {
    // Bad CRNs are refused before anything is sent.
    parse_crns(args)?;
    let cluster = Cluster::connect(target).await?;
    let served = discovery::discover(&cluster).await?;
    let policy = desired_policy(&cluster, &served, target, args).await?;
    check_secret_reference(&cluster, &target.istio_namespace, args).await?;
    apply::write_all(
        &cluster,
        &[policy],
        args.apply.options(),
        args.write.options(),
    )
    .await
}

/// The IdentityMappingPolicy as it should be. Checks that the cluster
/// serves its API (`served`) and that the user may write it, before any
/// write.
pub async fn desired_policy(
    cluster: &Cluster,
    served: &ServedApis,
    target: &Target,
    args: &MapIdentityArgs,
) -> Result<Desired> {
    let (source, targets) = parse_crns(args)?;
    let namespace = &target.istio_namespace;
    if !served.identity_policy() {
        return Err(Error::Missing {
            kind: "API",
            namespace: "cluster".into(),
            name: format!(
                "{IDENTITY_POLICY_GROUP}/{IDENTITY_POLICY_VERSION} IdentityMappingPolicy"
            ),
            hint: "install STS first: its IdentityMappingPolicy CRD comes with it".into(),
        });
    }
    let scope = Scope {
        kms: &target.kms_namespace,
        istio: namespace,
        cert_manager: None,
    };
    let needs = permissions::for_map_identity(&scope, args.apply.apply_strategy);
    permissions::require(
        cluster,
        permissions::Command::MapIdentity,
        &needs,
        args.write.options(),
    )
    .await?;
    Ok(IdentityMapping {
        namespace,
        name: &args.name,
        source: &source,
        targets: &targets,
        secret: &args.secret,
        secret_key: &args.secret_key,
    }
    .policy())
}

/// The policy names a secret and key; their absence is a warning (an error with --strict).
async fn check_secret_reference(
    cluster: &Cluster,
    namespace: &str,
    args: &MapIdentityArgs,
) -> Result<()> {
    let secrets: Api<Secret> = Api::namespaced(cluster.client(), namespace);
    let secret = cluster
        .call(
            &format!("read secret {namespace}/{}", args.secret),
            secrets.get_opt(&args.secret),
        )
        .await?;
    let has_key = secret
        .as_ref()
        .and_then(|s| s.data.as_ref())
        .is_some_and(|data| data.get(&args.secret_key).is_some_and(|v| !v.0.is_empty()));
    if has_key {
        return Ok(());
    }
    let problem = match secret {
        None => format!("secret {namespace}/{} does not exist", args.secret),
        Some(_) => format!(
            "secret {namespace}/{} has no non-empty key {}",
            args.secret, args.secret_key
        ),
    };
    if args.strict {
        return Err(Error::Missing {
            kind: "Secret",
            namespace: namespace.to_owned(),
            name: format!("{} (key {})", args.secret, args.secret_key),
            hint: "store the key first with `kubectl kms-sts set-apikey`".into(),
        });
    }
    eprintln!(
        "warning: {problem}; the policy refers to it. Store the key with `kubectl kms-sts set-apikey`"
    );
    Ok(())
}
