//! Each subcommand's own flags, and their lowering where a flag group
//! becomes a library value (the key's source, for one). The command shells in
//! `commands` read these; the flag groups they share live in `cli`.

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{ApplyArgs, ObjectNameArgs, WriteArgs};
use crate::cluster::permissions;
use crate::error::{Error, Result};
use crate::steps::apikey::{ApikeyOptions, Restart};
use crate::steps::exposure::{ExposeOptions, ExposureApi};
use crate::steps::identity::MapIdentityOptions;
use crate::steps::injection::InjectOptions;
use crate::steps::uninstall::UninstallOptions;
use crate::terminal::output::Format;
use crate::values::apikey::KeySource;
use crate::values::crn;
use crate::values::defaults;
use crate::values::duration;
use crate::values::exposure;
use crate::values::host::{Host, parse_host};
use crate::values::revision;

// `set-apikey`

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("key-source").multiple(false))]
pub struct SetApikeyArgs {
    /// Read the key from standard input (one trailing newline is removed).
    #[arg(long, group = "key-source")]
    pub from_stdin: bool,

    /// Read the key from a file (one trailing newline is removed).
    #[arg(long, value_name = "PATH", group = "key-source")]
    pub from_file: Option<PathBuf>,

    /// Read the key from an environment variable.
    #[arg(long, value_name = "VAR", group = "key-source")]
    pub from_env: Option<String>,

    /// Secret holding the key, in the Istio namespace.
    #[arg(long, value_name = "NAME", default_value = defaults::SECRET)]
    pub secret: String,

    /// Data key of the Secret that holds the API key.
    #[arg(long, value_name = "KEY", default_value = defaults::SECRET_KEY)]
    pub secret_key: String,

    /// Create the Secret if it does not exist.
    #[arg(long)]
    pub create: bool,

    /// Deployment of the token adapter, in the Istio namespace.
    #[arg(long, value_name = "NAME", default_value = defaults::TOKEN_ADAPTER)]
    pub token_adapter: String,

    /// Do not restart the token adapter (it keeps the old key until restarted).
    #[arg(long, conflicts_with = "restart")]
    pub no_restart: bool,

    /// Restart the token adapter even when the key is unchanged.
    #[arg(long)]
    pub restart: bool,

    /// How long to wait for the token adapter's restart.
    #[arg(long, value_name = "DURATION", default_value = defaults::ROLLOUT_TIMEOUT, value_parser = duration::parse_positive)]
    pub timeout: Duration,

    #[command(flatten)]
    pub write: WriteArgs,
}

impl SetApikeyArgs {
    pub fn options(&self) -> ApikeyOptions {
        ApikeyOptions {
            secret: self.secret.clone(),
            secret_key: self.secret_key.clone(),
            create: self.create,
            token_adapter: self.token_adapter.clone(),
            restart: if self.restart {
                Restart::Always
            } else if self.no_restart {
                Restart::Never
            } else {
                Restart::IfChanged
            },
            timeout: self.timeout,
        }
    }

    pub fn key_source(&self) -> KeySource {
        if self.from_stdin {
            KeySource::Stdin
        } else if let Some(path) = &self.from_file {
            KeySource::File(path.clone())
        } else if let Some(name) = &self.from_env {
            KeySource::Env(name.clone())
        } else {
            KeySource::Prompt
        }
    }
}

// `inject`

#[derive(Debug, clap::Args)]
pub struct InjectArgs {
    /// Deployment of the Key Management Service API, in the KMS namespace.
    #[arg(long, value_name = "NAME", default_value = defaults::DEPLOYMENT)]
    pub deployment: String,

    #[command(flatten)]
    pub tools: InjectTools,

    /// How long to wait for the injected pods to roll out.
    #[arg(long, value_name = "DURATION", default_value = defaults::ROLLOUT_TIMEOUT, value_parser = duration::parse_positive)]
    pub timeout: Duration,

    /// Leave a failed rollout as it is instead of restoring the previous spec.
    #[arg(long)]
    pub no_rollback: bool,

