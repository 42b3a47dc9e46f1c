//! `expose`: the runbook's steps 5-12, over `steps::exposure`. Checks
//! everything the objects depend on first (the CRDs, at the versions
//! served; the `kms-api` Service and its port; the issuer; the gateway pods
//! and what they mount; the certificate kms-api serves and the CA that
//! signed it), then applies the Certificate, the CA Secret, Gateway,
//! VirtualService and DestinationRule idempotently.

use crate::cli::ExposeArgs;
use crate::cluster::discovery::{self};
use crate::cluster::{Cluster, Target};
use crate::error::Result;
use crate::objects::apis::ServedApis;
use crate::steps::exposure;

pub async fn run(target: &Target, args: &ExposeArgs) -> Result<()> {
    let options = args.options();
    let write = args.write.options();
    let cluster = Cluster::connect(target).await?;
    let fetch = async |served: &ServedApis| {
        exposure::fetch(&cluster, served, target, &options, write).await
    };
    let (_, found) = discovery::fetch_while_discovering(&cluster, fetch).await?;
    let planned = exposure::plan(&found, target, &options)?;
    exposure::apply(&cluster, &planned, &options, write).await
}
