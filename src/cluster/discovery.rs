//! Which API versions the cluster serves, read through kube's `Discovery`
//! (one aggregated-discovery request on current servers) into the
//! `ServedApis` that `objects::apis` makes its choices from. A step's reads
//! need not wait for discovery: `fetch_while_discovering` runs them with the
//! versions current clusters serve and repeats them only when the cluster
//! differs.

use kube::discovery::Discovery;

use crate::cluster::Cluster;
use crate::cluster::run::Run;
use crate::error::Result;
use crate::objects::apis::{GATEWAY_API, IDENTITY_POLICY_GROUP, ISTIO_NETWORKING, ServedApis};

/// The groups whose versions decide what the plugin reads and writes.
const GROUPS: [&str; 5] = [
    "cert-manager.io",
    "certmanager.k8s.io",
    ISTIO_NETWORKING,
    GATEWAY_API,
    IDENTITY_POLICY_GROUP,
];

/// Reads the served resources of the groups the plugin uses, through kube's
/// `Discovery`: one aggregated-discovery request to `/apis` (Kubernetes
/// 1.26+); on older servers, the group list and then each group's versions.
pub async fn discover(cluster: &Cluster) -> Result<ServedApis> {
    let action = "discover the served APIs";
    let wanted = || Discovery::new(cluster.client()).filter(&GROUPS);
    let discovery = match cluster.bounded(wanted().run_aggregated()).await? {
        Ok(found) if found.groups().next().is_some() => found,
        // Servers without aggregated discovery answer 404 or 406, or with
        // the plain group list, which holds no aggregated groups.
        Err(kube::Error::Api(status)) if ![406, 404].contains(&status.code) => {
            return Err(cluster.classify(action, kube::Error::Api(status)));
        }
        Err(err @ (kube::Error::HyperError(_) | kube::Error::Service(_))) => {
            return Err(cluster.classify(action, err));
        }
        _ => cluster.call(action, wanted().run()).await?,
    };
    let mut triples = Vec::new();
    for group in discovery.groups() {
        for version in group.versions() {
            for (resource, _) in group.versioned_resources(version) {
                triples.push((group.name().to_owned(), version.to_owned(), resource.plural));
            }
        }
    }
    Ok(ServedApis::from_triples(
        triples
            .iter()
            .map(|(g, v, r)| (g.as_str(), v.as_str(), r.as_str())),
    ))
}

/// Runs `fetch` while discovery runs, with the APIs the plugin prefers
/// (what current clusters serve), so that discovery costs no round trip of
/// its own; when the cluster serves other versions, `fetch` runs again with
/// those. Returns what is served and what `fetch` read with it.
pub async fn fetch_while_discovering<T>(
    run: Run<'_>,
    fetch: impl AsyncFn(Run<'_>) -> Result<T>,
) -> Result<(ServedApis, T)> {
    let preferred = ServedApis::preferred();
    let (served, guessed) = tokio::join!(discover(run.cluster), fetch(run.serving(&preferred)));
    let served = served?;
    if served.choices() == preferred.choices() {
        return Ok((served, guessed?));
    }
    let fetched = fetch(run.serving(&served)).await?;
    Ok((served, fetched))
}
