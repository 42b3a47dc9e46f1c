//! `version`: the plugin's version and what it was built from (commit,
//! build date, target, compiler: see `build.rs`), so that a bug report names
//! the exact binary; and, unless `--client`, the API server's version, which
//! also proves the kubeconfig and credentials work.

use serde::Serialize;

use crate::cli::VersionArgs;
use crate::cluster::{Cluster, Target};
use crate::error::Result;
use crate::terminal::output::{self};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Versions {
    client_version: String,
    build: Build,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_version: Option<ServerVersion>,
}

/// What `build.rs` recorded about this binary.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Build {
    commit: &'static str,
    build_date: &'static str,
    target: &'static str,
    rustc_version: &'static str,
}

const BUILD: Build = Build {
    commit: env!("KMS_STS_BUILD_COMMIT"),
    build_date: env!("KMS_STS_BUILD_DATE"),
    target: env!("KMS_STS_BUILD_TARGET"),
    rustc_version: env!("KMS_STS_BUILD_RUSTC"),
};

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
        build: BUILD,
        server_version,
    };
    let text = match args.output {
        Some(format) => output::render(&versions, format),
        None => {
            let build = &versions.build;
            let mut text = format!(
                "Client Version: {}\n  Commit: {}\n  Built: {}\n  Target: {}\n  Compiler: {}\n",
                versions.client_version,
                build.commit,
                build.build_date,
                build.target,
                build.rustc_version
            );
            if let Some(server) = &versions.server_version {
                text.push_str(&format!("Server Version: {}\n", server.git_version));
            }
            text
        }
    };
    output::print(&text)
}
