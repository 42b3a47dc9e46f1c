//! Reads from the cluster what the data path through the ingress gateway
//! depends on beyond the objects `expose` writes: the TLS secret kms-api's
//! pods serve from, and secrets by name. `expose` uses it to learn which CA
//! the gateway must trust, `status` to check what the gateway would load.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;

use crate::cluster::{Cluster, rollout};
use crate::error::Result;
use crate::objects::mounts;

/// The secrets of `namespace` named in `names` that exist, read concurrently.
pub async fn secrets(
    cluster: &Cluster,
    namespace: &str,
    names: impl IntoIterator<Item = String>,
) -> Result<BTreeMap<String, Secret>> {
    let api: Api<Secret> = Api::namespaced(cluster.client(), namespace);
    let mut names: Vec<String> = names.into_iter().collect();
    names.sort();
    names.dedup();
    let reads = names.into_iter().map(|name| {
        let api = api.clone();
        async move {
            let action = format!("read secret {namespace}/{name}");
            let found = cluster.call(&action, api.get_opt(&name)).await?;
            Ok::<_, crate::error::Error>(found.map(|secret| (name, secret)))
        }
    });
    let found = futures::future::try_join_all(reads).await?;
    Ok(found.into_iter().flatten().collect())
}

/// The pods of `namespace` that carry `labels`, and the first
/// `kubernetes.io/tls` secret they mount: the certificate the server in
/// them presents. The secrets `deployment`'s template mounts (of the
/// Deployment that runs those pods, usually) are read along with the pods,
/// so the certificate costs no round trip of its own; what the pods mount
/// beyond that is read after them.
pub async fn pods_and_served_tls_secret(
    cluster: &Cluster,
    namespace: &str,
    labels: &BTreeMap<String, String>,
    deployment: Option<&Deployment>,
) -> Result<(Vec<Pod>, Option<(String, Secret)>)> {
    let guessed = deployment.map(mounts::template_secrets).unwrap_or_default();
    let (pods, mut found) = tokio::try_join!(
        rollout::pods_with_labels(cluster, namespace, labels),
        secrets(cluster, namespace, guessed.iter().cloned()),
    )?;
    let mounted: Vec<String> = pods.iter().flat_map(mounts::mounted_secrets).collect();
    let unread = mounted
        .iter()
        .filter(|name| !guessed.contains(name))
        .cloned();
    found.extend(secrets(cluster, namespace, unread).await?);
    let served = first_tls_secret(&mounted, &found);
    Ok((pods, served))
}

/// The first of `mounted` that is a `kubernetes.io/tls` secret in `found`.
fn first_tls_secret(
    mounted: &[String],
    found: &BTreeMap<String, Secret>,
) -> Option<(String, Secret)> {
    mounted.iter().find_map(|name| {
        let secret = found.get(name)?;
        (secret.type_.as_deref() == Some("kubernetes.io/tls"))
            .then(|| (name.clone(), secret.clone()))
    })
}
