//! The HTTPS transport to the API server, built here instead of by kube's
//! `rustls-tls` feature. That feature always links a platform trust store
//! (on macOS, Apple's Security framework), which cannot be linked when the
//! plugin is built for macOS from Linux; a Kubernetes client does not need
//! one, because it trusts what the kubeconfig says, as kubectl does:
//!
//! - the cluster's `certificate-authority(-data)`, or the public web roots
//!   (webpki) when the kubeconfig names none;
//! - `insecure-skip-tls-verify` (signatures are still checked, identities not);
//! - `tls-server-name` for SNI and the certificate check;
//! - the client certificate of the kubeconfig user, or the one an exec
//!   credential plugin returns.
//!
//! Tokens, exec plugins that return tokens, basic auth and impersonation stay
//! with kube's own layers (`ConfigExt`), as do timeouts and the retry of 429,
//! 503 and 504 that kube's default client has.

use std::process::{Command, Stdio};
use std::sync::Arc;

use hyper_rustls::{FixedServerNameResolver, HttpsConnectorBuilder};
use hyper_timeout::TimeoutConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::client::ConfigExt;
use kube::client::retry::RetryPolicy;
use kube::config::{AuthInfo, ExecConfig, ExecInteractiveMode};
use kube::{Client, Config};
use rustls::client::Resumption;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use secrecy::ExposeSecret;
use tower::{BoxError, ServiceBuilder, retry::RetryLayer};

use crate::cluster::one_connection::OneConnection;

/// Why a client could not be built from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("the cluster's certificate authority is not a valid certificate")]
    InvalidCertificateAuthority(#[source] rustls::Error),

    #[error("the client certificate of user {user} cannot be read")]
    ClientCertificate {
        user: String,
        #[source]
        source: std::io::Error,
    },

    #[error("the client certificate or key of user {user} is not valid PEM: {detail}")]
    InvalidIdentity { user: String, detail: String },

    #[error("the client key of user {user} does not fit its certificate")]
    IdentityRejected {
        user: String,
        #[source]
        source: rustls::Error,
    },

    #[error("the credential plugin `{command}` failed: {detail}")]
    ExecPlugin { command: String, detail: String },

    #[error("tls-server-name {name:?} is not a valid DNS name or IP address")]
    InvalidServerName { name: String },

    #[error("proxy-url {url} is not supported; reach the API server directly")]
    ProxyUnsupported { url: String },

    #[error("{0}")]
    Kube(#[from] kube::Error),
}

type Result<T> = std::result::Result<T, TransportError>;

/// Which HTTP versions the client offers the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versions {
    /// HTTP/2 where the server offers it (ALPN), else HTTP/1.1: every API
    /// request.
    Negotiated,
    /// HTTP/1.1 only: the API server upgrades a connection to a WebSocket
    /// (a port-forward) over HTTP/1.1 alone.
    Http1,
}

/// A kube client for `config`, over the TLS set up here, offering
/// `versions`. `user` names the kubeconfig user in messages.
pub fn client(mut config: Config, user: &str, versions: Versions) -> Result<Client> {
    if let Some(url) = &config.proxy_url {
        return Err(TransportError::ProxyUnsupported {
            url: url.to_string(),
        });
    }
    let identity = match exec_identity(&config.auth_info, user)? {
        Some(identity) => {
            // The plugin answered with a certificate: it is the credential,
            // so kube's auth layer must not run the plugin again for a token.
            config.auth_info.exec = None;
            Some(identity)
        }
        None => kubeconfig_identity(&config.auth_info, user)?,
    };
    let tls = tls_config(&config, identity, user)?;

    let mut http = HttpConnector::new();
    http.enforce_http(false);
    // Small HTTP/2 frames go out at once, as Go clients send them, instead
    // of waiting on the acknowledgement of the previous one (Nagle).
    http.set_nodelay(true);
    let mut https = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    if let Some(name) = &config.tls_server_name {
        let name = ServerName::try_from(name.clone())
            .map_err(|_| TransportError::InvalidServerName { name: name.clone() })?;
        https = https.with_server_name_resolver(FixedServerNameResolver::new(name));
    }
    let https = match versions {
        Versions::Negotiated => https.enable_all_versions().wrap_connector(http),
        Versions::Http1 => https.enable_http1().wrap_connector(http),
    };
    let mut connector = TimeoutConnector::new(https);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    let http_client = hyper_util::client::legacy::Builder::new(TokioExecutor::new())
        .build(OneConnection::new(connector));

    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(
            config
                .default_retry
                .then(|| RetryLayer::new(RetryPolicy::server_retry())),
        )
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(http_client);
    Ok(Client::new(service, config.default_namespace))
}

