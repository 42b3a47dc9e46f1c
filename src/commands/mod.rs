//! One module per subcommand. `run` dispatches a parsed command line to it.

pub mod completion;
pub mod expose;
pub mod inject;
pub mod map_identity;
pub mod rbac;
pub mod set_apikey;
pub mod status;
pub mod uninstall;
pub mod version;
pub mod wizard;

use crate::cli::{Cli, Command};
use crate::error::Result;

pub async fn run(cli: Cli) -> Result<()> {
    let target = cli.cluster.target();
    let target = &target;
    let contexts = cli.cluster.targets();
    match cli.command {
        Command::Expose(args) => expose::run(target, &args).await,
        Command::MapIdentity(args) => map_identity::run(target, &args).await,
        Command::Status(args) => status::run(target, &contexts, &args).await,
        Command::Rbac(args) => rbac::run(target, &args).await,
        Command::Completion(args) => completion::run(&args),
        Command::Wizard(args) => wizard::run(target, &args).await,
        Command::Inject(args) => inject::run(target, &args).await,
        Command::SetApikey(args) => set_apikey::run(target, &args).await,
        Command::Version(args) => version::run(target, &args).await,
        Command::Uninstall(args) => uninstall::run(target, &args).await,
    }
}
