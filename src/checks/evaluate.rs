//! Every `status` check, decided from a `Snapshot` of the cluster taken
//! beforehand. Pure: the same snapshot always gives the same report, and each
//! rule is unit-tested with hand-made objects.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{Category, Check, CheckId, Report};
use crate::manifests::exposure::{self, KMS_SERVICE};
use crate::objects::apis::ServedApis;
use crate::objects::mounts::{secret_data, secret_mounted_at};
use crate::objects::owned::{self, GATEWAY};
use crate::objects::rollout_state::{RolloutState, rollout_state};
use crate::objects::schemas::{
    Certificate as CertificateObject, ClientTls, Destination, DestinationRule, Gateway,
    IdentityMappingPolicy, ServerTls, VirtualService, VirtualServiceSpec, certificate_ready,
};
use crate::terminal::wording::count;
use crate::terminal::wording::shell_word;
use crate::values::apikey;
use crate::values::certificate::{self, Certificate};
use crate::values::crn;
use crate::values::defaults;
use crate::values::host::{self, Host};
use crate::values::sidecar;

/// The names `status` looks for; the subcommands' defaults unless overridden.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Names {
    pub kms_namespace: String,
    pub istio_namespace: String,
    pub deployment: String,
    pub token_adapter: String,
    pub secret: String,
    pub secret_key: String,
    pub policy: String,
    /// The run's cluster flags that differ from the defaults, as
    /// `ClusterArgs::flags_for_hints` gives them, for hints to carry.
    pub cluster_flags: String,
}

impl Names {
    /// The runbook's names and namespaces, with `cluster_flags` for hints.
    #[cfg(test)]
    pub fn runbook(cluster_flags: &str) -> Names {
        Names {
            kms_namespace: defaults::KMS_NAMESPACE.into(),
            istio_namespace: defaults::ISTIO_NAMESPACE.into(),
            deployment: defaults::DEPLOYMENT.into(),
            token_adapter: defaults::TOKEN_ADAPTER.into(),
            secret: defaults::SECRET.into(),
            secret_key: defaults::SECRET_KEY.into(),
            policy: defaults::POLICY.into(),
            cluster_flags: cluster_flags.into(),
        }
    }

    /// A subcommand line to paste, in backquotes: `sub` with `args`, the
    /// names it takes that differ from the runbook's, and the run's
    /// cluster flags, so that it acts on what this report checked.
    fn command(&self, sub: &str, args: &str) -> String {
        let mut line = format!("kubectl kms-sts {sub}{args}");
        let mut add = |flag: &str, value: &str, default: &str| {
            if value != default {
                line += &format!(" --{flag} {}", shell_word(value));
            }
        };
        match sub {
            "set-apikey" => {
                add("secret", &self.secret, defaults::SECRET);
                add("secret-key", &self.secret_key, defaults::SECRET_KEY);
                add(
                    "token-adapter",
                    &self.token_adapter,
                    defaults::TOKEN_ADAPTER,
                );
            }
            "inject" => add("deployment", &self.deployment, defaults::DEPLOYMENT),
            "map-identity" => {
                add("name", &self.policy, defaults::POLICY);
                add("secret", &self.secret, defaults::SECRET);
                add("secret-key", &self.secret_key, defaults::SECRET_KEY);
            }
            _ => {}
        }
        format!("`{line}{}`", self.cluster_flags)
    }
}

/// The labels a Gateway selects its pods by.
pub fn gateway_labels(gateway: &Gateway) -> BTreeMap<String, String> {
    gateway.spec.selector.clone()
}

/// `expose` as the Certificate and Gateway in the cluster were written: their
/// hosts, issuer and gateway label, placeholders only for what is unknown.
fn expose_command(s: &Snapshot, names: &Names) -> String {
    let spec = s.certificate.as_ref().map(|c| &c.spec);
    let hosts: Vec<&String> = spec
        .into_iter()
        .flat_map(|spec| spec.ip_addresses.iter().chain(&spec.dns_names))
        .collect();
    let mut args = if hosts.is_empty() {
        " --host ADDRESS".to_owned()
    } else {
        hosts
            .iter()
            .map(|host| format!(" --host {}", shell_word(host)))
            .collect()
    };
    if let Some(issuer) = spec.map(|spec| &spec.issuer_ref) {
        if !issuer.name.is_empty() && issuer.name != defaults::ISSUER {
            args += &format!(" --issuer {}", shell_word(&issuer.name));
        }
        if issuer.kind.as_deref() == Some("Issuer") {
            args += " --issuer-kind Issuer";
        }
    }
    let selector = s.gateway.as_ref().map(gateway_labels).unwrap_or_default();
    if let Some((label, value)) = selector.iter().next()
        && format!("{label}={value}") != defaults::GATEWAY_SELECTOR
    {
        args += &format!(
            " --gateway-selector {}",
            shell_word(&format!("{label}={value}"))
        );
    }
    names.command("expose", &args)
}

/// What the cluster looked like when the checks ran: only what the checks
/// read, and nothing secret (see `redact`), so that it can be saved to a
/// file and sent to someone else.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub server: String,
    pub server_version: String,
    pub permissions_needed: usize,
    /// The permissions the user lacks, as people read them.
    pub missing_permissions: Vec<String>,
    pub served: ServedApis,
    pub kms_service: Option<Service>,
    pub apikey_secret: Option<KeySecret>,
    pub token_adapter: Option<Deployment>,
    pub token_adapter_pods: Vec<Pod>,
    pub kms: Option<Deployment>,
    pub kms_pods: Vec<Pod>,
    pub certificate: Option<CertificateObject>,
    pub certificate_secret: Option<Secret>,
    pub gateway: Option<Gateway>,
    pub virtual_service: Option<VirtualService>,
    pub destination_rule: Option<DestinationRule>,
    pub policy: Option<IdentityMappingPolicy>,
    /// The pods in the Istio namespace that the Gateway's selector matches.
    pub gateway_pods: Vec<Pod>,
    /// The secrets of the Istio namespace the gateway's certificate and CA
    /// may come from, by name: those its pods mount and those named by
    /// `credentialName`.
    pub gateway_secrets: BTreeMap<String, Secret>,
    /// The TLS secret kms-api's pods mount: the certificate KMS serves.
    pub kms_tls_secret: Option<(String, Secret)>,
    /// When the snapshot was taken, in seconds since the Unix epoch.
    pub now: i64,
}

