//! The one place that turns the global cluster flags into a kube client, the
//! way kubectl does: `--kubeconfig`, else every file in `KUBECONFIG` merged
//! (first to set a value wins), else `~/.kube/config`, else the in-cluster
//! service account; then `--context`, `--cluster` and `--user` select within it.
//!
//! Every API request goes through `Cluster::call`, which bounds it by
//! `--request-timeout` and classifies failures (unreachable, unauthorized,
//! forbidden) so each command reports them the same way.
//!
//! Below it, the rest of the plumbing every step shares: discovery,
//! permission reviews, writing objects and pod templates, rollouts, the
//! Istio control planes injection reads.

pub mod apply;
pub mod datapath;
pub mod discovery;
pub mod http1;
pub mod injector;
pub mod one_connection;
pub mod permissions;
pub mod pod_port;
pub mod pod_template;
pub mod probe;
pub mod proxy_admin;
pub mod rollout;
pub mod run;
pub mod transport;
pub mod unless_changed;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use k8s_openapi::apimachinery::pkg::version::Info;
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Client, Config};

use crate::error::{self, Error, Result};
use crate::terminal::wording::shell_word;
use crate::values::defaults;
use crate::values::duration;

/// The User-Agent every request carries, so audit logs can tell the plugin's
/// requests apart: `kubectl-kms-sts/<version>`.
pub const USER_AGENT: &str = concat!("kubectl-kms-sts/", env!("CARGO_PKG_VERSION"));

/// Where a run works: how to reach the cluster, as kubectl's flags say, and
/// the two namespaces the runbook spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub cluster: Option<String>,
    pub user: Option<String>,
    /// How long one API request may take; zero waits forever.
    pub request_timeout: Duration,
    pub kms_namespace: String,
    pub istio_namespace: String,
}

impl Default for Target {
    fn default() -> Target {
        Target {
            kubeconfig: None,
            context: None,
            cluster: None,
            user: None,
            request_timeout: duration::parse(defaults::REQUEST_TIMEOUT)
                .expect("the default request timeout is a duration"),
            kms_namespace: defaults::KMS_NAMESPACE.to_owned(),
            istio_namespace: defaults::ISTIO_NAMESPACE.to_owned(),
        }
    }
}

impl Target {
    /// The flags of this run that differ from the defaults, each as
    /// ` --flag value`: what a printed hint must carry to act on the same
    /// cluster and namespaces when pasted.
    pub fn flags_for_hints(&self) -> String {
        let mut flags = self.kubectl_flags();
        let mut add = |flag: &str, value: &str| {
            flags += &format!(" --{flag} {}", shell_word(value));
        };
        if self.kms_namespace != defaults::KMS_NAMESPACE {
            add("kms-namespace", &self.kms_namespace);
        }
        if self.istio_namespace != defaults::ISTIO_NAMESPACE {
            add("istio-namespace", &self.istio_namespace);
        }
        flags
    }

    /// The flags of `flags_for_hints` that kubectl itself takes: the
    /// kubeconfig, context, cluster and user, for hints that run kubectl.
    pub fn kubectl_flags(&self) -> String {
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
        flags
    }
}

/// A connected client plus what error messages need to say about it.
pub struct Cluster {
    client: Client,
    /// What the client was built from, for the HTTP/1.1 client of
    /// port-forwards, built when first needed.
    config: Config,
    user: String,
    tunnels: std::sync::OnceLock<Client>,
    /// The server's version, once read (see `version_opening_tunnel`).
    version: tokio::sync::Mutex<Option<Info>>,
    server: String,
    context: String,
    request_timeout: Option<Duration>,
}

