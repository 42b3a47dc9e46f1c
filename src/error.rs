//! Every way the plugin can fail, as one typed enum. Each failure belongs to a
//! class with its own documented exit code (see `ExitStatus` and the README),
//! and carries a hint saying what the user can type to fix it, so `main`
//! can print one readable chain instead of a debug dump.

use std::fmt;
use std::path::PathBuf;

use crate::terminal::wording;

/// The process exit codes. They are part of the plugin's interface: scripts
/// branch on them, so values never change meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Success = 0,
    /// Something failed that fits no narrower class.
    Failure = 1,
    /// The command line, a kubeconfig or another input is invalid.
    Usage = 2,
    /// The API server could not be reached in time.
    Unreachable = 3,
    /// The API server rejected the credentials.
    Unauthorized = 4,
    /// RBAC forbids a request the command needs.
    Forbidden = 5,
    /// Something the command relies on is missing in the cluster.
    MissingPrerequisite = 6,
    /// Another client owns or changed what the command would write.
    Conflict = 7,
    /// `status` ran and at least one check failed.
    ChecksFailed = 8,
    /// The run was interrupted (SIGINT).
    Interrupted = 130,
}

impl ExitStatus {
    const ALL: [ExitStatus; 10] = [
        ExitStatus::Success,
        ExitStatus::Failure,
        ExitStatus::Usage,
        ExitStatus::Unreachable,
        ExitStatus::Unauthorized,
        ExitStatus::Forbidden,
        ExitStatus::MissingPrerequisite,
        ExitStatus::Conflict,
        ExitStatus::ChecksFailed,
        ExitStatus::Interrupted,
    ];

    /// The process exit code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The status a documented exit code stands for; `Failure` for any other.
    pub fn from_code(code: u8) -> ExitStatus {
        ExitStatus::ALL
            .into_iter()
            .find(|status| status.code() == code)
            .unwrap_or(ExitStatus::Failure)
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(status: ExitStatus) -> Self {
        std::process::ExitCode::from(status as u8)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid value for {flag}: {reason}")]
    InvalidFlag { flag: &'static str, reason: String },

    #[error("kubeconfig file {} does not exist", path.display())]
    KubeconfigMissing { path: PathBuf },

    #[error("cannot read kubeconfig file {}", path.display())]
    KubeconfigUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("kubeconfig file {} is not a valid kubeconfig", path.display())]
    KubeconfigInvalid {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },

    #[error("no cluster configured: no kubeconfig was found and this is not running inside a pod")]
    NoConfiguration,

    #[error("context \"{name}\" does not exist in the kubeconfig (contexts: {})", list_or_none(.available))]
    UnknownContext {
        name: String,
        available: Vec<String>,
    },

    #[error("cluster \"{name}\" does not exist in the kubeconfig (clusters: {})", list_or_none(.available))]
    UnknownCluster {
        name: String,
        available: Vec<String>,
    },

    #[error("user \"{name}\" does not exist in the kubeconfig (users: {})", list_or_none(.available))]
    UnknownUser {
        name: String,
        available: Vec<String>,
    },

    #[error("cannot use the kubeconfig's settings for this cluster")]
    ClientConfig(#[source] kube::config::KubeconfigError),

    #[error("cannot create a client for {server}")]
    ClientSetup {
        server: String,
        #[source]
        source: crate::cluster::transport::TransportError,
    },

    #[error("cannot reach the API server at {server}")]
    Unreachable {
        server: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("the API server at {server} did not prove its identity")]
    UntrustedServer {
        server: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("the API server at {server} did not answer within {timeout}")]
    Timeout { server: String, timeout: String },

    #[error("the API server at {server} rejected the credentials of the current user")]
    Unauthorized {
        server: String,
        #[source]
        source: kube::Error,
    },

    #[error("forbidden: {action}")]
    Forbidden {
        action: String,
        #[source]
        source: kube::Error,
    },

    #[error("{action} failed")]
    Api {
        action: String,
        #[source]
        source: kube::Error,
    },

    #[error("invalid API key: {reason}")]
    InvalidApiKey { reason: String },

    #[error("no API key given, and no terminal to prompt for one")]
    NoKeySource,

    #[error("cannot read the API key from {source_name}")]
    KeyRead {
        source_name: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{kind} {namespace}/{name} does not exist")]
    Missing {
        kind: &'static str,
        namespace: String,
        name: String,
        hint: String,
    },

    #[error(
        "ConfigMap {namespace}/{name} holds Istio 1.0's sidecar injector (one template of `[[ ]]` \
         expressions, no `values`), which the istioctl of Istio 1.1 and later cannot render"
    )]
    Istio10Injector { namespace: String, name: String },

    #[error("{object} in {namespace} changed after it was read; it was not deleted")]
    ChangedBeforeDelete { object: String, namespace: String },

    #[error(
        "{kind} {namespace}/{name} was changed by another client while being updated \
         (attempts: {attempts}); nothing was overwritten"
    )]
    Conflict {
        kind: &'static str,
        namespace: String,
        name: String,
        attempts: u32,
    },

