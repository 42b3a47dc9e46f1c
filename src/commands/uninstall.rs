//! `uninstall`: takes the setup back out, over `steps::uninstall`: reads,
//! plans, refuses a user who lacks a permission the plan needs, shows the
//! plan, asks once on a terminal (unless `--yes` or a dry run), applies.

use std::io::IsTerminal;

use crate::cli::UninstallArgs;
use crate::cluster::discovery;
use crate::cluster::permissions::{self, Command};
use crate::cluster::run::Run;
use crate::cluster::{Cluster, Target};
use crate::error::{Error, Result};
use crate::steps::uninstall::{self, UninstallOptions};
use crate::terminal::journal::Terminal;
use crate::terminal::output;

pub async fn run(target: &Target, args: &UninstallArgs) -> Result<()> {
    let options = args.options();
    let cluster = Cluster::connect(target).await?;
    let served = discovery::discover(&cluster).await?;
    carry_out(
        Run::new(&cluster, target, &served, options.write, &Terminal),
        &options,
    )
    .await
}

/// The whole command over a run; the wizard takes a setup out this way too.
pub async fn carry_out(run: Run<'_>, options: &UninstallOptions) -> Result<()> {
    let found = uninstall::fetch(run, options).await?;
    let plan = uninstall::plan(found, options);
    if !plan.lacking.is_empty() {
        return Err(permissions::refusal(run.cluster, Command::Uninstall, &plan.lacking).await);
    }
    eprintln!("Uninstall plan for context {}:", run.cluster.context());
    eprint!("{}", uninstall::plan_text(&plan, run.target, options));
    if let Some(format) = options.write.output {
        output::print(&output::render(&uninstall::shown(&plan), format))?;
    }
    if plan.writes() == 0 {
        eprintln!("nothing to uninstall");
        return Ok(());
    }
    if options.write.dry_run.is_none() && !options.yes {
        confirm()?;
    }
    uninstall::apply(run, plan, options).await
}

/// One confirmation, on a terminal.
fn confirm() -> Result<()> {
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(Error::ConfirmationNeeded {
            command: "uninstall",
        });
    }
    let go = dialoguer::Confirm::new()
        .with_prompt("Uninstall as planned?")
        .default(false)
        .interact_opt();
    match go {
        Ok(Some(true)) => Ok(()),
        _ => {
            let _ = console::Term::stderr().show_cursor();
            Err(Error::Cancelled)
        }
    }
}
