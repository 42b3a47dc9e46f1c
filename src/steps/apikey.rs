//! The API key, the runbook's prerequisite steps 1-3: the key goes into the
//! `sts-apikey` Secret (the raw bytes: the client encodes base64 once) and
//! the token adapter's Deployment is restarted so it reads the new key.
//!
//! The key is read before anything is sent. `fetch` reads the permissions,
//! the Secret and the token adapter in one concurrent batch; `plan` decides
//! from them alone, so a missing Secret or Deployment changes nothing; an
//! unchanged key writes nothing and restarts nothing. Only the key's
//! fingerprint is ever printed.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::Patch;

use crate::cluster::apply::{DryRun, WriteOptions};
use crate::cluster::permissions::{self, Command, Scope};
use crate::cluster::rollout;
use crate::cluster::run::Run;
use crate::cluster::{Cluster, Target};
use crate::error::{Error, Result, Unfinished};
use crate::terminal::output;
use crate::values::apikey::{self, ApiKey};

/// How many times a write is retried when another client changed the Secret
/// between our read and our write.
const CONFLICT_ATTEMPTS: u32 = 5;

/// When the token adapter is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// When the key changes.
    IfChanged,
    Always,
    Never,
}

/// Where the key goes and what follows.
#[derive(Debug, Clone)]
pub struct ApikeyOptions {
    pub secret: String,
    pub secret_key: String,
    /// Create the Secret when it does not exist.
    pub create: bool,
    pub token_adapter: String,
    pub restart: Restart,
    /// How long the token adapter's rollout may take.
    pub timeout: Duration,
}

/// What writing the key means for the Secret as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// What the cluster holds that storing the key depends on.
pub struct Found {
    secret: Option<Secret>,
    token_adapter_exists: bool,
}

/// What storing the key will do.
#[derive(Debug, Clone)]
pub struct Plan {
    pub change: SecretChange,
    pub restart: bool,
    /// The Secret as read, whose resourceVersion the update carries.
    secret: Option<Secret>,
}

/// Reads the Secret and the token adapter. A user who lacks a permission
/// storing the key needs is told so, with every missing one, before
/// anything else.
pub async fn fetch(run: Run<'_>, options: &ApikeyOptions) -> Result<Found> {
    let Run {
        cluster,
        target,
        write,
        ..
    } = run;
    let namespace = &target.istio_namespace;
    let needs = permissions::for_writes(
        &permissions::for_set_apikey(
            &Scope::namespaces(target),
            options.create,
            options.restart != Restart::Never,
        ),
        write,
    );
    let secrets: Api<Secret> = Api::namespaced(cluster.client(), namespace);
    let deployments: Api<Deployment> = Api::namespaced(cluster.client(), namespace);
    let read_secret = format!("read secret {namespace}/{}", options.secret);
    let read_adapter = format!("read deployment {namespace}/{}", options.token_adapter);
    let reads = async {
        let adapter = async {
            if options.restart == Restart::Never {
                return Ok(None);
            }
            cluster
                .call(&read_adapter, deployments.get_opt(&options.token_adapter))
                .await
        };
        tokio::try_join!(
            cluster.call(&read_secret, secrets.get_opt(&options.secret)),
            adapter,
        )
    };
    let (secret, adapter) =
        permissions::reads_allowed(cluster, Command::SetApikey, &needs, reads).await?;
    Ok(Found {
        secret,
        token_adapter_exists: adapter.is_some(),
    })
}

/// What storing `key` will do, or every prerequisite that is not met.
/// `create_hint` says how to get a missing Secret created, as the caller
/// can: `--create` for `set-apikey`.
pub fn plan(
    found: Found,
    target: &Target,
    options: &ApikeyOptions,
    key: &ApiKey,
    create_hint: &str,
) -> Result<Plan> {
    let namespace = &target.istio_namespace;
    let change = secret_change(found.secret.as_ref(), &options.secret_key, key);
    let restart = match options.restart {
        Restart::Always => true,
        Restart::IfChanged => change != SecretChange::Unchanged,
        Restart::Never => false,
    };
    let mut unmet = Vec::new();
    if change == SecretChange::Create && !options.create {
        unmet.push(Error::Missing {
            kind: "Secret",
            namespace: namespace.clone(),
            name: options.secret.clone(),
            hint: create_hint.to_owned(),
        });
    }
    // Checked before the Secret is written, so a missing Deployment leaves
    // nothing half-done.
    if restart && !found.token_adapter_exists {
        unmet.push(Error::Missing {
            kind: "Deployment",
            namespace: namespace.clone(),
            name: options.token_adapter.clone(),
            hint: "name the token adapter's Deployment with --token-adapter, \
                   or pass --no-restart and restart it yourself"
                .into(),
        });
    }
    Error::unmet(unmet)?;
    Ok(Plan {
        change,
        restart,
        secret: found.secret,
    })
}

/// The hint for a missing Secret when `--create` can create it.
pub fn create_flag_hint(options: &ApikeyOptions) -> String {
    format!(
        "the secret is created when STS is installed; check --istio-namespace, \
         or pass --create to create {}",
        options.secret
    )
}

