//! `set-apikey`: the runbook's prerequisite steps 1-3. Stores the API key in
//! the `sts-apikey` Secret (the raw bytes: the client encodes base64 once)
//! and restarts the token adapter's Deployment so it reads the new key.
//!
//! The key is read before anything is sent, and the Deployment is checked
//! before the Secret is written, so a bad run changes nothing. An unchanged
//! key writes nothing and restarts nothing. Only the key's fingerprint is
//! ever printed.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};

use crate::apikey::{self, ApiKey};
use crate::apply::DryRun;
use crate::cli::SetApikeyArgs;
use crate::cluster::{Cluster, Target};
use crate::error::{Error, Result};
use crate::output;
use crate::permissions::{self, Scope};
use crate::rollout::{self, FIELD_MANAGER};

/// How many times a write is retried when another client changed the Secret
/// between our read and our write.
const CONFLICT_ATTEMPTS: u32 = 5;

/// What writing the key means for the Secret as it is now.
#[derive(Debug, PartialEq, Eq)]
pub enum SecretChange {
    Create,
    Update { previous: Option<String> },
    Unchanged,
}

/// Compares the stored value with the key: fingerprints only, never the key.
fn secret_change(existing: Option<&Secret>, data_key: &str, key: &ApiKey) -> SecretChange {
    let Some(secret) = existing else {
        return SecretChange::Create;
    };
    let stored = secret.data.as_ref().and_then(|data| data.get(data_key));
    match stored {
        Some(value) if value.0 == key.as_bytes() => SecretChange::Unchanged,
        Some(value) if value.0.is_empty() => SecretChange::Update { previous: None },
        Some(value) => SecretChange::Update {
            previous: Some(apikey::fingerprint(&value.0)),
        },
        None => SecretChange::Update { previous: None },
    }
}

/// The Secret as it is shown by `-o`: the key's value replaced by its fingerprint.
fn redacted_secret(namespace: &str, name: &str, data_key: &str, key: &ApiKey) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {data_key: format!("REDACTED sha256:{}", key.fingerprint())},
    })
}

pub async fn run(target: &Target, args: &SetApikeyArgs) -> Result<()> {
    let key = apikey::read(&args.key_source())?;
    let cluster = Cluster::connect(target).await?;
    store(&cluster, target, args, &key).await
}

/// Reads the Secret and decides what storing `key` in it means. A missing
/// Secret is an error unless `--create` allows creating it.
pub async fn read_secret(
    cluster: &Cluster,
    namespace: &str,
    args: &SetApikeyArgs,
    key: &ApiKey,
) -> Result<(Option<Secret>, SecretChange)> {
    let secrets: Api<Secret> = Api::namespaced(cluster.client(), namespace);
    let existing = cluster
        .call(
            &format!("read secret {namespace}/{}", args.secret),
            secrets.get_opt(&args.secret),
        )
        .await?;
    let change = secret_change(existing.as_ref(), &args.secret_key, key);
    if change == SecretChange::Create && !args.create {
        return Err(Error::Missing {
            kind: "Secret",
            namespace: namespace.to_owned(),
            name: args.secret.clone(),
            hint: format!(
                "the secret is created when STS is installed; check --istio-namespace, \
                 or pass --create to create {}",
                args.secret
            ),
        });
    }
    Ok((existing, change))
}

/// Stores an already-read key and restarts the token adapter as `args` say,
/// over `cluster` (the wizard passes its own).
pub async fn store(
    cluster: &Cluster,
    target: &Target,
    args: &SetApikeyArgs,
    key: &ApiKey,
) -> Result<()> {
    let namespace = &target.istio_namespace;
    let scope = Scope {
        kms: &target.kms_namespace,
        istio: namespace,
        cert_manager: None,
    };
    let needs = permissions::for_set_apikey(&scope, args.create, !args.no_restart);
    permissions::require(
        cluster,
        permissions::Command::SetApikey,
        &needs,
        args.write.options(),
    )
    .await?;
    let secrets: Api<Secret> = Api::namespaced(cluster.client(), namespace);
    let deployments: Api<Deployment> = Api::namespaced(cluster.client(), namespace);

    let (existing, change) = read_secret(cluster, namespace, args, key).await?;
    let restart = args.restart || (change != SecretChange::Unchanged && !args.no_restart);
    if restart {
        // Checked before the Secret is written, so a missing Deployment leaves
        // nothing half-done.
        let found = cluster
            .call(
                &format!("read deployment {namespace}/{}", args.token_adapter),
                deployments.get_opt(&args.token_adapter),
            )
            .await?;
        if found.is_none() {
            return Err(Error::Missing {
                kind: "Deployment",
                namespace: namespace.clone(),
                name: args.token_adapter.clone(),
                hint: "name the token adapter's Deployment with --token-adapter, \
                       or pass --no-restart and restart it yourself"
                    .into(),
            });
        }
    }

    if args.write.dry_run != Some(DryRun::Client) {
        match &change {
            SecretChange::Unchanged => {}
            SecretChange::Create => create_secret(cluster, &secrets, namespace, args, key).await?,
            SecretChange::Update { .. } => {
                update_secret(cluster, &secrets, namespace, args, key, existing).await?
            }
        }
    }

    if let Some(format) = args.write.output {
        let shown = redacted_secret(namespace, &args.secret, &args.secret_key, key);
        output::print(&output::render(&shown, format))?;
    }
    let note = args.write.options().dry_run_note();
    let fingerprint = key.fingerprint();
    let secret_line = match &change {
        SecretChange::Unchanged => format!("unchanged (key sha256:{fingerprint})"),
        SecretChange::Create => format!("created (key sha256:{fingerprint})"),
        SecretChange::Update {
            previous: Some(old),
        } => {
            format!("configured (key sha256:{fingerprint}, was sha256:{old})")
        }
        SecretChange::Update { previous: None } => {
            format!("configured (key sha256:{fingerprint}, was empty)")
        }
    };
    eprintln!("secret/{} {secret_line}{note}", args.secret);

    let adapter = &args.token_adapter;
    if !restart {
        if change != SecretChange::Unchanged {
            eprintln!(
                "deployment/{adapter} not restarted: it keeps the old key until restarted; run \
                 `kubectl rollout restart deployment/{adapter} -n {namespace}`"
            );
        }
        return Ok(());
    }
    match args.write.dry_run {
        Some(DryRun::Client) => {}
        Some(DryRun::Server) => rollout::restart(cluster, namespace, adapter, true).await?,
        None => {
            rollout::restart(cluster, namespace, adapter, false).await?;
            let ready = rollout::wait(cluster, namespace, adapter, args.timeout).await?;
            eprintln!("deployment/{adapter} restarted, {ready} ready");
            return Ok(());
        }
    }
    eprintln!("deployment/{adapter} restarted{note}");
    Ok(())
}

