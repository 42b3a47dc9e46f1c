//! Reads from the cluster what the data path through the ingress gateway
//! depends on beyond the objects `expose` writes: the TLS secret kms-api's
//! pods serve from, and secrets by name. `expose` uses it to learn which CA
//! the gateway must trust, `status` to check what the gateway would load.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;

use crate::cluster::Cluster;
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

/// The first `kubernetes.io/tls` secret that `pods` mount, by name: the
/// certificate the server in those pods presents.
pub async fn served_tls_secret(
    cluster: &Cluster,
    namespace: &str,
    pods: &[Pod],
) -> Result<Option<(String, Secret)>> {
    let mounted: Vec<String> = pods.iter().flat_map(mounts::mounted_secrets).collect();
    let found = secrets(cluster, namespace, mounted.iter().cloned()).await?;
    Ok(first_tls_secret(&mounted, &found))
}

/// The first of `mounted` that is a `kubernetes.io/tls` secret in `found`.
pub fn first_tls_secret(
    mounted: &[String],
    found: &BTreeMap<String, Secret>,
) -> Option<(String, Secret)> {
    mounted.iter().find_map(|name| {
        let secret = found.get(name)?;
        (secret.type_.as_deref() == Some("kubernetes.io/tls"))
            .then(|| (name.clone(), secret.clone()))
    })
}