/// The Secret holding the API key, as far as the checks need it: the
/// fingerprint `status` prints of the key, never the key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeySecret {
    /// `sha256:...` of the value under the Secret's data key; `None` when
    /// that key is missing or empty.
    pub fingerprint: Option<String>,
    /// When the Secret was last written (its newest managed-fields entry,
    /// else its creation), in seconds since the Unix epoch.
    pub last_changed: Option<i64>,
}

impl KeySecret {
    /// What the checks keep of `secret`, whose data key `key` holds the API key.
    pub fn of(secret: &Secret, key: &str) -> KeySecret {
        let value = secret
            .data
            .as_ref()
            .and_then(|data| data.get(key))
            .filter(|value| !value.0.is_empty());
        KeySecret {
            fingerprint: value.map(|value| format!("sha256:{}", apikey::fingerprint(&value.0))),
            last_changed: last_changed(secret).map(|time| time.as_second()),
        }
    }
}

/// What one round of reads gave the checks: the whole snapshot, or, when a
/// read was refused, what a user with partial rights could still read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Reading {
    Complete(Snapshot),
    Refused {
        snapshot: Snapshot,
        /// What was refused, and the server's words for it.
        action: String,
        refusal: String,
    },
}

impl Reading {
    pub fn snapshot(&self) -> &Snapshot {
        match self {
            Reading::Complete(snapshot) | Reading::Refused { snapshot, .. } => snapshot,
        }
    }

    /// The report the checks give on what was read.
    pub fn report(&self, names: &Names) -> Report {
        match self {
            Reading::Complete(snapshot) => report(snapshot, names),
            Reading::Refused {
                snapshot,
                action,
                refusal,
            } => unreadable_report(snapshot, names, action, refusal),
        }
    }
}

pub fn report(snapshot: &Snapshot, names: &Names) -> Report {
    Report::new(vec![
        Category {
            name: "cluster",
            checks: cluster(snapshot),
        },
        Category {
            name: "prerequisites",
            checks: prerequisites(snapshot, names),
        },
        Category {
            name: "api key",
            checks: api_key(snapshot, names),
        },
        Category {
            name: "sidecar",
            checks: sidecar_checks(snapshot, names),
        },
        Category {
            name: "exposure",
            checks: exposure_checks(snapshot, names),
        },
        Category {
            name: "data path",
            checks: data_path(snapshot, names),
        },
        Category {
            name: "identity",
            checks: identity(snapshot, names),
        },
    ])
}

/// The report when a read the checks need was refused: the cluster's
/// checks, every permission the user lacks, and what could not be read, so
/// that a user with partial rights gets a report instead of one error.
pub fn unreadable_report(s: &Snapshot, names: &Names, action: &str, refusal: &str) -> Report {
    let mut checks = cluster(s);
    checks.push(Check::fail(
        CheckId::ReadAccess,
        format!("{action} was refused: {refusal}; the other checks need it"),
        format!(
            "ask a cluster administrator to apply the Roles that {} prints",
            names.command("rbac", " --for status --to-user NAME")
        ),
    ));
    Report::new(vec![Category {
        name: "cluster",
        checks,
    }])
}

fn cluster(s: &Snapshot) -> Vec<Check> {
    let mut checks = vec![Check::pass(
        CheckId::ApiServer,
        format!("reachable at {}, Kubernetes {}", s.server, s.server_version),
    )];
    checks.push(if s.missing_permissions.is_empty() {
        Check::pass(
            CheckId::Permissions,
            format!(
                "all {} the plugin needs are granted",
                count(s.permissions_needed as i64, "permission", "permissions")
            ),
        )
    } else {
        let list: Vec<String> = s
            .missing_permissions
            .iter()
            .map(ToString::to_string)
            .collect();
        Check::fail(
            CheckId::Permissions,
            format!("missing: {}", list.join(", ")),
            "ask a cluster administrator to grant these to your user",
        )
    });
    checks
}

fn prerequisites(s: &Snapshot, names: &Names) -> Vec<Check> {
    let mut checks = vec![match s.served.cert_manager() {
        Some(api) => Check::pass(
            CheckId::CertManagerApi,
            format!("{}/{}", api.group(), api.version()),
        ),
        None => Check::fail(
            CheckId::CertManagerApi,
            "neither cert-manager.io/v1 nor certmanager.k8s.io/v1alpha1 is served",
            "install cert-manager",
        ),
    }];
    checks.push(match s.served.istio_networking() {
        Some(version) => Check::pass(
            CheckId::IstioNetworkingApi,
            format!("networking.istio.io/{version}"),
        ),
        None => Check::fail(
            CheckId::IstioNetworkingApi,
            "networking.istio.io Gateway, VirtualService and DestinationRule are not served",
            "install Istio",
        ),
    });
    checks.push(if s.served.identity_policy() {
        Check::pass(CheckId::IdentityPolicyApi, "policy.ibm.com/v1alpha1")
    } else {
        Check::fail(
            CheckId::IdentityPolicyApi,
            "policy.ibm.com/v1alpha1 identitymappingpolicies is not served",
            "install STS, which brings this CRD",
        )
    });
    checks.push(match &s.kms_service {
        Some(service) => match exposure::service_port(service, None) {
            Ok(port) => Check::pass(
                CheckId::KmsApiService,
                format!("{}/{KMS_SERVICE} on port {port}", names.kms_namespace),
            ),
            Err(reason) => Check::warn(CheckId::KmsApiService, reason, "pass --port to expose"),
        },
        None => Check::fail(
            CheckId::KmsApiService,
            format!("{}/{KMS_SERVICE} does not exist", names.kms_namespace),
            "install KMS, or point --kms-namespace at it",
        ),
    });
    checks
}

