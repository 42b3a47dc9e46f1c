//! `version`: the plugin's version and, unless `--client`, the API server's,
//! which also proves the kubeconfig and credentials work.

use serde::Serialize;

use crate::cli::VersionArgs;
use crate::cluster::{Cluster, Target};
use crate::error::Result;
use crate::output::{self};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Versions {
    client_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_version: Option<ServerVersion>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ServerVersion {
    git_version: String,
    major: String,
    minor: String,
    platform: String,
}

pub async fn run(target: &Target, args: &VersionArgs) -> Result<()> {
    let server_version = if args.client {
        None
    } else {
        let cluster = Cluster::connect(target).await?;
        let info = cluster
            .call(
                "read the server version",
                cluster.client().apiserver_version(),
            )
            .await?;
        Some(ServerVersion {
            git_version: info.git_version,
            major: info.major,
            minor: info.minor,
            platform: info.platform,
        })
    };
    let versions = Versions {
        client_version: format!("v{}", env!("CARGO_PKG_VERSION")),
        server_version,
    };
    let text = match args.output {
        Some(format) => output::render(&versions, format),
        None => {
            let mut text = format!("Client Version: {}\n", versions.client_version);
            if let Some(server) = &versions.server_version {
                text.push_str(&format!("Server Version: {}\n", server.git_version));
            }
            text
        }
    };
    output::print(&text)
}