impl Cluster {
    /// Loads the configuration the flags select and builds a client for it.
    /// Nothing is sent to the server yet.
    pub async fn connect(args: &Target) -> Result<Cluster> {
        let (mut config, context, user) = load_config(args).await?;
        if config.accept_invalid_certs {
            eprintln!(
                "warning: the kubeconfig turns off TLS verification for {}; \
                 the server's identity is not checked",
                config.cluster_url
            );
        }
        let request_timeout = (!args.request_timeout.is_zero()).then_some(args.request_timeout);
        config.connect_timeout = request_timeout;
        config.read_timeout = request_timeout;
        config.write_timeout = request_timeout;
        config.headers.push((
            HeaderName::from_static("user-agent"),
            HeaderValue::from_static(USER_AGENT),
        ));
        let server = config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_owned();
        let client = transport::client(config.clone(), &user, transport::Versions::Negotiated)
            .map_err(|source| Error::ClientSetup {
                server: server.clone(),
                source,
            })?;
        Ok(Cluster {
            client,
            config,
            user,
            tunnels: std::sync::OnceLock::new(),
            version: tokio::sync::Mutex::new(None),
            server,
            context,
            request_timeout,
        })
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// A client for port-forwards: the same credentials over HTTP/1.1, the
    /// only version the API server upgrades to a WebSocket.
    pub fn tunnel_client(&self) -> Result<Client> {
        if let Some(client) = self.tunnels.get() {
            return Ok(client.clone());
        }
        let client = transport::client(self.config.clone(), &self.user, transport::Versions::Http1)
            .map_err(|source| Error::ClientSetup {
                server: self.server.clone(),
                source,
            })?;
        Ok(self.tunnels.get_or_init(|| client).clone())
    }

    /// Reads the server's version over the tunnel client's connection, so
    /// that the connection a port-forward needs is opened (TCP and TLS)
    /// beside the other reads, by a request that is needed anyway, instead
    /// of delaying the forward or costing a request of its own. The forward
    /// that follows takes it from the client's pool. A call while a read is
    /// in flight, or after it, takes its answer, until `forget_version`.
    pub async fn version_opening_tunnel(&self) -> Result<Info> {
        let mut version = self.version.lock().await;
        if let Some(known) = version.as_ref() {
            return Ok(known.clone());
        }
        let client = self.tunnel_client()?;
        let read = self
            .call("read the server version", client.apiserver_version())
            .await?;
        Ok(version.insert(read).clone())
    }

    /// Lets the next `version_opening_tunnel` read the version again, and so
    /// open a connection for the next port-forward: a forward takes the
    /// connection it is given for good.
    pub async fn forget_version(&self) {
        *self.version.lock().await = None;
    }

    /// The API server's URL, for messages.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The kubeconfig context in use (`in-cluster` inside a pod).
    pub fn context(&self) -> &str {
        &self.context
    }

    /// Awaits one API request, bounded by the request timeout; failures are
    /// classified, with `action` saying what was being attempted.
    pub async fn call<T>(
        &self,
        action: &str,
        request: impl Future<Output = kube::Result<T>>,
    ) -> Result<T> {
        self.bounded(request)
            .await?
            .map_err(|source| self.classify(action, source))
    }

    /// How long one request may take, when it is bounded.
    pub fn request_timeout(&self) -> Option<Duration> {
        self.request_timeout
    }

    /// Classifies a failed request; the client's own connect and read
    /// timeouts (set to the request timeout) read as the timeout they are.
    pub fn classify(&self, action: &str, source: kube::Error) -> Error {
        if let Some(limit) = self.request_timeout
            && timed_out(&source)
        {
            return Error::Timeout {
                server: self.server.clone(),
                timeout: duration::display(limit),
            };
        }
        Error::from_api(action, &self.server, source)
    }

    /// Like `call` for a write that carries a precondition (a resourceVersion,
    /// or field ownership under server-side apply): a 409 Conflict comes back
    /// as `Ok(Err(message))`, for the caller to retry or report.
    pub async fn write<T>(
        &self,
        action: &str,
        request: impl Future<Output = kube::Result<T>>,
    ) -> Result<std::result::Result<T, String>> {
        match self.bounded(request).await? {
            Ok(value) => Ok(Ok(value)),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Err(status.message)),
            Err(source) => Err(self.classify(action, source)),
        }
    }

    /// Awaits a request bounded by the request timeout, leaving its own
    /// failure to the caller (see `classify`).
    pub async fn bounded<T>(
        &self,
        request: impl Future<Output = kube::Result<T>>,
    ) -> Result<kube::Result<T>> {
        match self.request_timeout {
            Some(limit) => tokio::time::timeout(limit, request)
                .await
                .map_err(|_| Error::Timeout {
                    server: self.server.clone(),
                    timeout: duration::display(limit),
                }),
            None => Ok(request.await),
        }
    }
}

/// The client configuration, the name of the context it came from and the
/// name of its user.
async fn load_config(args: &Target) -> Result<(Config, String, String)> {
    let Some(kubeconfig) = read_kubeconfig(args.kubeconfig.as_deref())? else {
        let config = Config::incluster().map_err(|_| Error::NoConfiguration)?;
        let user = "the in-cluster service account".to_owned();
        return Ok((config, "in-cluster".to_owned(), user));
    };
    let context = check_selection(&kubeconfig, args)?;
    let user = args
        .user
        .clone()
        .or_else(|| {
            let name = context.as_ref()?;
            let named = kubeconfig.contexts.iter().find(|c| &c.name == name)?;
            named.context.as_ref()?.user.clone()
        })
        .unwrap_or_default();
    let options = KubeConfigOptions {
        context: args.context.clone(),
        cluster: args.cluster.clone(),
        user: args.user.clone(),
    };
    let config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(Error::ClientConfig)?;
    Ok((config, context.unwrap_or_default(), user))
}