/// A client certificate chain and its private key.
struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_config(config: &Config, identity: Option<Identity>, user: &str) -> Result<ClientConfig> {
    let provider = provider();
    let mut roots = RootCertStore::empty();
    match &config.root_cert {
        Some(certificates) => {
            for der in certificates {
                roots
                    .add(CertificateDer::from(der.clone()))
                    .map_err(TransportError::InvalidCertificateAuthority)?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TransportError::InvalidCertificateAuthority)?
        .with_root_certificates(roots);
    let mut tls = match identity {
        Some(Identity { chain, key }) => {
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|source| TransportError::IdentityRejected {
                    user: user.to_owned(),
                    source,
                })?
        }
        None => builder.with_no_client_auth(),
    };
    // A client opens one connection to one server for the whole run, so a
    // session cache would hold state (about 17 KB, twice per context of a
    // fleet) that is never resumed.
    tls.resumption = Resumption::disabled();
    if config.accept_invalid_certs {
        tls.dangerous()
            .set_certificate_verifier(Arc::new(SignatureOnlyVerifier {
                algorithms: provider.signature_verification_algorithms,
            }));
    }
    Ok(tls)
}

/// The certificate and key the kubeconfig user names, inline (`-data`,
/// which wins) or as files.
fn kubeconfig_identity(auth: &AuthInfo, user: &str) -> Result<Option<Identity>> {
    let read = |data: Option<&str>, file: Option<&String>| -> Result<Option<Vec<u8>>> {
        if let Some(data) = data {
            return base64::Engine::decode(&base64::engine::general_purpose::STANDARD, data)
                .map(Some)
                .map_err(|error| TransportError::InvalidIdentity {
                    user: user.to_owned(),
                    detail: format!("its inline data is not base64 ({error})"),
                });
        }
        file.map(std::fs::read)
            .transpose()
            .map_err(|source| TransportError::ClientCertificate {
                user: user.to_owned(),
                source,
            })
    };
    let certificate = read(
        auth.client_certificate_data.as_deref(),
        auth.client_certificate.as_ref(),
    )?;
    let key = read(
        auth.client_key_data.as_ref().map(|key| key.expose_secret()),
        auth.client_key.as_ref(),
    )?;
    match (certificate, key) {
        (None, None) => Ok(None),
        (Some(certificate), Some(key)) => parse_identity(&certificate, &key, user).map(Some),
        (Some(_), None) => Err(TransportError::InvalidIdentity {
            user: user.to_owned(),
            detail: "it has a client certificate but no client key".to_owned(),
        }),
        (None, Some(_)) => Err(TransportError::InvalidIdentity {
            user: user.to_owned(),
            detail: "it has a client key but no client certificate".to_owned(),
        }),
    }
}

fn parse_identity(certificate: &[u8], key: &[u8], user: &str) -> Result<Identity> {
    let invalid = |detail: String| TransportError::InvalidIdentity {
        user: user.to_owned(),
        detail,
    };
    let chain = CertificateDer::pem_slice_iter(certificate)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|error| invalid(format!("the certificate: {error}")))?;
    if chain.is_empty() {
        return Err(invalid(
            "the certificate holds no CERTIFICATE block".to_owned(),
        ));
    }
    let key =
        PrivateKeyDer::from_pem_slice(key).map_err(|error| invalid(format!("the key: {error}")))?;
    Ok(Identity { chain, key })
}

/// The client certificate an exec credential plugin returns, if the user has
/// such a plugin and it returns one (plugins that return a token are left to
/// kube's auth layer). The plugin is run as kubectl runs it: its arguments
/// and environment, `KUBERNETES_EXEC_INFO`, and the terminal when it may ask.
fn exec_identity(auth: &AuthInfo, user: &str) -> Result<Option<Identity>> {
    let Some(exec) = &auth.exec else {
        return Ok(None);
    };
    let Some(program) = &exec.command else {
        return Ok(None);
    };
    let failed = |detail: String| TransportError::ExecPlugin {
        command: program.clone(),
        detail,
    };
    let output = exec_command(exec, program)
        .map_err(failed)?
        .output()
        .map_err(|error| failed(error.to_string()))?;
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        return Err(failed(format!("it exited with {}; {said}", output.status)));
    }
    let credential: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|error| failed(format!("its output is not an ExecCredential ({error})")))?;
    let status = &credential["status"];
    match (
        status["clientCertificateData"].as_str(),
        status["clientKeyData"].as_str(),
    ) {
        (Some(certificate), Some(key)) => {
            parse_identity(certificate.as_bytes(), key.as_bytes(), user).map(Some)
        }
        _ => Ok(None),
    }
}

fn exec_command(exec: &ExecConfig, program: &str) -> std::result::Result<Command, String> {
    let mut command = Command::new(program);
    command.args(exec.args.iter().flatten());
    for variable in exec.env.iter().flatten() {
        if let (Some(name), Some(value)) = (variable.get("name"), variable.get("value")) {
            command.env(name, value);
        }
    }
    let interactive = exec.interactive_mode != Some(ExecInteractiveMode::Never);
    command.stdin(if interactive {
        Stdio::inherit()
    } else {
        Stdio::piped()
    });
    if interactive {
        command.stderr(Stdio::inherit());
    }
    let mut spec = serde_json::json!({ "interactive": interactive });
    if exec.provide_cluster_info {
        let cluster = exec
            .cluster
            .as_ref()
            .ok_or("it asks for cluster information the kubeconfig does not give")?;
        spec["cluster"] = serde_json::to_value(cluster).map_err(|error| error.to_string())?;
    }
    let info = serde_json::json!({
        "apiVersion": exec.api_version,
        "kind": "ExecCredential",
        "spec": spec,
    });
    command.env("KUBERNETES_EXEC_INFO", info.to_string());
    for name in exec.drop_env.iter().flatten() {
        command.env_remove(name);
    }
    Ok(command)
}

/// `insecure-skip-tls-verify`: any certificate is taken, but the handshake's
/// signatures are still checked against it.
#[derive(Debug)]
struct SignatureOnlyVerifier {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for SignatureOnlyVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