async fn create_secret(
    cluster: &Cluster,
    secrets: &Api<Secret>,
    namespace: &str,
    args: &SetApikeyArgs,
    key: &ApiKey,
) -> Result<()> {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(args.secret.clone()),
            namespace: Some(namespace.to_owned()),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            args.secret_key.clone(),
            ByteString(key.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    };
    let params = PostParams {
        dry_run: args.write.options().server_dry_run(),
        field_manager: Some(FIELD_MANAGER.into()),
    };
    cluster
        .call(
            &format!("create secret {namespace}/{}", args.secret),
            secrets.create(&params, &secret),
        )
        .await?;
    Ok(())
}

/// Writes the key with the resourceVersion that was read as a precondition:
/// if another client changed the Secret meanwhile the server answers 409, and
/// the Secret is read again and the decision remade.
async fn update_secret(
    cluster: &Cluster,
    secrets: &Api<Secret>,
    namespace: &str,
    args: &SetApikeyArgs,
    key: &ApiKey,
    mut current: Option<Secret>,
) -> Result<()> {
    let params = PatchParams {
        dry_run: args.write.options().server_dry_run(),
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    let action = format!("update secret {namespace}/{}", args.secret);
    for _ in 0..CONFLICT_ATTEMPTS {
        let Some(secret) = &current else {
            return Err(Error::Missing {
                kind: "Secret",
                namespace: namespace.to_owned(),
                name: args.secret.clone(),
                hint: "it was deleted while being updated; run the command again".into(),
            });
        };
        if secret_change(Some(secret), &args.secret_key, key) == SecretChange::Unchanged {
            return Ok(());
        }
        let patch = Secret {
            metadata: ObjectMeta {
                resource_version: secret.metadata.resource_version.clone(),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(
                args.secret_key.clone(),
                ByteString(key.as_bytes().to_vec()),
            )])),
            ..Secret::default()
        };
        let written = cluster
            .write(
                &action,
                secrets.patch(&args.secret, &params, &Patch::Merge(&patch)),
            )
            .await?;
        if written.is_ok() {
            return Ok(());
        }
        eprintln!(
            "secret/{} was changed by another client since it was read; reading it again",
            args.secret
        );
        current = cluster
            .call(
                &format!("read secret {namespace}/{}", args.secret),
                secrets.get_opt(&args.secret),
            )
            .await?;
    }
    Err(Error::Conflict {
        kind: "Secret",
        namespace: namespace.to_owned(),
        name: args.secret.clone(),
        attempts: CONFLICT_ATTEMPTS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret_with(value: Option<&[u8]>) -> Secret {
        Secret {
            data: value.map(|v| BTreeMap::from([("apikey".to_owned(), ByteString(v.to_vec()))])),
            ..Secret::default()
        }
    }

    #[test]
    fn decides_by_comparing_bytes() {
        let key = ApiKey::new(b"new-key".to_vec()).unwrap();
        assert_eq!(secret_change(None, "apikey", &key), SecretChange::Create);
        assert_eq!(
            secret_change(Some(&secret_with(Some(b"new-key"))), "apikey", &key),
            SecretChange::Unchanged
        );
        assert_eq!(
            secret_change(Some(&secret_with(Some(b""))), "apikey", &key),
            SecretChange::Update { previous: None }
        );
        assert_eq!(
            secret_change(Some(&secret_with(None)), "apikey", &key),
            SecretChange::Update { previous: None }
        );
        assert_eq!(
            secret_change(Some(&secret_with(Some(b"abc"))), "apikey", &key),
            SecretChange::Update {
                previous: Some("ba7816bf".into())
            }
        );
    }

    #[test]
    fn redacted_output_holds_no_key() {
        let key = ApiKey::new(b"very-secret-key".to_vec()).unwrap();
        let shown = redacted_secret("istio-system", "sts-apikey", "apikey", &key).to_string();
        assert!(!shown.contains("very-secret-key"));
        assert!(!shown.contains("dmVyeS1zZWNyZXQta2V5")); // its base64
        assert!(shown.contains(&key.fingerprint()));
    }
}