/// Stores the key and restarts the token adapter as planned.
pub async fn apply(run: Run<'_>, options: &ApikeyOptions, key: &ApiKey, plan: Plan) -> Result<()> {
    let Run {
        cluster,
        target,
        write,
        journal,
        ..
    } = run;
    let namespace = &target.istio_namespace;
    let secrets: Api<Secret> = Api::namespaced(cluster.client(), namespace);
    let Plan {
        change,
        restart,
        secret,
    } = plan;
    let stored = format!("store the key in secret/{}", options.secret);
    let restarted = format!("restart deployment/{}", options.token_adapter);
    if !write.client_dry_run() {
        let written = match &change {
            SecretChange::Unchanged => Ok(()),
            SecretChange::Create => {
                create_secret(cluster, &secrets, namespace, options, write, key).await
            }
            SecretChange::Update { .. } => update_secret(run, &secrets, options, key, secret).await,
        };
        if let Err(cause) = written {
            let later = if restart { vec![restarted] } else { Vec::new() };
            return Err(with_restart_on_rerun(Unfinished::within(
                Vec::new(),
                Unfinished::of(stored, cause),
                later,
            )));
        }
    }

    if let Some(format) = write.output {
        let shown = redacted_secret(namespace, &options.secret, &options.secret_key, key);
        journal.objects(&output::render(&shown, format))?;
    }
    let note = write.dry_run_note();
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
    journal.done(&format!("secret/{} {secret_line}{note}", options.secret));

    let adapter = &options.token_adapter;
    if !restart {
        if change != SecretChange::Unchanged {
            journal.done(&format!(
                "deployment/{adapter} not restarted: it keeps the old key until restarted; run \
                 `kubectl rollout restart deployment/{adapter} -n {namespace}`"
            ));
        }
        return Ok(());
    }
    match write.dry_run {
        Some(DryRun::Client) => {}
        Some(DryRun::Server) => rollout::restart(cluster, namespace, adapter, true).await?,
        None => {
            let stored = (change != SecretChange::Unchanged).then_some(stored);
            let restart = async {
                rollout::restart(cluster, namespace, adapter, false).await?;
                rollout::wait(cluster, namespace, adapter, options.timeout).await
            };
            let ready = restart.await.map_err(|cause| {
                with_restart_on_rerun(Unfinished::within(
                    stored.into_iter().collect(),
                    Unfinished::of(restarted, cause),
                    Vec::new(),
                ))
            })?;
            journal.done(&format!("deployment/{adapter} restarted, {ready} ready"));
            return Ok(());
        }
    }
    journal.done(&format!("deployment/{adapter} restarted{note}"));
    Ok(())
}

/// A key that may already be stored is unchanged for a re-run, which then
/// restarts nothing unless told to: the re-run needs `--restart`.
fn with_restart_on_rerun(error: Error) -> Error {
    match error {
        Error::Incomplete {
            mut progress,
            cause,
        } => {
            progress.rerun = Some(
                "run the same command again with --restart to finish (a key already stored \
                 is unchanged for a plain re-run, which would restart nothing)"
                    .to_owned(),
            );
            Error::Incomplete { progress, cause }
        }
        other => other,
    }
}

async fn create_secret(
    cluster: &Cluster,
    secrets: &Api<Secret>,
    namespace: &str,
    options: &ApikeyOptions,
    write: WriteOptions,
    key: &ApiKey,
) -> Result<()> {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(options.secret.clone()),
            namespace: Some(namespace.to_owned()),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(key_data(options, key)),
        ..Secret::default()
    };
    cluster
        .call(
            &format!("create secret {namespace}/{}", options.secret),
            secrets.create(&write.post_params(), &secret),
        )
        .await?;
    Ok(())
}

/// The Secret's data that holds the key.
fn key_data(options: &ApikeyOptions, key: &ApiKey) -> BTreeMap<String, ByteString> {
    BTreeMap::from([(
        options.secret_key.clone(),
        ByteString(key.as_bytes().to_vec()),
    )])
}

/// Writes the key with the resourceVersion that was read as a precondition:
/// if another client changed the Secret meanwhile the server answers 409, and
/// the Secret is read again and the decision remade.
async fn update_secret(
    run: Run<'_>,
    secrets: &Api<Secret>,
    options: &ApikeyOptions,
    key: &ApiKey,
    mut current: Option<Secret>,
) -> Result<()> {
    let (cluster, namespace) = (run.cluster, &run.target.istio_namespace);
    let params = run.write.patch_params();
    let action = format!("update secret {namespace}/{}", options.secret);
    for _ in 0..CONFLICT_ATTEMPTS {
        let Some(secret) = &current else {
            return Err(Error::Missing {
                kind: "Secret",
                namespace: namespace.to_owned(),
                name: options.secret.clone(),
                hint: "it was deleted while being updated; run the command again".into(),
            });
        };
        if secret_change(Some(secret), &options.secret_key, key) == SecretChange::Unchanged {
            return Ok(());
        }
        let patch = Secret {
            metadata: ObjectMeta {
                resource_version: secret.metadata.resource_version.clone(),
                ..ObjectMeta::default()
            },
            data: Some(key_data(options, key)),
            ..Secret::default()
        };
        let written = cluster
            .write(
                &action,
                secrets.patch(&options.secret, &params, &Patch::Merge(&patch)),
            )
            .await?;
        if written.is_ok() {
            return Ok(());
        }
        run.journal.done(&format!(
            "secret/{} was changed by another client since it was read; reading it again",
            options.secret
        ));
        current = cluster
            .call(
                &format!("read secret {namespace}/{}", options.secret),
                secrets.get_opt(&options.secret),
            )
            .await?;
    }
    Err(Error::Conflict {
        kind: "Secret",
        namespace: namespace.to_owned(),
        name: options.secret.clone(),
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
