//! `expose`: the runbook's steps 5-12, over `steps::exposure`. Checks
//! everything the objects depend on first (the CRDs, at the versions
//! served; the `kms-api` Service and its port; the issuer; the gateway pods
//! and what they mount; the certificate kms-api serves and the CA that
//! signed it), then applies the Certificate, the CA Secret, Gateway,
//! VirtualService and DestinationRule idempotently, or their Gateway API
//! counterparts; moving from the first to the second, it takes Istio's
//! objects out once the new route serves.

use crate::cli::ExposeArgs;
use crate::cluster::discovery;
use crate::cluster::run::Run;
use crate::cluster::{Cluster, Target};
use crate::error::Result;
use crate::steps::exposure;
use crate::terminal::journal::Terminal;

pub async fn run(target: &Target, args: &ExposeArgs) -> Result<()> {
    let options = args.options();
    let cluster = Cluster::connect(target).await?;
    let run = Run::without_discovery(&cluster, target, args.write.options(), &Terminal);
    let fetch = async |run: Run<'_>| exposure::fetch(run, &options).await;
    let (served, found) = discovery::fetch_while_discovering(run, fetch).await?;
    let plan = exposure::plan(&found, target, &options)?;
    exposure::apply(run.serving(&served), &found, &plan, &options).await
}