    #[error("rollout of {kind} {namespace}/{name} did not finish within {timeout}: {progress}")]
    RolloutTimeout {
        kind: &'static str,
        namespace: String,
        name: String,
        timeout: String,
        progress: String,
    },

    #[error("rollout of {kind} {namespace}/{name} failed: {reason}")]
    RolloutFailed {
        kind: &'static str,
        namespace: String,
        name: String,
        reason: String,
    },

    #[error("{tool} is needed: {detail}")]
    ToolMissing { tool: &'static str, detail: String },

    #[error("requests through the gateway could not reach KMS: {problem}")]
    DataPath { problem: String, hint: String },

    #[error("no pod in {namespace} has the gateway label {selector}")]
    NoGatewayPods { namespace: String, selector: String },

    #[error("KMS's gateway server would conflict with another application's: {}", conflicts.join("; "))]
    SharedGatewayConflict {
        conflicts: Vec<String>,
        hint: String,
    },

    #[error("KMS is exposed through {current} already ({}); `expose` does not switch it to {asked}", objects.join(", "))]
    ExposedOtherwise {
        current: &'static str,
        asked: &'static str,
        objects: Vec<String>,
        hint: String,
    },

    #[error("the Gateway API's route did not serve within {timeout} ({pending}); {} kept serving KMS", kept.join(", "))]
    NotServing {
        timeout: String,
        pending: String,
        kept: Vec<String>,
        hint: String,
    },

    #[error("{tool} failed: {detail}")]
    ToolFailed { tool: &'static str, detail: String },

    #[error("cannot {action} {}", path.display())]
    LocalFile {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot write to standard output")]
    StandardOutput(#[source] std::io::Error),

    #[error("{what}; the previous version was restored")]
    RolledBack {
        what: String,
        #[source]
        cause: Box<Error>,
    },

    #[error("{object} has fields owned by another manager: {message}")]
    ApplyConflict { object: String, message: String },

    #[error("invalid {flag}: {source}")]
    InvalidCrn {
        flag: &'static str,
        source: crate::values::crn::CrnError,
    },

    #[error("stopped part-way; {progress}")]
    Incomplete {
        progress: Box<Unfinished>,
        #[source]
        cause: Box<Error>,
    },

    #[error("the backup {} cannot be restored: {reason}", path.display())]
    InvalidBackup { path: PathBuf, reason: String },

    #[error(
        "deployment {namespace}/{name} cannot be restored from what its injection recorded: {reason}"
    )]
    UnrestorableRecord {
        namespace: String,
        name: String,
        reason: String,
    },

    #[error("invalid answers: {field}: {reason}")]
    InvalidAnswers { field: String, reason: String },

    #[error("cancelled; nothing was changed")]
    Cancelled,

    #[error("the wizard needs a terminal")]
    NeedsTerminal,

    #[error("{command} asks for confirmation, and there is no terminal to ask on")]
    ConfirmationNeeded { command: &'static str },

    #[error("the current user lacks permissions this command needs: {}", .missing.join(", "))]
    MissingPermissions {
        missing: Vec<String>,
        /// The command, as `rbac --for` names it.
        command: &'static str,
        /// The user's name, when the API server told it.
        user: Option<String>,
    },

    #[error("{} prerequisites are not met", .0.len())]
    Unmet(Vec<Error>),

    #[error("status found failed checks: {failed}")]
    ChecksFailed { failed: usize },

    #[error("{failed} of {total} contexts did not pass")]
    ContextsFailed {
        failed: usize,
        total: usize,
        /// The worst outcome among them, which is the run's exit status.
        worst: ExitStatus,
    },

    #[error("{} is not a status snapshot this version can read: {reason}", path.display())]
    InvalidSnapshot { path: PathBuf, reason: String },

    #[error(
        "several Istio control-plane revisions are installed in {namespace} and the default tag \
         points to none of them: {}",
        revisions.join(", ")
    )]
    AmbiguousRevision {
        namespace: String,
        revisions: Vec<String>,
    },

    #[error("interrupted; what was already sent stays in the cluster")]
    Interrupted,
}

/// Where a batch of writes stood when one of them failed, as far as the
/// plugin can know. A request that was sent and never answered (the server
/// froze, the connection dropped, the client's timeout ran out) may still be
/// carried out by the server, so it is neither done nor undone: operators
/// act on these lists, and a re-run converges whichever way it went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unfinished {
    /// Writes the API server answered as done.
    pub done: Vec<String>,
    /// Writes sent without an answer: each may or may not have landed.
    pub unconfirmed: Vec<String>,
    /// Writes the API server answered with a refusal, or that failed after
    /// they were answered (a rollout that did not finish).
    pub failed: Vec<String>,
    /// Writes never sent.
    pub not_sent: Vec<String>,
    /// What finishes the job when the same command run again would not (a
    /// key that may already be stored is unchanged for a re-run, which then
    /// restarts nothing).
    pub rerun: Option<String>,
}