/// When the secret's data last changed, as far as its managed fields tell.
fn last_changed(secret: &Secret) -> Option<Timestamp> {
    secret
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|entry| entry.time.as_ref().map(|t| t.0))
        .max()
        .or_else(|| secret.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

fn pod_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|status| status.conditions.as_ref())
            .is_some_and(|conditions| {
                conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            })
}

fn api_key(s: &Snapshot, names: &Names) -> Vec<Check> {
    let secret_name = format!("{}/{}", names.istio_namespace, names.secret);
    let set_apikey = format!("run {}", names.command("set-apikey", ""));
    let value = s
        .apikey_secret
        .as_ref()
        .and_then(|secret| secret.fingerprint.as_ref());
    let mut checks = vec![match (&s.apikey_secret, value) {
        (None, _) => Check::fail(
            CheckId::ApiKeySecret,
            format!("{secret_name} does not exist"),
            set_apikey.clone(),
        ),
        (Some(_), None) => Check::fail(
            CheckId::ApiKeySecret,
            format!("{secret_name} has no value for key {}", names.secret_key),
            set_apikey,
        ),
        (Some(_), Some(fingerprint)) => Check::pass(
            CheckId::ApiKeySecret,
            format!("{secret_name} holds key {fingerprint}"),
        ),
    }];
    let adapter = format!("{}/{}", names.istio_namespace, names.token_adapter);
    let ready: Vec<&Pod> = s
        .token_adapter_pods
        .iter()
        .filter(|p| pod_ready(p))
        .collect();
    let changed = s
        .apikey_secret
        .as_ref()
        .and_then(|secret| secret.last_changed);
    let stale = ready
        .iter()
        .filter(|pod| {
            let started = pod
                .status
                .as_ref()
                .and_then(|st| st.start_time.as_ref())
                .map(|t| t.0.as_second());
            matches!((started, changed), (Some(started), Some(changed)) if started < changed)
        })
        .count();
    checks.push(if s.token_adapter.is_none() {
        Check::fail(
            CheckId::TokenAdapter,
            format!("deployment {adapter} does not exist"),
            "install STS, or name the deployment with --token-adapter",
        )
    } else if ready.is_empty() {
        Check::fail(
            CheckId::TokenAdapter,
            format!("no ready pod of {adapter}"),
            format!("check `kubectl get pods -n {}`", names.istio_namespace),
        )
    } else if stale > 0 && value.is_some() {
        Check::warn(
            CheckId::TokenAdapter,
            format!(
                "restart needed: {stale} of {} started before the key last changed",
                count(ready.len() as i64, "ready pod", "ready pods")
            ),
            format!(
                "run {} with the same key",
                names.command("set-apikey", " --restart")
            ),
        )
    } else {
        Check::pass(
            CheckId::TokenAdapter,
            format!(
                "{}, started after the key last changed",
                count(ready.len() as i64, "ready pod", "ready pods")
            ),
        )
    });
    checks
}

fn sidecar_checks(s: &Snapshot, names: &Names) -> Vec<Check> {
    let name = format!("{}/{}", names.kms_namespace, names.deployment);
    let Some(kms) = &s.kms else {
        return vec![Check::fail(
            CheckId::KmsDeployment,
            format!("{name} does not exist"),
            "install KMS, or name it with --deployment",
        )];
    };
    let mut checks = vec![match rollout_state(kms) {
        RolloutState::Complete { ready } => Check::pass(
            CheckId::KmsDeployment,
            format!("{name} rolled out, {ready} available"),
        ),
        RolloutState::InProgress(text) => Check::warn(
            CheckId::KmsDeployment,
            format!("{name} is rolling out: {text}"),
            "wait, or check `kubectl rollout status`",
        ),
        RolloutState::Failed(reason) => Check::fail(
            CheckId::KmsDeployment,
            format!("{name}: {reason}"),
            "check the pods' events",
        ),
    }];
    let template = kms
        .spec
        .as_ref()
        .map(|spec| spec.template.clone())
        .unwrap_or_default();
    let ready: Vec<&Pod> = s.kms_pods.iter().filter(|p| pod_ready(p)).collect();
    let without: Vec<String> = ready
        .iter()
        .filter(|pod| !sidecar::pod_has_sidecar(pod))
        .filter_map(|pod| pod.metadata.name.clone())
        .collect();
    checks.push(if !sidecar::template_is_injected(&template) {
        Check::fail(
            CheckId::Sidecar,
            format!("{name} has no istio-proxy sidecar"),
            format!("run {}", names.command("inject", "")),
        )
    } else if !without.is_empty() {
        Check::fail(
            CheckId::Sidecar,
            format!("ready pods without istio-proxy: {}", without.join(", ")),
            format!(
                "wait for the rollout, or run {} again",
                names.command("inject", "")
            ),
        )
    } else {
        Check::pass(
            CheckId::Sidecar,
            match ready.len() {
                1 => "the 1 ready pod runs istio-proxy".to_owned(),
                n => format!("all {n} ready pods run istio-proxy"),
            },
        )
    });
    checks
}

fn exposure_checks(s: &Snapshot, names: &Names) -> Vec<Check> {
    let expose = format!("run {}", expose_command(s, names));
    let mut checks = certificate_checks(s, names, &expose);
    checks.push(match &s.gateway {
        None => missing(CheckId::Gateway, &names.kms_namespace, GATEWAY, &expose),
        Some(_) => Check::pass(
            CheckId::Gateway,
            format!("{}/{GATEWAY} present", names.kms_namespace),
        ),
    });
    checks.push(route_check(s, names, &expose));
    checks.push(destination_rule_check(s, names, &expose));
    checks
}