    /// Remove the sidecar again: restore the pod template from the newest backup.
    #[arg(long)]
    pub undo: bool,

    #[command(flatten)]
    pub write: WriteArgs,
}

/// Where injection finds istioctl and keeps its backups; shared with `wizard`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct InjectTools {
    /// istioctl to run (default: the first on PATH).
    #[arg(long, value_name = "PATH")]
    pub istioctl: Option<PathBuf>,

    /// Where to save the original Deployment
    /// (default: ~/.local/state/kubectl-kms-sts/backups/CONTEXT).
    #[arg(long, value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,

    /// Inject with the sidecar of this Istio control-plane revision (its
    /// ConfigMaps istio-sidecar-injector-REV and istio-REV; `default` is the
    /// one installed without a revision). Default: the revision the
    /// Deployment was injected with, else the one the `default` tag points
    /// to, else the only one installed.
    #[arg(long, value_name = "REV", value_parser = revision::parse)]
    pub revision: Option<String>,
}

impl InjectArgs {
    pub fn options(&self) -> InjectOptions {
        self.tools
            .options(&self.deployment, self.timeout, self.no_rollback)
    }
}

impl InjectTools {
    /// The options injection runs with, given the rest of them.
    pub fn options(&self, deployment: &str, timeout: Duration, no_rollback: bool) -> InjectOptions {
        InjectOptions {
            deployment: deployment.to_owned(),
            istioctl: self.istioctl.clone(),
            backup_dir: self.backup_dir.clone(),
            revision: self.revision.clone(),
            timeout,
            no_rollback,
        }
    }
}

// `expose`

#[derive(Debug, clap::Args)]
pub struct ExposeArgs {
    /// An address clients use to reach the gateway: an IP address or a DNS
    /// name. Repeat for several.
    #[arg(long = "host", value_name = "HOST", required = true, value_parser = parse_host)]
    pub hosts: Vec<Host>,

    /// The API that puts KMS behind a gateway: `istio` (Gateway,
    /// VirtualService, DestinationRule) or `gateway-api` (Gateway, HTTPRoute,
    /// BackendTLSPolicy). Default: the one exposing KMS already; else
    /// `istio` where the --gateway-selector pods run, `gateway-api` where
    /// none do and the cluster serves it.
    #[arg(long, value_name = "API")]
    pub api: Option<ExposureApi>,

    /// With the Gateway API: attach KMS's Gateway to this existing gateway
    /// Service in the Istio namespace (for example istio-ingressgateway)
    /// instead of having istiod deploy a gateway of its own.
    #[arg(long, value_name = "SERVICE")]
    pub gateway_service: Option<String>,

    /// Moving KMS from Istio's APIs to the Gateway API (--api gateway-api on
    /// a setup of Istio's): how long to wait for the new route to serve
    /// before Istio's objects are taken out.
    #[arg(long, value_name = "DURATION", default_value = defaults::SERVE_TIMEOUT, value_parser = duration::parse_positive)]
    pub timeout: Duration,

    /// The cert-manager issuer that signs the gateway's certificate.
    #[arg(long, value_name = "NAME", default_value = defaults::ISSUER)]
    pub issuer: String,

    /// Kind of the issuer.
    #[arg(long, value_name = "KIND", default_value = defaults::ISSUER_KIND, value_parser = ["ClusterIssuer", "Issuer"])]
    pub issuer_kind: String,

    /// The certificate's common name.
    #[arg(long, value_name = "NAME", default_value = defaults::COMMON_NAME, value_parser = parse_common_name)]
    pub common_name: String,

    /// Serve the certificate from this secret through the gateway's
    /// credentialName. Without it the gateway serves the files of the
    /// istio-ingressgateway-certs secret where its pods mount that secret at
    /// /etc/istio/ingressgateway-certs, and that secret by credentialName
    /// where they do not.
    #[arg(long, value_name = "SECRET")]
    pub tls_credential_name: Option<String>,

