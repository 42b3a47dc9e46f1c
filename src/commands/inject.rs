//! `inject`: the runbook's steps 1-4 without the downtime, over
//! `steps::injection`; `--undo` takes the sidecar out again from the backup.

use crate::cli::InjectArgs;
use crate::cluster::run::Run;
use crate::cluster::{Cluster, Target};
use crate::error::Result;
use crate::steps::injection;
use crate::terminal::journal::Terminal;

pub async fn run(target: &Target, args: &InjectArgs) -> Result<()> {
    let options = args.options();
    let cluster = Cluster::connect(target).await?;
    let run = Run::without_discovery(&cluster, target, args.write.options(), &Terminal);
    if args.undo {
        let found = injection::fetch_for_undo(run, &options).await?;
        let plan = injection::plan_undo(found, target, &options)?;
        return injection::undo(run, &options, plan).await;
    }
    let found = injection::fetch(run, &options).await?;
    let plan = injection::plan(found, target, &options)?;
    injection::apply(run, &options, plan).await
}