/// A check that fails because the object `namespace/name` does not exist.
fn missing(what: CheckId, namespace: &str, name: &str, expose: &str) -> Check {
    Check::fail(what, format!("{namespace}/{name} does not exist"), expose)
}

/// The Certificate is Ready and its secret exists.
fn certificate_checks(s: &Snapshot, names: &Names, expose: &str) -> Vec<Check> {
    let mut checks = Vec::new();
    checks.push(match &s.certificate {
        None => missing(
            CheckId::Certificate,
            &names.istio_namespace,
            owned::CERTIFICATE,
            expose,
        ),
        Some(cert) if certificate_ready(cert) => {
            Check::pass(CheckId::Certificate, "issued and Ready")
        }
        Some(_) => Check::warn(
            CheckId::Certificate,
            "not Ready yet",
            format!(
                "check `kubectl describe certificate {} -n {}` and its issuer",
                owned::CERTIFICATE,
                names.istio_namespace
            ),
        ),
    });
    if let Some(cert) = &s.certificate {
        let secret = &cert.spec.secret_name;
        checks.push(match &s.certificate_secret {
            Some(_) => Check::pass(
                CheckId::TlsSecret,
                format!("{}/{secret} present", names.istio_namespace),
            ),
            None => Check::fail(
                CheckId::TlsSecret,
                format!("{}/{secret} does not exist", names.istio_namespace),
                "the issuer has not issued the certificate: check cert-manager's logs",
            ),
        });
    }
    checks
}

/// Where the first HTTP route of the VirtualService sends requests.
fn routed_host(s: &Snapshot) -> Option<&str> {
    let route = s.virtual_service.as_ref()?;
    route.spec.first_destination()?.host.as_deref()
}

/// The VirtualService is bound to the Gateway and routes to kms-api's port.
fn route_check(s: &Snapshot, names: &Names, expose: &str) -> Check {
    let service_port = s
        .kms_service
        .as_ref()
        .and_then(|svc| exposure::service_port(svc, None).ok());
    let route = s.virtual_service.as_ref().map(|vs| &vs.spec);
    let destination = route.and_then(VirtualServiceSpec::first_destination);
    let routed_host = routed_host(s);
    match route {
        None => missing(
            CheckId::VirtualService,
            &names.kms_namespace,
            owned::VIRTUAL_SERVICE,
            expose,
        ),
        Some(spec) => {
            let bound = spec.gateways.iter().any(|g| g == GATEWAY);
            let port = destination.and_then(Destination::port_number);
            if !bound {
                Check::fail(
                    CheckId::VirtualService,
                    format!("not bound to gateway {GATEWAY}"),
                    expose,
                )
            } else if routed_host.is_none() {
                Check::fail(
                    CheckId::VirtualService,
                    format!("has no HTTP route to {KMS_SERVICE}"),
                    expose,
                )
            } else if let (Some(port), Some(expected)) = (port, service_port)
                && i64::from(port) != i64::from(expected)
            {
                Check::fail(
                    CheckId::VirtualService,
                    format!("routes to port {port}, but {KMS_SERVICE} serves {expected}"),
                    expose,
                )
            } else {
                Check::pass(
                    CheckId::VirtualService,
                    format!(
                        "bound to {GATEWAY}, routes to {}:{}",
                        routed_host.unwrap_or_default(),
                        shown(port)
                    ),
                )
            }
        }
    }
}

/// The DestinationRule's host is the one the route sends to.
fn destination_rule_check(s: &Snapshot, names: &Names, expose: &str) -> Check {
    let routed_host = routed_host(s);
    match &s.destination_rule {
        None => missing(
            CheckId::DestinationRule,
            &names.kms_namespace,
            owned::DESTINATION_RULE,
            expose,
        ),
        Some(dr) => {
            let host = dr.spec.host.as_deref();
            match routed_host {
                Some(routed) if Some(routed) != host => Check::fail(
                    CheckId::DestinationRule,
                    format!("host {} differs from the route's {routed}", shown(host)),
                    expose,
                ),
                _ => Check::pass(CheckId::DestinationRule, format!("TLS to {}", shown(host))),
            }
        }
    }
}

/// Certificates closer than this to their end are warned about.
const EXPIRY_WARNING_SECONDS: i64 = 30 * 24 * 3600;

/// Where a gateway pod reads a certificate from, and its data.
struct Source<'a> {
    describe: String,
    data: &'a [u8],
}

/// A file of the ready gateway pods: every one must mount, at the file's
/// directory, the same secret holding the file's name as a key.
fn file_source<'a>(s: &'a Snapshot, names: &Names, path: &str) -> Result<Source<'a>, String> {
    let (dir, key) = path
        .rsplit_once('/')
        .ok_or(format!("{path} is no file path"))?;
    let ready: Vec<&Pod> = s.gateway_pods.iter().filter(|p| pod_ready(p)).collect();
    let mounted: Vec<Option<String>> = ready.iter().map(|p| secret_mounted_at(p, dir)).collect();
    let Some(Some(secret)) = mounted.first() else {
        return Err(format!("the gateway pods mount no secret at {dir}"));
    };
    if mounted.iter().any(|m| m.as_ref() != Some(secret)) {
        return Err(format!(
            "not every gateway pod mounts secret {secret} at {dir}"
        ));
    }
    let namespace = &names.istio_namespace;
    let found = s.gateway_secrets.get(secret).ok_or(format!(
        "{dir} is mounted from secret {namespace}/{secret}, which does not exist"
    ))?;
    let data = secret_data(found, key).ok_or(format!(
        "secret {namespace}/{secret} mounted at {dir} holds no {key}"
    ))?;
    Ok(Source {
        describe: format!("{path} (secret {namespace}/{secret} mounted at {dir})"),
        data,
    })
}

