//! `completion`: shell completion scripts for `kubectl-kms_sts` called
//! directly (bash, zsh, fish), and the `kubectl_complete-kms_sts` helper
//! through which kubectl 1.26+ completes `kubectl kms-sts ...` (answered by
//! `crate::completion`).

use clap::CommandFactory;

use crate::cli::{Cli, CompletionArgs, Shell};
use crate::error::Result;
use crate::terminal::output;

/// The helper kubectl runs to complete the plugin's arguments.
pub const KUBECTL_HELPER: &str = "#!/bin/sh\n\
# Save as kubectl_complete-kms_sts somewhere on PATH and make it executable.\n\
exec kubectl kms-sts __complete \"$@\"\n";

pub fn run(args: &CompletionArgs) -> Result<()> {
    let shell = match args.shell {
        Shell::Kubectl => {
            return output::print(KUBECTL_HELPER);
        }
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "kubectl-kms_sts", &mut script);
    output::print(&String::from_utf8_lossy(&script))
}
