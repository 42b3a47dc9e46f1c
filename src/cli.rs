//! The command line: the clap command tree, and the options every subcommand
//! shares (kubectl's cluster flags and the two namespaces the runbook spans).
//! Only parsing lives here; what each command does lives in `commands`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::commands::completion::CompletionArgs;
use crate::commands::expose::ExposeArgs;
use crate::commands::inject::InjectArgs;
use crate::commands::map_identity::MapIdentityArgs;
use crate::commands::rbac::RbacArgs;
use crate::commands::set_apikey::SetApikeyArgs;
use crate::commands::status::StatusArgs;
use crate::commands::uninstall::UninstallArgs;
use crate::commands::version::VersionArgs;
use crate::commands::wizard::WizardArgs;
use crate::defaults;
use crate::duration;
use crate::output::Format;
use crate::wording::shell_word;

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

/// How to reach the cluster, with kubectl's flag names and meanings.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Cluster options")]
pub struct ClusterArgs {
    /// Path to the kubeconfig file to use (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,

    /// The kubeconfig cluster to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub cluster: Option<String>,

    /// The kubeconfig user to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub user: Option<String>,

    /// How long to wait for one API request before giving up; 0 waits forever.
    #[arg(long, global = true, value_name = "DURATION", default_value = "30s", value_parser = duration::parse)]
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
    /// The cluster flags of this run that differ from the defaults, each as
    /// ` --flag value`: what a command printed as a hint must carry to act
    /// on the same cluster and namespaces when pasted.
    pub fn flags_for_hints(&self) -> String {
        let mut flags = String::new();
        let mut add = |flag: &str, value: &str| {
            flags += &format!(" --{flag} {}", shell_word(value));
        };
        if let Some(path) = &self.kubeconfig {
            add("kubeconfig", &path.to_string_lossy());
        }
        for (flag, value) in [
            ("context", &self.context),
            ("cluster", &self.cluster),
            ("user", &self.user),
        ] {
            if let Some(value) = value {
                add(flag, value);
            }
        }
        if self.kms_namespace != defaults::KMS_NAMESPACE {
            add("kms-namespace", &self.kms_namespace);
        }
        if self.istio_namespace != defaults::ISTIO_NAMESPACE {
            add("istio-namespace", &self.istio_namespace);
        }
        flags
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DryRun {
    Client,
    Server,
}

impl WriteArgs {
    /// Whether requests that write are sent as server-side dry runs.
    pub fn server_dry_run(&self) -> bool {
        self.dry_run == Some(DryRun::Server)
    }

    /// A suffix for result lines, like kubectl's `(dry run)`.
    pub fn dry_run_note(&self) -> &'static str {
        match self.dry_run {
            None => "",
            Some(DryRun::Client) => " (dry run)",
            Some(DryRun::Server) => " (server dry run)",
        }
    }
}

/// How objects are written, for commands that create custom objects.
#[derive(Debug, Clone, Args)]
pub struct ApplyArgs {
    /// `server-side` apply, or `update` (get, then create or replace) for
    /// servers that cannot apply.
    #[arg(long, value_name = "STRATEGY", default_value = "server-side")]
    pub apply_strategy: crate::apply::Strategy,

    /// Take over fields another field manager owns instead of failing.
    #[arg(long)]
    pub force_conflicts: bool,
}