    /// Label of the ingress gateway pods the Gateway selects, in the Istio
    /// namespace [default: istio=ingressgateway]. Given, it also chooses
    /// Istio's APIs.
    #[arg(long, value_name = "LABEL=VALUE", value_parser = exposure::parse_selector)]
    pub gateway_selector: Option<(String, String)>,

    /// Secret in the KMS namespace whose ca.crt is the CA that signed
    /// kms-api's certificate (default: the ca.crt of the TLS secret kms-api's
    /// pods mount).
    #[arg(long, value_name = "SECRET")]
    pub upstream_ca_secret: Option<String>,

    /// Request path prefix routed to KMS.
    #[arg(long, value_name = "PATH", default_value = defaults::PATH_PREFIX, value_parser = parse_path)]
    pub path_prefix: String,

    /// What the prefix is rewritten to before it reaches KMS.
    #[arg(long, value_name = "PATH", default_value = defaults::REWRITE, value_parser = parse_path)]
    pub rewrite: String,

    /// Port of the kms-api Service to route to (default: read from the Service).
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(i32).range(1..=65535))]
    pub port: Option<i32>,

    #[command(flatten)]
    pub apply: ApplyArgs,

    #[command(flatten)]
    pub write: WriteArgs,
}

fn parse_common_name(text: &str) -> std::result::Result<String, String> {
    exposure::check_common_name(text).map(|()| text.to_owned())
}

fn parse_path(text: &str) -> std::result::Result<String, String> {
    exposure::check_path(text).map(|()| text.to_owned())
}

impl ExposeArgs {
    pub fn options(&self) -> ExposeOptions {
        ExposeOptions {
            api: self.api,
            gateway_service: self.gateway_service.clone(),
            move_timeout: Some(self.timeout),
            hosts: self.hosts.clone(),
            issuer: self.issuer.clone(),
            issuer_kind: self.issuer_kind.clone(),
            common_name: self.common_name.clone(),
            tls_credential_name: self.tls_credential_name.clone(),
            gateway_selector: self.gateway_selector.clone().unwrap_or_else(|| {
                exposure::parse_selector(defaults::GATEWAY_SELECTOR)
                    .expect("the default selector is LABEL=VALUE")
            }),
            selector_given: self.gateway_selector.is_some(),
            upstream_ca_secret: self.upstream_ca_secret.clone(),
            path_prefix: self.path_prefix.clone(),
            rewrite: self.rewrite.clone(),
            port: self.port,
            apply: self.apply.options(),
        }
    }
}

// `map-identity`

#[derive(Debug, clap::Args)]
pub struct MapIdentityArgs {
    /// CRN of the source identity on IBM Cloud (the STS service's CRN).
    #[arg(long, value_name = "CRN", required = true)]
    pub source_crn: String,

    /// CRN of a Key Management Service instance the source may reach; repeat for several.
    #[arg(long = "target-crn", value_name = "CRN", required = true)]
    pub target_crns: Vec<String>,

    /// Name of the IdentityMappingPolicy.
    #[arg(long, value_name = "NAME", default_value = defaults::POLICY)]
    pub name: String,

    /// Secret holding the API key the policy refers to, in the Istio namespace.
    #[arg(long, value_name = "NAME", default_value = defaults::SECRET)]
    pub secret: String,

    /// Data key of that Secret.
    #[arg(long, value_name = "KEY", default_value = defaults::SECRET_KEY)]
    pub secret_key: String,

    /// Fail, instead of warning, when the referenced secret or key is missing.
    #[arg(long)]
    pub strict: bool,

    #[command(flatten)]
    pub apply: ApplyArgs,

    #[command(flatten)]
    pub write: WriteArgs,
}