/// A secret of the gateway's namespace named by `credentialName`, holding
/// the first of `keys` present.
fn credential_source<'a>(
    s: &'a Snapshot,
    names: &Names,
    name: &str,
    keys: &[&str],
) -> Result<Source<'a>, String> {
    let namespace = &names.istio_namespace;
    let found = s.gateway_secrets.get(name).ok_or(format!(
        "credentialName {name}: secret {namespace}/{name} does not exist"
    ))?;
    let data = keys
        .iter()
        .find_map(|key| secret_data(found, key))
        .ok_or(format!(
            "secret {namespace}/{name} holds no {}",
            keys.join(" or ")
        ))?;
    Ok(Source {
        describe: format!("secret {namespace}/{name} (credentialName)"),
        data,
    })
}

fn date(seconds: i64) -> String {
    Timestamp::from_second(seconds)
        .map(|t| t.strftime("%Y-%m-%d").to_string())
        .unwrap_or_else(|_| seconds.to_string())
}

/// The checks that tell whether a request to the gateway reaches KMS: a
/// gateway pod serves the Gateway, it can load the certificate, the
/// certificate covers the hosts and is in date, and the gateway trusts the
/// certificate kms-api really serves.
fn data_path(s: &Snapshot, names: &Names) -> Vec<Check> {
    let expose = format!("run {}", expose_command(s, names));
    let expose = expose.as_str();
    let Some(gateway) = &s.gateway else {
        return vec![Check::fail(
            CheckId::GatewayPods,
            format!(
                "no Gateway {}/{GATEWAY} to serve requests",
                names.kms_namespace
            ),
            expose,
        )];
    };
    let selector = gateway_labels(gateway)
        .iter()
        .map(|(label, value)| format!("{label}={value}"))
        .collect::<Vec<_>>()
        .join(",");
    let ready = s.gateway_pods.iter().filter(|p| pod_ready(p)).count();
    let mut checks = vec![if ready == 0 {
        Check::fail(
            CheckId::GatewayPods,
            format!(
                "no ready pod in {} has the Gateway's labels {selector}",
                names.istio_namespace
            ),
            format!(
                "run {} with your ingress gateway pods' label",
                names.command("expose", " --host ADDRESS --gateway-selector LABEL=VALUE")
            ),
        )
    } else {
        Check::pass(
            CheckId::GatewayPods,
            format!(
                "{} in {} labelled {selector}",
                count(ready as i64, "ready pod", "ready pods"),
                names.istio_namespace
            ),
        )
    }];
    let tls = gateway
        .spec
        .https_server()
        .and_then(|server| server.tls.as_ref());
    let served = match tls {
        Some(ServerTls {
            credential_name: Some(name),
            ..
        }) => credential_source(s, names, name, &["tls.crt", "cert"]),
        Some(ServerTls {
            server_certificate: Some(path),
            ..
        }) => file_source(s, names, path),
        _ => Err("the Gateway's HTTPS server names no certificate".to_owned()),
    };
    let served = served.and_then(|source| {
        certificate::parse(source.data)
            .map(|cert| (source.describe.clone(), cert))
            .map_err(|problem| format!("{} {problem}", source.describe))
    });
    checks.push(match &served {
        Ok((describe, _)) => Check::pass(
            CheckId::GatewayCertificate,
            format!("served from {describe}"),
        ),
        Err(problem) => Check::fail(
            CheckId::GatewayCertificate,
            problem.clone(),
            format!(
                "{expose} again: it delivers the certificate the way the selected gateway pods \
                 can load it"
            ),
        ),
    });
    if let Ok((_, cert)) = &served {
        checks.push(certificate_hosts(s, cert, names));
    }
    checks.push(upstream_trust(s, names, expose));
    checks
}

/// The served certificate covers every host the Certificate lists and is
/// not about to expire.
fn certificate_hosts(s: &Snapshot, cert: &Certificate, names: &Names) -> Check {
    let hosts: Vec<String> = s
        .certificate
        .iter()
        .flat_map(|c| c.spec.hosts())
        .cloned()
        .collect();
    let uncovered: Vec<&String> = hosts
        .iter()
        .filter(|h| !host::parse_host(h).is_ok_and(|host: Host| cert.covers(&host)))
        .collect();
    let renew = format!(
        "check `kubectl describe certificate {} -n {}`: cert-manager renews it when its spec changes",
        owned::CERTIFICATE,
        names.istio_namespace
    );
    if !uncovered.is_empty() {
        let list: Vec<&str> = uncovered.iter().map(|h| h.as_str()).collect();
        return Check::fail(
            CheckId::CertificateHosts,
            format!("the served certificate does not cover {}", list.join(", ")),
            renew,
        );
    }
    let left = cert.not_after - s.now;
    if left <= 0 {
        return Check::fail(
            CheckId::CertificateHosts,
            format!("the served certificate expired on {}", date(cert.not_after)),
            renew,
        );
    }
    let covered = if hosts.is_empty() {
        "covers the gateway".to_owned()
    } else {
        format!("covers {}", hosts.join(", "))
    };
    if left < EXPIRY_WARNING_SECONDS {
        Check::warn(
            CheckId::CertificateHosts,
            format!("{covered}; expires on {}", date(cert.not_after)),
            renew,
        )
    } else {
        Check::pass(
            CheckId::CertificateHosts,
            format!("{covered}; valid until {}", date(cert.not_after)),
        )
    }
}

/// The DestinationRule has the gateway trust the CA that signed the
/// certificate kms-api serves, and check a name that certificate has.
fn upstream_trust(s: &Snapshot, names: &Names, expose: &str) -> Check {
    let expose = format!(
        "{expose}: it reads the CA from the TLS secret kms-api mounts (or --upstream-ca-secret)"
    );
    let checked = upstream_tls(s, names, &expose).and_then(|tls| {
        let (describe, cas) = trusted_cas(s, names, &tls, &expose)?;
        let kms_cert = kms_certificate(s, names, &describe)?;
        Ok(upstream_names(&tls, &kms_cert, &describe, &cas, &expose))
    });
    match checked {
        Ok(check) | Err(check) => check,
    }
}