impl Unfinished {
    /// Files `what`, whose write failed with `cause`, as not confirmed when
    /// the failure leaves open whether it landed, else as failed.
    pub fn file_failure(&mut self, what: String, cause: &Error) {
        if cause.may_have_landed() {
            self.unconfirmed.push(what);
        } else {
            self.failed.push(what);
        }
    }

    /// The error a batch stopped on `cause` ends with: the cause alone when
    /// nothing can have changed, else the cause with these lists.
    pub fn into_error(self, cause: Error) -> Error {
        if self.done.is_empty() && self.unconfirmed.is_empty() {
            cause
        } else {
            Error::Incomplete {
                progress: Box::new(self),
                cause: Box::new(cause),
            }
        }
    }

    /// Where a step whose own write is `step` stood when it failed with
    /// `cause`: the lists of its own cut-off when it reports one, else
    /// `step` filed by how it failed.
    pub fn of(step: String, cause: Error) -> (Unfinished, Error) {
        match cause {
            Error::Incomplete { progress, cause } => (*progress, *cause),
            other => {
                let mut progress = Unfinished::default();
                progress.file_failure(step, &other);
                (progress, other)
            }
        }
    }

    /// The error of a longer batch one of whose steps stopped: the writes
    /// of the steps before it (`before`, all done), where the step stood,
    /// and the writes of the steps after it (`after`, not sent).
    pub fn within(
        before: Vec<String>,
        (mut progress, cause): (Unfinished, Error),
        after: Vec<String>,
    ) -> Error {
        progress.done.splice(0..0, before);
        progress.not_sent.extend(after);
        progress.into_error(cause)
    }
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

impl fmt::Display for Unfinished {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "done: {}; not confirmed (sent, no answer: may or may not have been carried out): {}",
            list_or_none(&self.done),
            list_or_none(&self.unconfirmed)
        )?;
        if !self.failed.is_empty() {
            write!(f, "; failed: {}", list_or_none(&self.failed))?;
        }
        write!(f, "; not sent: {}", list_or_none(&self.not_sent))
    }
}

