//! `map-identity`: the runbook's steps 13-14, over `steps::identity`.
//! Validates the CRNs before anything is sent, checks the API-key secret the
//! policy will reference, and applies the IdentityMappingPolicy idempotently.

use crate::cli::MapIdentityArgs;
use crate::cluster::discovery;
use crate::cluster::run::Run;
use crate::cluster::{Cluster, Target};
use crate::error::Result;
use crate::steps::identity;
use crate::terminal::journal::Terminal;

pub async fn run(target: &Target, args: &MapIdentityArgs) -> Result<()> {
    let options = args.options()?;
    let cluster = Cluster::connect(target).await?;
    let run = Run::without_discovery(&cluster, target, args.write.options(), &Terminal);
    let fetch = async |run: Run<'_>| identity::fetch(run, &options).await;
    let (served, found) = discovery::fetch_while_discovering(run, fetch).await?;
    let plan = identity::plan(&found, target, &options)?;
    if let Some(warning) = &plan.warning {
        eprintln!("warning: {warning}");
    }
    identity::apply(run.serving(&served), &plan, &options).await
}