/// The DestinationRule's TLS settings, when they make the gateway verify
/// KMS; the failing check when they do not.
fn upstream_tls(s: &Snapshot, names: &Names, expose: &str) -> Result<ClientTls, Check> {
    let name = CheckId::UpstreamTrust;
    let Some(rule) = &s.destination_rule else {
        return Err(Check::fail(
            name,
            format!(
                "no DestinationRule {}/{}: the gateway would send plain text to KMS's TLS port",
                names.kms_namespace,
                owned::DESTINATION_RULE
            ),
            expose,
        ));
    };
    let tls = rule.spec.tls().cloned().unwrap_or_default();
    if tls.mode.as_deref() != Some("SIMPLE") {
        return Err(Check::fail(
            name,
            format!("TLS mode is {}, not SIMPLE", shown(tls.mode.as_deref())),
            expose,
        ));
    }
    if tls.insecure_skip_verify == Some(true) {
        return Err(Check::warn(
            name,
            "the gateway does not verify KMS's certificate",
            expose,
        ));
    }
    Ok(tls)
}

/// The CAs the gateway verifies KMS against, and where it loads them from.
fn trusted_cas(
    s: &Snapshot,
    names: &Names,
    tls: &ClientTls,
    expose: &str,
) -> Result<(String, Vec<Certificate>), Check> {
    let name = CheckId::UpstreamTrust;
    let ca = if let Some(credential) = &tls.credential_name {
        let cacert = format!("{credential}-cacert");
        credential_source(s, names, &cacert, &["cacert", "ca.crt"])
            .or_else(|_| credential_source(s, names, credential, &["cacert", "ca.crt"]))
    } else if let Some(path) = &tls.ca_certificates {
        file_source(s, names, path)
    } else {
        return Err(Check::fail(
            name,
            "the gateway verifies KMS's certificate against the system's public roots, which \
             did not sign it: every request would fail its TLS handshake",
            expose,
        ));
    };
    ca.and_then(|source| {
        certificate::parse_all(source.data)
            .map(|cas| (source.describe.clone(), cas))
            .map_err(|problem| format!("the CA {} {problem}", source.describe))
    })
    .map_err(|problem| Check::fail(name, problem, expose))
}

/// The certificate kms-api serves, from the TLS secret its pods mount.
fn kms_certificate(s: &Snapshot, names: &Names, describe: &str) -> Result<Certificate, Check> {
    let name = CheckId::UpstreamTrust;
    let Some((secret, served)) = &s.kms_tls_secret else {
        return Err(Check::warn(
            name,
            format!(
                "trusts the CA in {describe}; kms-api's pods mount no TLS secret to check it against"
            ),
            "check that the CA signed the certificate KMS serves",
        ));
    };
    secret_data(served, "tls.crt")
        .ok_or_else(|| "holds no tls.crt".to_owned())
        .and_then(certificate::parse)
        .map_err(|problem| {
            Check::fail(
                name,
                format!(
                    "kms-api's TLS secret {}/{secret} {problem}",
                    names.kms_namespace
                ),
                "check the certificate KMS serves",
            )
        })
}

/// Whether the trusted CAs signed kms-api's certificate and the gateway
/// checks a name the certificate has.
fn upstream_names(
    tls: &ClientTls,
    kms_cert: &Certificate,
    describe: &str,
    cas: &[Certificate],
    expose: &str,
) -> Check {
    let name = CheckId::UpstreamTrust;
    if !kms_cert.signed_by_any(cas) {
        return Check::fail(
            name,
            format!(
                "the gateway trusts {describe}, which did not sign kms-api's certificate (issued by {})",
                kms_cert.issuer
            ),
            expose,
        );
    }
    let mut checked = tls.subject_alt_names.clone();
    if checked.is_empty() {
        checked.extend(tls.sni.clone());
    }
    if checked.is_empty() {
        return Check::fail(
            name,
            "the gateway would expect the client's Host in KMS's certificate, which names only \
             the Service",
            expose,
        );
    }
    match checked.iter().find(|n| kms_cert.covers_name(n)) {
        Some(found) => Check::pass(
            name,
            format!(
                "trusts {describe}, which signed kms-api's certificate; checks the name {found}"
            ),
        ),
        None => Check::fail(
            name,
            format!(
                "kms-api's certificate names {}, none of {}",
                kms_cert.dns_names.join(", "),
                checked.join(", ")
            ),
            expose,
        ),
    }
}

/// A field's value for a message; "unset" when the object lacks it.
fn shown(value: Option<impl std::fmt::Display>) -> String {
    value.map_or("unset".to_owned(), |value| value.to_string())
}