impl Error {
    /// Every unmet prerequisite a plan found, as one error: none is `Ok`,
    /// one is itself, several are listed together.
    pub fn unmet(problems: Vec<Error>) -> Result<()> {
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::together(problems))
        }
    }

    /// The problems this error stands for: those listed together, or itself.
    pub fn into_problems(self) -> Vec<Error> {
        match self {
            Error::Unmet(problems) => problems,
            other => vec![other],
        }
    }

    /// Whether this is something the user must set right before a step can
    /// run (a permission, something missing in the cluster), rather than a
    /// failure to talk to the cluster.
    pub fn is_unmet_prerequisite(&self) -> bool {
        matches!(
            self.exit_status(),
            ExitStatus::Forbidden | ExitStatus::MissingPrerequisite
        )
    }

    /// Whether the request that failed this way may still be carried out
    /// by the server: it was sent and no answer came back (the client's
    /// timeout, a connection lost after it was made, a gateway's timeout).
    /// A refusal, or a connection never made, leaves nothing behind.
    pub fn may_have_landed(&self) -> bool {
        match self {
            Error::Timeout { .. } => true,
            Error::Unreachable { source, .. } => !caused_by(source.as_ref(), |err| {
                err.downcast_ref::<std::io::Error>().is_some_and(|io| {
                    matches!(
                        io.kind(),
                        std::io::ErrorKind::ConnectionRefused
                            | std::io::ErrorKind::HostUnreachable
                            | std::io::ErrorKind::NetworkUnreachable
                            | std::io::ErrorKind::AddrNotAvailable
                    )
                })
            }),
            Error::Api {
                source: kube::Error::Api(status),
                ..
            } => status.code == 504,
            _ => false,
        }
    }

    /// Problems found at once, as one error: one is itself, several are
    /// listed together.
    pub fn together(mut problems: Vec<Error>) -> Error {
        if problems.len() == 1 {
            problems.remove(0)
        } else {
            Error::Unmet(problems)
        }
    }

    pub fn exit_status(&self) -> ExitStatus {
        match self {
            Error::InvalidFlag { .. }
            | Error::KubeconfigMissing { .. }
            | Error::KubeconfigUnreadable { .. }
            | Error::KubeconfigInvalid { .. }
            | Error::NoConfiguration
            | Error::UnknownContext { .. }
            | Error::UnknownCluster { .. }
            | Error::UnknownUser { .. }
            | Error::ClientConfig(_)
            | Error::InvalidApiKey { .. }
            | Error::NoKeySource
            | Error::InvalidCrn { .. }
            | Error::InvalidAnswers { .. }
            | Error::InvalidBackup { .. }
            | Error::NeedsTerminal
            | Error::ConfirmationNeeded { .. }
            | Error::KeyRead { .. }
            | Error::InvalidSnapshot { .. }
            | Error::AmbiguousRevision { .. } => ExitStatus::Usage,
            Error::Missing { .. }
            | Error::Istio10Injector { .. }
            | Error::ToolMissing { .. }
            | Error::DataPath { .. }
            | Error::SharedGatewayConflict { .. }
            | Error::NoGatewayPods { .. } => ExitStatus::MissingPrerequisite,
            Error::ExposedOtherwise { .. } => ExitStatus::Conflict,
            Error::NotServing { .. } => ExitStatus::Failure,
            Error::ToolFailed { .. } | Error::LocalFile { .. } | Error::StandardOutput(_) => {
                ExitStatus::Failure
            }
            Error::ApplyConflict { .. } => ExitStatus::Conflict,
            Error::ChecksFailed { .. } => ExitStatus::ChecksFailed,
            Error::ContextsFailed { worst, .. } => *worst,
            Error::Unmet(problems) => problems
                .first()
                .map_or(ExitStatus::MissingPrerequisite, Error::exit_status),
            Error::RolledBack { cause, .. } | Error::Incomplete { cause, .. } => {
                cause.exit_status()
            }
            Error::Conflict { .. }
            | Error::ChangedBeforeDelete { .. }
            | Error::UnrestorableRecord { .. } => ExitStatus::Conflict,
            Error::RolloutTimeout { .. } | Error::RolloutFailed { .. } => ExitStatus::Failure,
            Error::Unreachable { .. } | Error::UntrustedServer { .. } | Error::Timeout { .. } => {
                ExitStatus::Unreachable
            }
            Error::Unauthorized { .. } => ExitStatus::Unauthorized,
            Error::Forbidden { .. } | Error::MissingPermissions { .. } => ExitStatus::Forbidden,
            Error::ClientSetup { .. } | Error::Api { .. } => ExitStatus::Failure,
            Error::Interrupted | Error::Cancelled => ExitStatus::Interrupted,
        }
    }

    /// What the user can do about it, when there is something to do.
    pub fn hint(&self) -> Option<String> {
        self.connection_hint()
            .or_else(|| self.input_hint())
            .or_else(|| self.cluster_hint())
    }

    /// What to do about the kubeconfig, the connection or the rights it carries.
    fn connection_hint(&self) -> Option<String> {
        match self {
            Error::KubeconfigMissing { .. } => Some(
                "pass an existing file with --kubeconfig, or fix the KUBECONFIG variable".into(),
            ),
            Error::KubeconfigInvalid { .. } => {
                Some("check the file with `kubectl config view --kubeconfig FILE`".into())
            }
            Error::NoConfiguration => Some(
                "point --kubeconfig or KUBECONFIG at a kubeconfig, or create ~/.kube/config".into(),
            ),
            Error::UnknownContext { .. } => Some(
                "pick one with --context NAME; `kubectl config get-contexts` lists them".into(),
            ),
            Error::UnknownCluster { .. } => Some(
                "pick one with --cluster NAME; `kubectl config get-clusters` lists them".into(),
            ),
            Error::UnknownUser { .. } => {
                Some("pick one with --user NAME; `kubectl config get-users` lists them".into())
            }
            Error::Unreachable { .. } | Error::Timeout { .. } => Some(
                "check that the cluster is running and that the kubeconfig's server URL is right; \
                 `--request-timeout 60s` allows a slower server more time"
                    .into(),
            ),
            Error::UntrustedServer { .. } => Some(
                "the kubeconfig's cluster must name the CA that signed the server's certificate \
                 (certificate-authority or certificate-authority-data), and its tls-server-name, \
                 when set, must be a name that certificate holds; `kubectl config view --minify` \
                 shows both"
                    .into(),
            ),
            Error::Unauthorized { .. } => Some(
                "your credentials may have expired: log in again, or pick another user with --user"
                    .into(),
            ),
            Error::Forbidden { .. } => Some(
                "ask a cluster administrator for this permission; `kubectl kms-sts status` \
                 lists every permission the plugin needs, and `kubectl kms-sts rbac --for all \
                 --to-user NAME` prints the Roles that grant them"
                    .into(),
            ),
            Error::MissingPermissions { command, user, .. } => Some(format!(
                "ask a cluster administrator to apply the Roles that `kubectl kms-sts rbac --for \
                 {command} --to-user {}` prints (`| kubectl apply -f -`)",
                user.as_deref()
                    .map(wording::shell_word)
                    .unwrap_or_else(|| "NAME".into())
            )),
            _ => None,
        }
    }

    /// What to give instead of input that was refused, or how to go on after a stop.
    fn input_hint(&self) -> Option<String> {
        match self {
            Error::AmbiguousRevision { revisions, .. } => {
                let first = revisions.first().map_or("REV", String::as_str);
                Some(format!(
                    "name the one to use with --revision (for example --revision {first}), or \
                     point the default tag at it: `istioctl tag set default --revision {first}`"
                ))
            }
            Error::InvalidSnapshot { .. } => Some(
                "save a new snapshot with `kubectl kms-sts status --save FILE` where the cluster \
                 is reachable, with the same version of the plugin that reads it"
                    .into(),
            ),
            Error::InvalidApiKey { .. } => Some(
                "give the key exactly as it was issued: no spaces, newlines or control characters"
                    .into(),
            ),
            Error::Interrupted => Some(
                "run `kubectl kms-sts status` to see where things stand; every command can be run again"
                    .into(),
            ),
            Error::ConfirmationNeeded { command } => Some(format!(
                "pass --yes to go ahead without one, or --dry-run to see the plan: \
                 `kubectl kms-sts {command} --dry-run`"
            )),
            Error::NeedsTerminal => Some(
                "replay saved answers with `kubectl kms-sts wizard --answers FILE --yes` \
                 (the key with --apikey-from-stdin, --apikey-from-file or --apikey-from-env)"
                    .into(),
            ),
            Error::InvalidBackup { .. } => Some(
                "move the file aside to restore the backup before it, or name another \
                 directory with --backup-dir"
                    .into(),
            ),
            Error::NoKeySource => {
                Some("pass the key with --from-stdin, --from-file PATH or --from-env VAR".into())
            }
            Error::InvalidCrn { .. } => Some(
                "give the CRN exactly as issued, with all ten fields: \
                 crn:v1:CNAME:CTYPE:SERVICE-NAME:LOCATION:SCOPE:SERVICE-INSTANCE:RESOURCE-TYPE:RESOURCE"
                    .into(),
            ),
            _ => None,
        }
    }

    /// What to do about what the cluster holds, or a write it refused.
    fn cluster_hint(&self) -> Option<String> {
        match self {
            Error::Missing { hint, .. }
            | Error::DataPath { hint, .. }
            | Error::SharedGatewayConflict { hint, .. }
            | Error::ExposedOtherwise { hint, .. }
            | Error::NotServing { hint, .. } => Some(hint.clone()),
            Error::Istio10Injector { .. } => Some(
                "upgrade Istio first (the README's \"Upgrading Istio\" says what to run after); \
                 until then inject KMS with Istio 1.0's own `istioctl kube-inject`, and `status` \
                 compares its sidecar with the proxy this injector names"
                    .into(),
            ),
            Error::NoGatewayPods { namespace, .. } => Some(format!(
                "pass --gateway-selector with your ingress gateway pods' label; \
                 `kubectl get pods -n {namespace} --show-labels` lists them"
            )),
            Error::ToolMissing { tool, .. } => Some(format!(
                "install {tool} and put it on PATH, or name it with --{tool} PATH"
            )),
            Error::RolledBack { cause, .. } => cause.hint(),
            Error::Incomplete { progress, cause } => {
                let again = progress
                    .rerun
                    .clone()
                    .unwrap_or_else(|| "run the same command again to finish".to_owned());
                let again = if progress.unconfirmed.is_empty() {
                    again
                } else {
                    format!(
                        "{again} (it converges whether or not the unconfirmed writes were \
                         carried out); `kubectl kms-sts status` shows what is there now"
                    )
                };
                Some(match cause.hint() {
                    Some(hint) => format!("{hint}; then {again}"),
                    None => again,
                })
            }
            Error::Conflict { .. } => {
                Some("run the command again once the other writer is done".into())
            }
            Error::UnrestorableRecord {
                namespace, name, ..
            } => Some(format!(
                "compare the Deployment with the template its injection recorded (`kubectl get \
                 deployment {name} -n {namespace} -o yaml`, annotation kubectl-kms-sts/original-template); \
                 change the Deployment back, or move an outdated backup aside with --backup-dir, \
                 then run the command again"
            )),
            Error::ChangedBeforeDelete { object, namespace } => Some(format!(
                "see who changed it: `kubectl get {object} -n {namespace} --show-managed-fields \
                 -o yaml`; then run `kubectl kms-sts uninstall` again, which plans from what is \
                 there now"
            )),
            Error::ApplyConflict { .. } => Some(
                "check who else manages it (`kubectl get -o yaml --show-managed-fields`); \
                 --force-conflicts takes the fields over"
                    .into(),
            ),
            Error::RolloutTimeout {
                kind,
                namespace,
                name,
                ..
            } => Some(format!(
                "check `kubectl rollout status {} {name} -n {namespace}` and the pods' events; \
                 --timeout allows longer",
                kind.to_lowercase()
            )),
            _ => None,
        }
    }

    /// Classifies an API error from `action` by what the user can do about it.
    pub fn from_api(action: impl Into<String>, server: &str, source: kube::Error) -> Error {
        let action = action.into();
        match &source {
            kube::Error::Api(status) if status.code == 401 => Error::Unauthorized {
                server: server.to_owned(),
                source,
            },
            kube::Error::Api(status) if status.code == 403 => Error::Forbidden { action, source },
            kube::Error::HyperError(_) | kube::Error::Service(_)
                if caused_by(&source, |err| {
                    matches!(
                        err.downcast_ref::<rustls::Error>(),
                        Some(rustls::Error::InvalidCertificate(_))
                    )
                }) =>
            {
                Error::UntrustedServer {
                    server: server.to_owned(),
                    source: Box::new(source),
                }
            }
            kube::Error::HyperError(_) | kube::Error::Service(_) => Error::Unreachable {
                server: server.to_owned(),
                source: Box::new(source),
            },
            _ => Error::Api { action, source },
        }
    }
}