/// The kubeconfig's context names and the one the flags select.
pub fn contexts(args: &Target) -> Result<(Vec<String>, Option<String>)> {
    let Some(kubeconfig) = read_kubeconfig(args.kubeconfig.as_deref())? else {
        return Ok((Vec::new(), None));
    };
    let selected = check_selection(&kubeconfig, args)?;
    let names = kubeconfig.contexts.iter().map(|c| c.name.clone()).collect();
    Ok((names, selected))
}

/// The kubeconfig kubectl would use, or `None` when there is none at all.
fn read_kubeconfig(explicit: Option<&Path>) -> Result<Option<Kubeconfig>> {
    if let Some(path) = explicit {
        return read_file(path).map(Some);
    }
    let candidates: Vec<PathBuf> = match std::env::var_os("KUBECONFIG") {
        Some(list) => std::env::split_paths(&list)
            .filter(|path| !path.as_os_str().is_empty())
            .collect(),
        None => home_kubeconfig().into_iter().collect(),
    };
    // Like kubectl, files listed in KUBECONFIG that do not exist are skipped.
    let mut merged: Option<Kubeconfig> = None;
    for path in candidates.iter().filter(|path| path.exists()) {
        let next = read_file(path)?;
        merged = Some(match merged {
            None => next,
            Some(first) => first
                .merge(next)
                .map_err(|source| Error::KubeconfigInvalid {
                    path: path.clone(),
                    source,
                })?,
        });
    }
    Ok(merged)
}

fn home_kubeconfig() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").or_else(|| std::env::var_os("USERPROFILE"))?;
    Some(PathBuf::from(home).join(".kube").join("config"))
}

fn read_file(path: &Path) -> Result<Kubeconfig> {
    if !path.exists() {
        return Err(Error::KubeconfigMissing {
            path: path.to_owned(),
        });
    }
    Kubeconfig::read_from(path).map_err(|source| match source {
        KubeconfigError::ReadConfig(io, _) => Error::KubeconfigUnreadable {
            path: path.to_owned(),
            source: io,
        },
        source => Error::KubeconfigInvalid {
            path: path.to_owned(),
            source,
        },
    })
}

/// Rejects a `--context`, `--cluster` or `--user` the kubeconfig lacks,
/// listing the names it has; returns the selected context's name.
fn check_selection(kubeconfig: &Kubeconfig, args: &Target) -> Result<Option<String>> {
    let context = args.context.clone().or_else(|| {
        kubeconfig
            .current_context
            .clone()
            .filter(|name| !name.is_empty())
    });
    let contexts: Vec<String> = kubeconfig.contexts.iter().map(|c| c.name.clone()).collect();
    if let Some(name) = &context
        && !contexts.contains(name)
    {
        return Err(Error::UnknownContext {
            name: name.clone(),
            available: contexts,
        });
    }
    if let Some(name) = &args.cluster {
        let clusters: Vec<String> = kubeconfig.clusters.iter().map(|c| c.name.clone()).collect();
        if !clusters.contains(name) {
            return Err(Error::UnknownCluster {
                name: name.clone(),
                available: clusters,
            });
        }
    }
    if let Some(name) = &args.user {
        let users: Vec<String> = kubeconfig
            .auth_infos
            .iter()
            .map(|u| u.name.clone())
            .collect();
        if !users.contains(name) {
            return Err(Error::UnknownUser {
                name: name.clone(),
                available: users,
            });
        }
    }
    Ok(context)
}
/// Whether a transport failure is the client's connect or read timeout:
/// those surface as an I/O error of kind `TimedOut` somewhere in the chain.
fn timed_out(source: &kube::Error) -> bool {
    matches!(
        source,
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_)
    ) && error::caused_by(source, |err| {
        err.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service_error(error: std::io::Error) -> kube::Error {
        kube::Error::Service(Box::new(error))
    }

    #[test]
    fn timeouts_are_known_by_their_kind_not_their_words() {
        use std::io::{Error as IoError, ErrorKind};
        assert!(timed_out(&service_error(IoError::from(
            ErrorKind::TimedOut
        ))));
        assert!(timed_out(&service_error(IoError::new(
            ErrorKind::TimedOut,
            "deadline has elapsed"
        ))));
        // A watch whose connection stops answering mid-stream.
        assert!(timed_out(&kube::Error::ReadEvents(IoError::other(
            IoError::from(ErrorKind::TimedOut)
        ))));
        // Words alone say nothing: a server's message may contain them.
        assert!(!timed_out(&service_error(IoError::other(
            "the operation timed out"
        ))));
        assert!(!timed_out(&service_error(IoError::from(
            ErrorKind::ConnectionRefused
        ))));
    }
}