fn identity(s: &Snapshot, names: &Names) -> Vec<Check> {
    let Some(policy) = &s.policy else {
        return vec![Check::fail(
            CheckId::IdentityMappingPolicy,
            format!("{}/{} does not exist", names.istio_namespace, names.policy),
            format!(
                "run {}",
                names.command("map-identity", " --source-crn CRN --target-crn CRN")
            ),
        )];
    };
    let spec = &policy.spec;
    let mut checks = vec![Check::pass(
        CheckId::IdentityMappingPolicy,
        format!("{}/{} present", names.istio_namespace, names.policy),
    )];
    let source = &spec.identity_mapping.source_identity;
    let mut problems: Vec<String> = Vec::new();
    if let Err(err) = crn::parse(source) {
        problems.push(format!("source: {}", err.problem));
    }
    for target in &spec.target_resources {
        if let Err(err) = crn::parse_kms_target(target) {
            problems.push(format!("target: {}", err.problem));
        }
    }
    checks.push(if problems.is_empty() {
        Check::pass(CheckId::Crns, "source and targets are valid")
    } else {
        Check::fail(
            CheckId::Crns,
            problems.join("; "),
            format!(
                "run {} with corrected CRNs",
                names.command("map-identity", " --source-crn CRN --target-crn CRN")
            ),
        )
    });
    let reference = &spec.identity_mapping.target_credentials.api_key_ref;
    let secret = reference.secret_name.as_str();
    checks.push(if secret == names.secret && s.apikey_secret.is_some() {
        Check::pass(CheckId::ApiKeyReference, format!("secret {secret} exists"))
    } else if secret == names.secret {
        Check::fail(
            CheckId::ApiKeyReference,
            format!("secret {secret} does not exist"),
            format!("run {}", names.command("set-apikey", "")),
        )
    } else {
        Check::warn(
            CheckId::ApiKeyReference,
            format!("refers to secret {secret}, not {}", names.secret),
            format!(
                "check --secret, or run {} again",
                names.command("map-identity", " --source-crn CRN --target-crn CRN")
            ),
        )
    });
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Outcome;
    use serde_json::{Value, json};

    fn names() -> Names {
        Names::runbook("")
    }

    fn object<T: serde::de::DeserializeOwned>(value: Value) -> T {
        serde_json::from_value(value).unwrap()
    }

    fn find<'a>(report: &'a Report, name: &str) -> &'a Check {
        report
            .categories
            .iter()
            .flat_map(|c| &c.checks)
            .find(|c| c.id.name() == name)
            .unwrap()
    }

    fn vs(port: i64, gateway: &str) -> VirtualService {
        object(json!({
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "kmsvservice"},
            "spec": {"gateways": [gateway], "http": [{"route": [{"destination": {"host": "kms-api", "port": {"number": port}}}]}]}
        }))
    }

    #[test]
    fn an_empty_cluster_fails_every_step_with_hints() {
        let report = report(&Snapshot::default(), &names());
        assert!(!report.success);
        for name in [
            "kms-api Service",
            "API key secret",
            "KMS deployment",
            "Certificate",
            "IdentityMappingPolicy",
        ] {
            let check = find(&report, name);
            assert_eq!(check.result, Outcome::Fail, "{name}");
            assert!(check.hint.is_some(), "{name}");
        }
    }

    #[test]
    fn virtual_service_port_must_match_the_service() {
        let snapshot = Snapshot {
            kms_service: Some(object(json!({"spec": {"ports": [{"port": 28674}]}}))),
            virtual_service: Some(vs(8443, "kmsgateway")),
            ..Snapshot::default()
        };
        let check = find(&report(&snapshot, &names()), "VirtualService").clone();
        assert_eq!(check.result, Outcome::Fail);
        assert!(
            check
                .message
                .contains("routes to port 8443, but kms-api serves 28674"),
            "{}",
            check.message
        );

        let snapshot = Snapshot {
            virtual_service: Some(vs(28674, "kmsgateway")),
            ..snapshot
        };
        assert_eq!(
            find(&report(&snapshot, &names()), "VirtualService").result,
            Outcome::Pass
        );
        let routeless = Snapshot {
            virtual_service: Some(object(json!({
                "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                "metadata": {"name": "kmsvservice"},
                "spec": {"gateways": ["kmsgateway"], "hosts": ["*"]}
            }))),
            ..snapshot.clone()
        };
        let check = find(&report(&routeless, &names()), "VirtualService").clone();
        assert_eq!(check.result, Outcome::Fail, "{}", check.message);
        assert!(check.message.contains("has no HTTP route to kms-api"));
        let unbound = Snapshot {
            virtual_service: Some(vs(28674, "other")),
            ..snapshot
        };
        assert!(
            find(&report(&unbound, &names()), "VirtualService")
                .message
                .contains("not bound")
        );
    }

    #[test]
    fn pods_started_before_the_key_changed_need_a_restart() {
        let secret: Secret = object(json!({
            "metadata": {"managedFields": [{"manager": "kubectl-kms-sts", "operation": "Update", "time": "2026-01-02T00:00:00Z"}]},
            "data": {"apikey": "a2V5"}
        }));
        let pod = |start: &str| -> Pod {
            object(json!({
                "metadata": {"name": "tokenadapter-1"},
                "status": {"startTime": start, "conditions": [{"type": "Ready", "status": "True"}]}
            }))
        };
        let deployment: Deployment = object(json!({"spec": {"selector": {}, "template": {}}}));
        let mut snapshot = Snapshot {
            apikey_secret: Some(KeySecret::of(&secret, "apikey")),
            token_adapter: Some(deployment),
            token_adapter_pods: vec![pod("2026-01-01T00:00:00Z")],
            ..Snapshot::default()
        };
        let check = find(&report(&snapshot, &names()), "token adapter").clone();
        assert_eq!(check.result, Outcome::Warn);
        assert!(check.message.starts_with("restart needed"));
        snapshot.token_adapter_pods = vec![pod("2026-01-03T00:00:00Z")];
        assert_eq!(
            find(&report(&snapshot, &names()), "token adapter").result,
            Outcome::Pass
        );
    }

    #[test]
    fn invalid_crns_in_a_policy_fail() {
        let snapshot = Snapshot {
            policy: Some(object(json!({
                "apiVersion": "policy.ibm.com/v1alpha1", "kind": "IdentityMappingPolicy",
                "metadata": {"name": "stspolicy"},
                "spec": {"identityMapping": {"sourceIdentity": "crn:v1:staging:public:sts:us-south:a/1234c123456789::",
                                             "targetCredentials": {"apiKeyRef": {"secretName": "sts-apikey", "propertyName": "apikey"}}},
                         "targetResources": ["crn:v1:icp:private:kms:c:n/kube-system:x::"]}
            }))),
            ..Snapshot::default()
        };
        let check = find(&report(&snapshot, &names()), "CRNs").clone();
        assert_eq!(check.result, Outcome::Fail);
        assert!(
            check.message.contains("source: a CRN has 10"),
            "{}",
            check.message
        );
    }

    fn ready_gateway_pod(volumes: Value) -> Pod {
        object(json!({
            "metadata": {"name": "gw-1", "labels": {"istio": "ingressgateway"}},
            "spec": {"containers": [{"name": "istio-proxy", "volumeMounts": [
                {"name": "certs", "mountPath": "/etc/istio/ingressgateway-certs"},
                {"name": "ca", "mountPath": "/etc/istio/ingressgateway-ca-certs"}]}],
                     "volumes": volumes},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        }))
    }

    /// A set-up exposure as `expose` writes it for a gateway that mounts the
    /// secrets, with kms-api serving the test leaf certificate.
    fn exposed() -> Snapshot {
        use crate::values::certificate::fixtures::{CA as ca, LEAF as leaf, secret as tls_secret};
        let gateway: Gateway = object(json!({
            "apiVersion": "networking.istio.io/v1", "kind": "Gateway",
            "metadata": {"name": "kmsgateway"},
            "spec": {"selector": {"istio": "ingressgateway"}, "servers": [{
                "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                "tls": {"mode": "SIMPLE",
                        "serverCertificate": "/etc/istio/ingressgateway-certs/tls.crt",
                        "privateKey": "/etc/istio/ingressgateway-certs/tls.key"},
                "hosts": ["*"]}]}
        }));
        let rule: DestinationRule = object(json!({
            "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": "kms-api-tls"},
            "spec": {"host": "kms-api", "trafficPolicy": {"tls": {
                "mode": "SIMPLE", "sni": "kms-api.kube-system.svc.cluster.local",
                "subjectAltNames": ["kms-api.kube-system.svc.cluster.local"],
                "caCertificates": "/etc/istio/ingressgateway-ca-certs/ca.crt"}}}
        }));
        let certificate: CertificateObject = object(json!({
            "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": "istio-ingressgateway-certs"},
            "spec": {"dnsNames": ["kms.example.com"], "ipAddresses": ["10.0.0.7"]}
        }));
        Snapshot {
            gateway: Some(gateway),
            destination_rule: Some(rule),
            certificate: Some(certificate),
            gateway_pods: vec![ready_gateway_pod(json!([
                {"name": "certs", "secret": {"secretName": "istio-ingressgateway-certs"}},
                {"name": "ca", "secret": {"secretName": "istio-ingressgateway-ca-certs"}}]))],
            gateway_secrets: BTreeMap::from([
                (
                    "istio-ingressgateway-certs".to_owned(),
                    tls_secret(&[("tls.crt", leaf), ("tls.key", "k"), ("ca.crt", ca)]),
                ),
                (
                    "istio-ingressgateway-ca-certs".to_owned(),
                    tls_secret(&[("ca.crt", ca)]),
                ),
            ]),
            kms_tls_secret: Some((
                "kms-api-tls".to_owned(),
                tls_secret(&[("tls.crt", leaf), ("ca.crt", ca)]),
            )),
            now: 1_800_000_000,
            ..Snapshot::default()
        }
    }

    #[test]
    fn a_working_data_path_passes_every_check() {
        let report = report(&exposed(), &names());
        for name in [
            "gateway pods",
            "gateway certificate",
            "certificate hosts",
            "upstream trust",
        ] {
            let check = find(&report, name);
            assert_eq!(check.result, Outcome::Pass, "{name}: {}", check.message);
        }
        assert!(
            find(&report, "upstream trust")
                .message
                .contains("checks the name kms-api.kube-system.svc.cluster.local")
        );
    }

    #[test]
    fn the_runbooks_bare_simple_rule_fails_upstream_trust() {
        let mut snapshot = exposed();
        snapshot.destination_rule = Some(object(json!({
            "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": "kms-api-tls"},
            "spec": {"host": "kms-api", "trafficPolicy": {"tls": {"mode": "SIMPLE"}}}
        })));
        let check = find(&report(&snapshot, &names()), "upstream trust").clone();
        assert_eq!(check.result, Outcome::Fail);
        assert!(
            check.message.contains("system's public roots"),
            "{}",
            check.message
        );
        assert!(check.hint.unwrap().contains("kubectl kms-sts expose"));
    }

    #[test]
    fn a_certificate_near_its_end_or_missing_a_host_is_reported() {
        let mut snapshot = exposed();
        let not_after = certificate::parse(certificate::fixtures::LEAF.as_bytes())
            .unwrap()
            .not_after;
        snapshot.now = not_after - 10 * 24 * 3600;
        let check = find(&report(&snapshot, &names()), "certificate hosts").clone();
        assert_eq!(check.result, Outcome::Warn, "{}", check.message);
        snapshot.now = not_after + 1;
        let check = find(&report(&snapshot, &names()), "certificate hosts").clone();
        assert_eq!(check.result, Outcome::Fail, "{}", check.message);
        assert!(check.message.contains("expired"));

        let mut snapshot = exposed();
        if let Some(cert) = snapshot.certificate.as_mut() {
            cert.spec.dns_names = vec!["kms.example.com".into(), "other.example.org".into()];
        }
        let check = find(&report(&snapshot, &names()), "certificate hosts").clone();
        assert_eq!(check.result, Outcome::Fail);
        assert!(
            check.message.contains("does not cover other.example.org"),
            "{}",
            check.message
        );
    }

    #[test]
    fn a_gateway_that_cannot_load_its_certificate_fails() {
        let mut snapshot = exposed();
        snapshot.gateway_pods = vec![ready_gateway_pod(json!([]))];
        let check = find(&report(&snapshot, &names()), "gateway certificate").clone();
        assert_eq!(check.result, Outcome::Fail);
        assert!(
            check
                .message
                .contains("mount no secret at /etc/istio/ingressgateway-certs")
        );
        snapshot.gateway_pods.clear();
        assert_eq!(
            find(&report(&snapshot, &names()), "gateway pods").result,
            Outcome::Fail
        );
    }
}