/// Whether `error` or any error in its chain of causes satisfies `test`.
/// An I/O error is followed into the error it carries, which its `source`
/// skips.
pub fn caused_by(
    error: &(dyn std::error::Error + 'static),
    test: impl Fn(&(dyn std::error::Error + 'static)) -> bool,
) -> bool {
    let mut cause = Some(error);
    while let Some(err) = cause {
        if test(err) {
            return true;
        }
        cause = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(payload) => Some(payload as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    false
}

/// Renders an error as `error: ...`, its causes one per line, then its
/// hint, whose `kubectl kms-sts` command lines carry the run's cluster flags
/// (`ClusterArgs::flags_for_hints`) so that they can be pasted as printed.
pub struct Report<'a> {
    pub error: &'a Error,
    pub cluster_flags: &'a str,
}

impl Report<'_> {
    /// The error and its causes on one line, without the hint.
    pub fn message(&self) -> String {
        let text = self.to_string();
        let text = text.strip_prefix("error: ").unwrap_or(&text);
        let body = text.split("\n  hint: ").next().unwrap_or_default();
        body.replace("\n  caused by: ", ": ")
    }

    /// The error's hint, its commands carrying the run's cluster flags.
    pub fn hint(&self) -> Option<String> {
        let hint = self.error.hint()?;
        Some(wording::with_flags(
            &hint,
            "kubectl kms-sts ",
            self.cluster_flags,
        ))
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Error::Unmet(problems) = self.error {
            write!(f, "error: {}:", self.error)?;
            for problem in problems {
                let report = Report {
                    error: problem,
                    cluster_flags: self.cluster_flags,
                }
                .to_string();
                let item = report.strip_prefix("error: ").unwrap_or(&report);
                write!(f, "\n  - {}", item.replace('\n', "\n  "))?;
            }
            return Ok(());
        }
        write!(f, "error: {}", self.error)?;
        let mut cause = std::error::Error::source(self.error);
        let mut previous = self.error.to_string();
        while let Some(err) = cause {
            let (text, next) = match api_status(err) {
                // The server's own words, once: not the client's debug form,
                // and not the Status again as the cause of itself.
                Some(status) => (server_message(status), None),
                None => (err.to_string(), err.source()),
            };
            // Wrapped errors often repeat their inner message; print each once.
            if !previous.contains(&text) {
                write!(f, "\n  caused by: {text}")?;
            }
            previous = text;
            cause = next;
        }
        if let Some(hint) = self.hint() {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// The status an API server answered with, where `err` carries one.
fn api_status<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a kube::core::Status> {
    match err.downcast_ref::<kube::Error>() {
        Some(kube::Error::Api(status)) => Some(status),
        _ => err.downcast_ref::<kube::core::Status>(),
    }
}

/// A failed request in the words a person reads: the API server's own
/// message with its reason and code when it answered, else the error.
pub fn for_people(source: &kube::Error) -> String {
    match source {
        kube::Error::Api(status) => server_message(status),
        other => other.to_string(),
    }
}

/// What the API server said, for a person: its message, then its reason
/// and the HTTP code.
fn server_message(status: &kube::core::Status) -> String {
    match (status.message.is_empty(), status.reason.is_empty()) {
        (false, false) => format!(
            "{} (reason {}, HTTP {})",
            status.message, status.reason, status.code
        ),
        (false, true) => format!("{} (HTTP {})", status.message, status.code),
        _ => format!("the API server answered HTTP {}", status.code),
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_message_is_shown_once_without_debug_forms() {
        let status: kube::core::Status = serde_json::from_value(serde_json::json!({
            "status": "Failure", "code": 403, "reason": "Forbidden", "metadata": {},
            "message": "identitymappingpolicies.policy.ibm.com \"stspolicy\" is forbidden: \
                        User \"viewer\" cannot get resource"
        }))
        .unwrap();
        let err = Error::from_api(
            "read stspolicy",
            "https://127.0.0.1:6443",
            kube::Error::Api(Box::new(status)),
        );
        let text = Report {
            error: &err,
            cluster_flags: "",
        }
        .to_string();
        assert!(
            text.contains(
                "caused by: identitymappingpolicies.policy.ibm.com \"stspolicy\" is forbidden: \
                 User \"viewer\" cannot get resource (reason Forbidden, HTTP 403)"
            ),
            "{text}"
        );
        for debug in ["Some(", "Status {", "ListMeta", "ApiError"] {
            assert!(!text.contains(debug), "{debug} in {text}");
        }
        assert_eq!(text.matches("is forbidden").count(), 1, "{text}");
    }

    fn timeout() -> Error {
        Error::Timeout {
            server: "https://127.0.0.1:6443".into(),
            timeout: "2s".into(),
        }
    }

    fn refused_connection() -> Error {
        Error::Unreachable {
            server: "https://127.0.0.1:6443".into(),
            source: Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        }
    }

    fn conflict() -> Error {
        Error::ApplyConflict {
            object: "gateway.networking.istio.io/kmsgateway".into(),
            message: "conflict with \"other\"".into(),
        }
    }

    #[test]
    fn only_an_unanswered_request_may_have_landed() {
        assert!(timeout().may_have_landed());
        let reset = Error::Unreachable {
            server: "https://127.0.0.1:6443".into(),
            source: Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
        };
        assert!(reset.may_have_landed());
        assert!(!refused_connection().may_have_landed());
        assert!(!conflict().may_have_landed());
    }

    #[test]
    fn a_cut_off_batch_lists_done_unconfirmed_and_unsent_writes() {
        let mut progress = Unfinished {
            done: vec!["a".into()],
            ..Unfinished::default()
        };
        progress.file_failure("b".into(), &timeout());
        progress.file_failure("c".into(), &conflict());
        progress.not_sent.push("d".into());
        let err = progress.into_error(timeout());
        assert_eq!(
            err.to_string(),
            "stopped part-way; done: a; not confirmed (sent, no answer: may or may not have been \
             carried out): b; failed: c; not sent: d"
        );
        assert_eq!(err.exit_status(), ExitStatus::Unreachable);
        let hint = err.hint().unwrap();
        assert!(
            hint.starts_with("check that the cluster is running"),
            "{hint}"
        );
        assert!(
            hint.contains("then run the same command again to finish (it converges")
                && hint.contains("`kubectl kms-sts status` shows what is there now"),
            "{hint}"
        );
    }

    #[test]
    fn a_batch_that_changed_nothing_fails_with_its_cause_alone() {
        let mut progress = Unfinished::default();
        progress.file_failure("a".into(), &refused_connection());
        progress.not_sent.push("b".into());
        let err = progress.into_error(refused_connection());
        assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    }

    #[test]
    fn a_steps_cut_off_joins_the_writes_before_and_after_it() {
        let step = Unfinished {
            done: vec!["b".into()],
            unconfirmed: vec!["c".into()],
            ..Unfinished::default()
        }
        .into_error(timeout());
        let err = Unfinished::within(
            vec!["a".into()],
            Unfinished::of("b and c".into(), step),
            vec!["d".into()],
        );
        let Error::Incomplete { progress, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(progress.done, ["a", "b"]);
        assert_eq!(progress.unconfirmed, ["c"]);
        assert_eq!(progress.not_sent, ["d"]);

        let err = Unfinished::within(
            vec!["a".into()],
            Unfinished::of("b".into(), conflict()),
            vec!["c".into()],
        );
        assert!(
            err.to_string().ends_with("not confirmed (sent, no answer: may or may not have been carried out): none; failed: b; not sent: c"),
            "{err}"
        );
        assert_eq!(err.exit_status(), ExitStatus::Conflict);
        assert!(
            err.hint()
                .unwrap()
                .ends_with("; then run the same command again to finish"),
            "{:?}",
            err.hint()
        );
    }
}
