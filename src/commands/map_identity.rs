//! `map-identity`: the runbook's steps 13-14, over `steps::identity`.
//! Validates the CRNs before anything is sent, checks the API-key secret the
//! policy will reference, and applies the IdentityMappingPolicy idempotently.

use crate::cli::MapIdentityArgs;
use crate::cluster::discovery::{self};
use crate::cluster::{Cluster, Target};
use crate::error::Result;
use crate::objects::apis::ServedApis;
use crate::steps::identity;

pub async fn run(target: &Target, args: &MapIdentityArgs) -> Result<()> {
    let options = args.options()?;
    let write = args.write.options();
    let cluster = Cluster::connect(target).await?;
    let fetch = async |served: &ServedApis| {
        identity::fetch(&cluster, served, target, &options, write).await
    };
    let (_, found) = discovery::fetch_while_discovering(&cluster, fetch).await?;
    let plan = identity::plan(&found, target, &options)?;
    if let Some(warning) = &plan.warning {
        eprintln!("warning: {warning}");
    }
    identity::apply(&cluster, &plan, &options, write).await
}
