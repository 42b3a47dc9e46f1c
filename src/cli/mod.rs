//! The command line, and only the command line: clap's command tree, the
//! flag groups several subcommands share, and the lowering of flags into the
//! library's plain options (`cluster::Target`, `apply::WriteOptions`,
//! `apply::ApplyOptions`, ...). clap is seen here and in the command shells
//! alone; no library module imports this one, so the command line is parsed
//! and checked once, before any connection, and the library can be driven
//! without it (the wizard does).

pub mod complete;
mod subcommands;

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::PossibleValue;
use clap::{Args, Parser, Subcommand, ValueEnum};

pub use self::subcommands::*;
use crate::cluster::Target;
use crate::cluster::apply::{ApplyOptions, DryRun, Strategy, WriteOptions};
use crate::cluster::permissions::Command as PermissionCommand;
use crate::error::ExitStatus;
use crate::steps::exposure::ExposureApi;
use crate::terminal::output::Format;
use crate::values::defaults;
use crate::values::duration;

#[derive(Debug, Parser)]
#[command(
    name = "kubectl kms-sts",
    bin_name = "kubectl kms-sts",
    version,
    about = "Enable a Key Management Service to accept Secure Token Service calls on an Istio mesh",
    long_about = "Enable a Key Management Service (KMS) to accept calls brokered by the Secure \
                  Token Service (STS) on an Istio-meshed cluster.\n\nEach subcommand replaces a \
                  part of the manual runbook and can be re-run safely.",
    disable_help_subcommand = true
)]
pub struct Cli {
    #[command(flatten)]
    pub cluster: ClusterArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Store the STS API key in its Secret and restart the token adapter.
    SetApikey(SetApikeyArgs),
    /// Add the Istio sidecar to the KMS Deployment, in place, with a backup.
    Inject(InjectArgs),
    /// Expose the KMS API through a Certificate, Gateway, VirtualService and DestinationRule.
    Expose(ExposeArgs),
    /// Map the STS source identity to KMS with an IdentityMappingPolicy.
    MapIdentity(MapIdentityArgs),
    /// Check every step of the setup, with a hint for each problem.
    Status(StatusArgs),
    /// Print the Roles and bindings that grant exactly what a command needs.
    Rbac(RbacArgs),
    /// Walk through the whole setup interactively, or replay saved answers.
    Wizard(WizardArgs),
    /// Take the setup back out: delete what the plugin created, remove the sidecar.
    Uninstall(UninstallArgs),
    /// Print the plugin's version and the API server's version.
    Version(VersionArgs),
    /// Print a shell completion script, or kubectl's completion helper.
    Completion(CompletionArgs),
}

impl Cli {
    /// The process's command line, parsed; or, when it asks for help or a
    /// version or is malformed, the exit status once clap has printed its
    /// answer (help and version to stdout, usage errors to stderr).
    pub fn from_env() -> Result<Cli, ExitStatus> {
        let print = |err: clap::Error| {
            let _ = err.print();
            if err.use_stderr() {
                ExitStatus::Usage
            } else {
                ExitStatus::Success
            }
        };
        let cli = Cli::try_parse().map_err(print)?;
        match cli.several_contexts_refused() {
            Some(err) => Err(print(err)),
            None => Ok(cli),
        }
    }

    /// `--context` given more than once where only one context can be
    /// used, or beside `status --all-contexts`.
    fn several_contexts_refused(&self) -> Option<clap::Error> {
        let message = match &self.command {
            Command::Status(args) if args.all_contexts && !self.cluster.context.is_empty() => {
                "--all-contexts checks every context; leave out --context, or name the \
                 contexts with --context alone"
            }
            Command::Status(_) => return None,
            _ if self.cluster.context.len() > 1 => {
                "--context can be given once here; only `status` checks several contexts \
                 in one run"
            }
            _ => return None,
        };
        let mut command = <Cli as clap::CommandFactory>::command();
        Some(command.error(clap::error::ErrorKind::ArgumentConflict, message))
    }
}

/// How to reach the cluster, with kubectl's flag names and meanings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Cluster options")]
pub struct ClusterArgs {
    /// Path to the kubeconfig file to use (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use (`status` takes it repeated, to check
    /// several contexts in one run).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Vec<String>,

    /// The kubeconfig cluster to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub cluster: Option<String>,

    /// The kubeconfig user to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub user: Option<String>,

    /// How long to wait for one API request before giving up; 0 waits forever.
    #[arg(long, global = true, value_name = "DURATION", default_value = defaults::REQUEST_TIMEOUT, value_parser = duration::parse)]
    pub request_timeout: Duration,

    /// Namespace of the Key Management Service.
    #[arg(
        long,
        global = true,
        value_name = "NAMESPACE",
        default_value = defaults::KMS_NAMESPACE
    )]
    pub kms_namespace: String,

    /// Namespace of Istio and the Secure Token Service.
    #[arg(
        long,
        global = true,
        value_name = "NAMESPACE",
        default_value = defaults::ISTIO_NAMESPACE
    )]
    pub istio_namespace: String,
}

