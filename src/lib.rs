//! kubectl-kms-sts: the library behind the `kubectl kms-sts` plugin.
//!
//! `run_from_env` is the whole program: parse the command line, connect as
//! kubectl would, run one subcommand, and map its outcome to a documented exit
//! code. The executable is a one-line wrapper so that tests and the binary run
//! exactly the same code.

pub mod checks;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod error;
pub mod files;
pub mod istioctl;
pub mod manifests;
pub mod objects;
pub mod steps;
pub mod terminal;
pub mod values;

use crate::cli::{Cli, complete as completion};
use crate::error::{Error, ExitStatus, Report};

/// Runs the plugin with the process's arguments and returns its exit code.
pub fn run_from_env() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(completion::REQUEST) {
        return exit_code(terminal::output::print(&completion::answer(&args[1..])), "");
    }
    let cli = match Cli::from_env() {
        Ok(cli) => cli,
        Err(status) => return status.into(),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitStatus::Failure.into();
        }
    };
    let cluster_flags = cli.cluster.target().flags_for_hints();
    exit_code(runtime.block_on(run_until_interrupted(cli)), &cluster_flags)
}

/// Reports a failure on stderr, its hints carrying the run's cluster flags,
/// and turns the outcome into the exit code.
fn exit_code(outcome: Result<(), Error>, cluster_flags: &str) -> std::process::ExitCode {
    match outcome {
        Ok(()) => ExitStatus::Success.into(),
        Err(err) => {
            let report = Report {
                error: &err,
                cluster_flags,
            };
            eprintln!("{report}");
            err.exit_status().into()
        }
    }
}

async fn run_until_interrupted(cli: Cli) -> Result<(), Error> {
    tokio::select! {
        result = commands::run(cli) => result,
        _ = tokio::signal::ctrl_c() => Err(Error::Interrupted),
    }
}