impl MapIdentityArgs {
    /// The options, once every CRN parses; a bad one is refused, naming its
    /// flag, before anything is sent.
    pub fn options(&self) -> Result<MapIdentityOptions> {
        let source = crn::parse(&self.source_crn).map_err(|source| Error::InvalidCrn {
            flag: "--source-crn",
            source,
        })?;
        let targets = self
            .target_crns
            .iter()
            .map(|text| {
                crn::parse_kms_target(text).map_err(|source| Error::InvalidCrn {
                    flag: "--target-crn",
                    source,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(MapIdentityOptions {
            source,
            targets,
            name: self.name.clone(),
            secret: self.secret.clone(),
            secret_key: self.secret_key.clone(),
            strict: self.strict,
            apply: self.apply.options(),
        })
    }
}

// `status`

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub names: ObjectNameArgs,

    /// Keep checking until every check passes or this much time has passed.
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    pub wait: Option<Duration>,

    /// Print the report as JSON or YAML.
    #[arg(short, long, value_name = "FORMAT")]
    pub output: Option<Format>,

    /// Check every context of the kubeconfig (--context, repeated, checks
    /// the contexts named).
    #[arg(long)]
    pub all_contexts: bool,

    /// Also write what the checks were decided on to FILE (JSON, no secrets
    /// in it), for `status --from FILE` anywhere.
    #[arg(long, value_name = "FILE", conflicts_with = "from")]
    pub save: Option<PathBuf>,

    /// Check a snapshot saved with --save instead of a cluster (with
    /// --context: only the contexts named).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["wait", "all_contexts"])]
    pub from: Option<PathBuf>,

    /// Compare KMS's sidecar with what this Istio revision injects now.
    /// Default: the revision it was injected with, else the one the
    /// `default` tag points to, else the only one installed.
    #[arg(long, value_name = "REV", value_parser = revision::parse)]
    pub revision: Option<String>,

    /// Also send an HTTPS request to each exposed host from here, verifying
    /// the gateway's certificate against the CA that issued it, and say
    /// whether KMS answered through the route or the gateway answered
    /// itself. Off by default: this machine may not reach the gateway.
    #[arg(long, conflicts_with = "from")]
    pub probe: bool,

    /// Where --probe sends its requests (the gateway's address), for hosts
    /// whose names do not resolve here; the hosts are still named by SNI
    /// and Host.
    #[arg(long, value_name = "ADDRESS", requires = "probe")]
    pub probe_address: Option<std::net::IpAddr>,
}

// `wizard`

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("apikey-source").multiple(false))]
pub struct WizardArgs {
    /// Replay the answers in FILE instead of asking (no terminal needed).
    #[arg(long, value_name = "FILE")]
    pub answers: Option<PathBuf>,

    /// Apply the plan without asking for confirmation (with --answers).
    #[arg(long, requires = "answers")]
    pub yes: bool,

    /// Save the answers (never the API key) to FILE for a later --answers run.
    #[arg(long, value_name = "FILE")]
    pub save_answers: Option<PathBuf>,

    /// With --answers: read the API key from standard input.
    #[arg(long, group = "apikey-source")]
    pub apikey_from_stdin: bool,

    /// With --answers: read the API key from a file.
    #[arg(long, value_name = "PATH", group = "apikey-source")]
    pub apikey_from_file: Option<PathBuf>,

    /// With --answers: read the API key from an environment variable.
    #[arg(long, value_name = "VAR", group = "apikey-source")]
    pub apikey_from_env: Option<String>,

    /// Names of the runbook's objects (without --answers; an answers file
    /// names them itself, the runbook's names when it does not).
    #[command(flatten)]
    pub names: ObjectNameArgs,

    #[command(flatten)]
    pub inject_tools: InjectTools,

    /// How long to wait for each rollout.
    #[arg(long, value_name = "DURATION", default_value = defaults::ROLLOUT_TIMEOUT, value_parser = duration::parse_positive)]
    pub timeout: Duration,
}

impl WizardArgs {
    pub fn key_source(&self) -> Option<KeySource> {
        if self.apikey_from_stdin {
            Some(KeySource::Stdin)
        } else if let Some(path) = &self.apikey_from_file {
            Some(KeySource::File(path.clone()))
        } else {
            self.apikey_from_env.clone().map(KeySource::Env)
        }
    }
}

// `uninstall`

#[derive(Debug, clap::Args)]
pub struct UninstallArgs {
    /// Deployment of the Key Management Service API, in the KMS namespace.
    #[arg(long, value_name = "NAME", default_value = defaults::DEPLOYMENT)]
    pub deployment: String,

