//! `set-apikey`: the runbook's prerequisite steps 1-3, over `steps::apikey`.
//! The key is read (never from the command line) before anything is sent.

use crate::cli::SetApikeyArgs;
use crate::cluster::run::Run;
use crate::cluster::{Cluster, Target};
use crate::error::Result;
use crate::steps::apikey as step;
use crate::terminal::journal::Terminal;
use crate::values::apikey;

pub async fn run(target: &Target, args: &SetApikeyArgs) -> Result<()> {
    let key = apikey::read(&args.key_source())?;
    let options = args.options();
    let cluster = Cluster::connect(target).await?;
    let run = Run::without_discovery(&cluster, target, args.write.options(), &Terminal);
    let found = step::fetch(run, &options).await?;
    let plan = step::plan(
        found,
        target,
        &options,
        &key,
        &step::create_flag_hint(&options),
    )?;
    step::apply(run, &options, &key, plan).await
}
