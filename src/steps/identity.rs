//! Identity mapping, the runbook's steps 13-14: the IdentityMappingPolicy
//! that maps the STS source identity to the KMS targets with the API key.
//!
//! `fetch` reads the permissions, the live policy and the API-key secret it
//! names in one concurrent batch; `plan` decides from that alone; `apply`
//! writes the policy when it changes.

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use crate::cluster::Target;
use crate::cluster::apply::{self, ApplyOptions, Live, Planned};
use crate::cluster::permissions::{self, Command, Scope};
use crate::cluster::run::Run;
use crate::error::{Error, Result};
use crate::manifests::identity::IdentityMapping;
use crate::objects::apis::{IDENTITY_POLICY_GROUP, IDENTITY_POLICY_VERSION};
use crate::objects::owned::{self, Where};
use crate::objects::place::ObjectRef;
use crate::values::crn::Crn;

/// What `map-identity` is asked to set up.
#[derive(Debug, Clone)]
pub struct MapIdentityOptions {
    pub source: Crn,
    pub targets: Vec<Crn>,
    /// The policy's name.
    pub name: String,
    /// The API-key secret the policy names, and its data key.
    pub secret: String,
    pub secret_key: String,
    /// A missing API key is an error, not a warning.
    pub strict: bool,
    pub apply: ApplyOptions,
}

/// What the cluster holds that the policy depends on.
#[derive(Debug, Clone)]
pub struct Found {
    /// Where the policy is; `None` when the cluster does not serve its API.
    place: Option<ObjectRef>,
    apikey_secret: Option<Secret>,
    live: Live,
}

/// The policy as it should be, with what writing it changes, and a warning
/// when the secret it names holds no key yet.
#[derive(Debug, Clone)]
pub struct Plan {
    pub policy: Planned,
    pub warning: Option<String>,
}

/// Reads what the policy depends on. A user who lacks a permission it needs
/// is told so, with every missing one, before anything else.
pub async fn fetch(run: Run<'_>, options: &MapIdentityOptions) -> Result<Found> {
    let Run {
        cluster,
        target,
        served,
        write,
        ..
    } = run;
    let namespace = &target.istio_namespace;
    let needs = permissions::for_writes(
        &permissions::for_map_identity(&Scope::namespaces(target), options.apply.strategy),
        write,
    );
    let at = Where {
        policy: Some(&options.name),
        ..Where::namespaces(&target.kms_namespace, namespace)
    };
    let place = owned::POLICY.place(served, &at);
    let live = async {
        match &place {
            Some(place) => apply::read_live(cluster, [place.clone()]).await,
            None => Ok(Live::default()),
        }
    };
    let secrets: Api<Secret> = Api::namespaced(cluster.client(), namespace);
    let read_secret = format!("read secret {namespace}/{}", options.secret);
    let secret = cluster.call(&read_secret, secrets.get_opt(&options.secret));
    let reads = async { tokio::try_join!(live, secret) };
    let (live, apikey_secret) =
        permissions::reads_allowed(cluster, Command::MapIdentity, &needs, reads).await?;
    Ok(Found {
        place,
        apikey_secret,
        live,
    })
}