impl ClusterArgs {
    /// Where this run works: its one context (`Cli::from_env` refuses
    /// several for every subcommand but `status`).
    pub fn target(&self) -> Target {
        Target {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.first().cloned(),
            cluster: self.cluster.clone(),
            user: self.user.clone(),
            request_timeout: self.request_timeout,
            kms_namespace: self.kms_namespace.clone(),
            istio_namespace: self.istio_namespace.clone(),
        }
    }

    /// One target per `--context` given, in order; none when none was.
    pub fn targets(&self) -> Vec<Target> {
        self.context
            .iter()
            .map(|context| Target {
                context: Some(context.clone()),
                ..self.target()
            })
            .collect()
    }
}

/// The names of the runbook's objects where an installation differs from
/// the runbook; `status` and `wizard` take them alike.
#[derive(Debug, Clone, Args)]
pub struct ObjectNameArgs {
    /// Deployment of the Key Management Service API.
    #[arg(long, value_name = "NAME", default_value = defaults::DEPLOYMENT)]
    pub deployment: String,

    /// Deployment of the token adapter.
    #[arg(long, value_name = "NAME", default_value = defaults::TOKEN_ADAPTER)]
    pub token_adapter: String,

    /// Secret holding the API key.
    #[arg(long, value_name = "NAME", default_value = defaults::SECRET)]
    pub secret: String,

    /// Data key of that Secret.
    #[arg(long, value_name = "KEY", default_value = defaults::SECRET_KEY)]
    pub secret_key: String,

    /// Name of the IdentityMappingPolicy.
    #[arg(long, value_name = "NAME", default_value = defaults::POLICY)]
    pub policy: String,
}

/// How a command that writes to the cluster reports, or only previews, its writes.
#[derive(Debug, Clone, Default, Args)]
pub struct WriteArgs {
    /// Only show what would be written: `client` sends nothing, `server` has
    /// the API server validate the writes without persisting them.
    #[arg(long, value_name = "MODE", num_args = 0..=1, require_equals = true, default_missing_value = "client")]
    pub dry_run: Option<DryRun>,

    /// Print the objects written (or that would be) as JSON or YAML; secret
    /// values are always redacted.
    #[arg(short, long, value_name = "FORMAT")]
    pub output: Option<Format>,
}

impl WriteArgs {
    pub fn options(&self) -> WriteOptions {
        WriteOptions {
            dry_run: self.dry_run,
            output: self.output,
        }
    }
}

/// How objects are written, for commands that create custom objects.
#[derive(Debug, Clone, Args)]
pub struct ApplyArgs {
    /// `server-side` apply, or `update` (get, then create or replace) for
    /// servers that cannot apply.
    #[arg(long, value_name = "STRATEGY", default_value = "server-side")]
    pub apply_strategy: Strategy,

    /// Take over fields another field manager owns instead of failing.
    #[arg(long)]
    pub force_conflicts: bool,
}

impl ApplyArgs {
    pub fn options(&self) -> ApplyOptions {
        ApplyOptions {
            strategy: self.apply_strategy,
            force_conflicts: self.force_conflicts,
        }
    }
}

/// Offers a library enum on the command line as the words given, each with
/// its optional help, so the library's types need no parser of their own.
macro_rules! words {
    ($type:ident { $($variant:ident => $word:literal $(($help:literal))?),+ $(,)? }) => {
        impl ValueEnum for $type {
            fn value_variants<'a>() -> &'a [Self] {
                &[$($type::$variant),+]
            }

            fn to_possible_value(&self) -> Option<PossibleValue> {
                Some(match self {
                    $($type::$variant => PossibleValue::new($word)$(.help($help))?),+
                })
            }
        }
    };
}

words!(Format { Json => "json", Yaml => "yaml" });
words!(DryRun { Client => "client", Server => "server" });
words!(Strategy {
    ServerSide => "server-side" ("Server-side apply."),
    Update => "update" ("Get, then create or replace."),
});
words!(ExposureApi {
    Istio => "istio" ("Istio's Gateway, VirtualService and DestinationRule."),
    GatewayApi => "gateway-api" ("The Kubernetes Gateway API: Gateway, HTTPRoute, BackendTLSPolicy."),
});
words!(PermissionCommand {
    SetApikey => "set-apikey",
    Inject => "inject",
    Expose => "expose",
    MapIdentity => "map-identity",
    Status => "status" ("Every read the checks make; `status` names what else is missing."),
    All => "all" ("Everything the whole chain needs, as the runbook runs it."),
    Uninstall => "uninstall" ("Taking the setup back out."),
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_offered_by_the_names_the_library_prints() {
        for command in PermissionCommand::value_variants() {
            let offered = command
                .to_possible_value()
                .expect("every command is offered");
            assert_eq!(offered.get_name(), command.name());
        }
        for api in ExposureApi::value_variants() {
            let offered = api.to_possible_value().expect("every API is offered");
            assert_eq!(offered.get_name(), api.flag_value());
            assert!(crate::files::answers::API_WORDS.contains(&api.flag_value()));
        }
        assert_eq!(
            ExposureApi::value_variants().len(),
            crate::files::answers::API_WORDS.len()
        );
    }
}