    /// Name of the IdentityMappingPolicy, in the Istio namespace.
    #[arg(long, value_name = "NAME", default_value = defaults::POLICY)]
    pub policy: String,

    /// Secret holding the STS API key, in the Istio namespace.
    #[arg(long, value_name = "NAME", default_value = defaults::SECRET)]
    pub secret: String,

    /// Also delete the secret cert-manager issued for the gateway's
    /// Certificate (cert-manager leaves it behind).
    #[arg(long)]
    pub delete_certificate_secret: bool,

    /// Also delete the API key Secret (kept by default: other workloads may
    /// use it).
    #[arg(long)]
    pub delete_apikey: bool,

    /// Where `inject` saved the original Deployment
    /// (default: ~/.local/state/kubectl-kms-sts/backups/CONTEXT).
    #[arg(long, value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,

    /// How long to wait for the Deployment to roll out without the sidecar.
    #[arg(long, value_name = "DURATION", default_value = defaults::ROLLOUT_TIMEOUT, value_parser = duration::parse_positive)]
    pub timeout: Duration,

    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,

    #[command(flatten)]
    pub write: WriteArgs,
}

impl UninstallArgs {
    pub fn options(&self) -> UninstallOptions {
        UninstallOptions {
            deployment: self.deployment.clone(),
            policy: self.policy.clone(),
            secret: self.secret.clone(),
            delete_certificate_secret: self.delete_certificate_secret,
            delete_apikey: self.delete_apikey,
            backup_dir: self.backup_dir.clone(),
            timeout: self.timeout,
            yes: self.yes,
            write: self.write.options(),
        }
    }
}

// `rbac`

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("subject").required(true).args(["to_user", "to_group", "to_service_account"])))]
pub struct RbacArgs {
    /// The command to grant what it needs (`all`: the whole chain).
    #[arg(long = "for", value_name = "COMMAND")]
    pub command: permissions::Command,

    /// Grant to this user (`--user` keeps kubectl's meaning: the
    /// kubeconfig user to connect as).
    #[arg(long, value_name = "NAME")]
    pub to_user: Option<String>,

    /// Grant to this group.
    #[arg(long, value_name = "NAME")]
    pub to_group: Option<String>,

    /// Grant to this service account.
    #[arg(long, value_name = "NAMESPACE/NAME", value_parser = parse_service_account)]
    pub to_service_account: Option<(String, String)>,

    /// Name of the Roles and bindings (default: kubectl-kms-sts-COMMAND).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Also grant reading Istio's `default` tag (the one cluster-wide
    /// MutatingWebhookConfiguration istio-revision-tag-default), so inject
    /// and status follow the revision it names; for inject, status or all.
    #[arg(long)]
    pub read_default_tag: bool,

    /// Also grant port-forwards to the pods of the Istio namespace, so
    /// status reads what istiod sent the gateway proxies from their own
    /// admin interface; for status or all.
    #[arg(long)]
    pub read_gateway_config: bool,
}

fn parse_service_account(text: &str) -> std::result::Result<(String, String), String> {
    match text.split_once('/') {
        Some((namespace, name))
            if !namespace.is_empty() && !name.is_empty() && !name.contains('/') =>
        {
            Ok((namespace.to_owned(), name.to_owned()))
        }
        _ => Err(format!("\"{text}\" is not NAMESPACE/NAME")),
    }
}

// `version`

#[derive(Debug, clap::Args)]
pub struct VersionArgs {
    /// Print the plugin's version only; do not contact the cluster.
    #[arg(long)]
    pub client: bool,

    /// Print as JSON or YAML instead of text.
    #[arg(short, long, value_name = "FORMAT")]
    pub output: Option<Format>,
}

// `completion`

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    /// The `kubectl_complete-kms_sts` helper for kubectl's plugin completion.
    Kubectl,
}

#[derive(Debug, clap::Args)]
pub struct CompletionArgs {
    /// Which script to print.
    #[arg(value_name = "SHELL")]
    pub shell: Shell,
}