/// The policy as it should be, or what stops it.
pub fn plan(found: &Found, target: &Target, options: &MapIdentityOptions) -> Result<Plan> {
    let namespace = &target.istio_namespace;
    let mut unmet = Vec::new();
    if found.place.is_none() {
        unmet.push(Error::Missing {
            kind: "API",
            namespace: "cluster".into(),
            name: format!(
                "{IDENTITY_POLICY_GROUP}/{IDENTITY_POLICY_VERSION} IdentityMappingPolicy"
            ),
            hint: "install STS first: its IdentityMappingPolicy CRD comes with it".into(),
        });
    }
    let has_key = found
        .apikey_secret
        .as_ref()
        .and_then(|s| s.data.as_ref())
        .is_some_and(|data| {
            data.get(&options.secret_key)
                .is_some_and(|v| !v.0.is_empty())
        });
    let warning = match (&found.apikey_secret, has_key) {
        (_, true) => None,
        _ if options.strict => {
            unmet.push(Error::Missing {
                kind: "Secret",
                namespace: namespace.clone(),
                name: format!("{} (key {})", options.secret, options.secret_key),
                hint: "store the key first with `kubectl kms-sts set-apikey`".into(),
            });
            None
        }
        (None, false) => Some(format!(
            "secret {namespace}/{} does not exist",
            options.secret
        )),
        (Some(_), false) => Some(format!(
            "secret {namespace}/{} has no non-empty key {}",
            options.secret, options.secret_key
        )),
    };
    Error::unmet(unmet)?;
    let Some(place) = found.place.clone() else {
        unreachable!("an unserved policy API was reported as unmet");
    };
    let policy = IdentityMapping {
        place,
        source: &options.source,
        targets: &options.targets,
        secret: &options.secret,
        secret_key: &options.secret_key,
    }
    .policy();
    let policy = apply::plan(vec![policy], &found.live).remove(0);
    Ok(Plan {
        policy,
        warning: warning.map(|problem| {
            format!(
                "{problem}; the policy refers to it. Store the key with `kubectl kms-sts set-apikey`"
            )
        }),
    })
}

/// Writes the policy when the plan changes it, as `write` says.
pub async fn apply(run: Run<'_>, plan: &Plan, options: &MapIdentityOptions) -> Result<()> {
    apply::write_all(
        run.cluster,
        std::slice::from_ref(&plan.policy),
        options.apply,
        run.write,
        run.journal,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::apply::Preview;
    use crate::objects::apis::ServedApis;
    use crate::values::crn;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    fn options(strict: bool) -> MapIdentityOptions {
        MapIdentityOptions {
            source: crn::parse("crn:v1:staging:public:sts:us-south:a/1234:123456789::").unwrap(),
            targets: vec![
                crn::parse_kms_target("crn:v1:icp:private:kms:mycluster:n/kube-system:0d70::")
                    .unwrap(),
            ],
            name: "stspolicy".into(),
            secret: "sts-apikey".into(),
            secret_key: "apikey".into(),
            strict,
            apply: ApplyOptions::default(),
        }
    }

    fn found(served: bool, key: Option<&[u8]>) -> Found {
        let target = Target::default();
        let at = Where {
            policy: Some("stspolicy"),
            ..Where::namespaces(&target.kms_namespace, &target.istio_namespace)
        };
        let place = owned::POLICY
            .place(&ServedApis::preferred(), &at)
            .filter(|_| served);
        let apikey_secret = key.map(|key| Secret {
            data: Some(BTreeMap::from([(
                "apikey".to_owned(),
                ByteString(key.to_vec()),
            )])),
            ..Secret::default()
        });
        Found {
            live: Live::of(place.clone().map(|place| (place, None))),
            place,
            apikey_secret,
        }
    }

    #[test]
    fn the_plan_creates_the_policy_and_warns_of_a_missing_key_or_lists_what_is_unmet() {
        let target = Target::default();
        let with_key = plan(&found(true, Some(b"key")), &target, &options(false)).unwrap();
        assert_eq!(with_key.policy.preview, Preview::Create);
        assert_eq!(with_key.warning, None);

        let warning = plan(&found(true, None), &target, &options(false))
            .unwrap()
            .warning
            .unwrap();
        assert!(warning.contains("sts-apikey does not exist"), "{warning}");
        assert!(warning.contains("kubectl kms-sts set-apikey"), "{warning}");

        let err = plan(&found(false, None), &target, &options(true))
            .err()
            .unwrap();
        let problems: Vec<String> = err
            .into_problems()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains("IdentityMappingPolicy"),
            "{problems:?}"
        );
        assert!(
            problems[1].contains("sts-apikey (key apikey)"),
            "{problems:?}"
        );
    }
}
