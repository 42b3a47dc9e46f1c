//! `inject`: the runbook's steps 1-4 without the downtime, over
//! `steps::injection`; `--undo` takes the sidecar out again from the backup.

use crate::cli::InjectArgs;
use crate::cluster::{Cluster, Target};
use crate::error::Result;
use crate::steps::injection;

pub async fn run(target: &Target, args: &InjectArgs) -> Result<()> {
    let options = args.options();
    let write = args.write.options();
    let cluster = Cluster::connect(target).await?;
    if args.undo {
        let deployment = injection::fetch_for_undo(&cluster, target, &options, write).await?;
        return injection::undo(&cluster, target, &options, write, deployment).await;
    }
    let found = injection::fetch(&cluster, target, &options, write).await?;
    let plan = injection::plan(found, target, &options)?;
    injection::apply(&cluster, target, &options, write, plan).await
}
