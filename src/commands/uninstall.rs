//! `uninstall`: takes the setup back out, over `steps::uninstall`.

use crate::cli::UninstallArgs;
use crate::cluster::discovery;
use crate::cluster::run::Run;
use crate::cluster::{Cluster, Target};
use crate::error::Result;
use crate::steps::uninstall;

pub async fn run(target: &Target, args: &UninstallArgs) -> Result<()> {
    let options = args.options();
    let cluster = Cluster::connect(target).await?;
    let served = discovery::discover(&cluster).await?;
    uninstall::uninstall(Run::new(&cluster, target, &served, options.write), &options).await
}
