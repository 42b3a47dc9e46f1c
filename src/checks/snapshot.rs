//! What `status` reads and its checks look at: the `Snapshot` of the
//! cluster (only what the checks need, nothing secret, so it can be saved
//! and sent), the `Names` it was read for, and the readings of it that
//! several categories share.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::checks::proxy_reading::GatewayProxies;
use crate::objects::apis::ServedApis;
use crate::objects::gateway_api::{ApiGateway, BackendTlsPolicy, HttpRoute};
use crate::objects::schemas::{
    Certificate as CertificateObject, DestinationRule, Gateway, IdentityMappingPolicy,
    VirtualService,
};
use crate::terminal::wording::shell_word;
use crate::values::apikey;
use crate::values::defaults;
use crate::values::host::{Host, parse_host};
use crate::values::probe::Probe;
use crate::values::revision::ChosenBy;

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
    /// `--revision`: the Istio revision the sidecar is compared with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// The run's cluster flags that differ from the defaults, as
    /// `ClusterArgs::flags_for_hints` gives them, for hints to carry.
    pub cluster_flags: String,
    /// The part of `cluster_flags` kubectl takes too, for hints that run
    /// kubectl.
    #[serde(default)]
    pub kubectl_flags: String,
    /// `--probe`: send a request to each exposed host, to this address
    /// when one is given (`--probe-address`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeFrom>,
}

/// Where `status --probe` sends its requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeFrom {
    /// The gateway's address; `None`: each host's own.
    pub address: Option<std::net::IpAddr>,
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
            revision: None,
            cluster_flags: cluster_flags.into(),
            kubectl_flags: cluster_flags.into(),
            probe: None,
        }
    }

    /// A subcommand line to paste, in backquotes: `sub` with `args`, the
    /// names it takes that differ from the runbook's, and the run's
    /// cluster flags, so that it acts on what this report checked.
    pub fn command(&self, sub: &str, args: &str) -> String {
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
            "inject" => {
                add("deployment", &self.deployment, defaults::DEPLOYMENT);
                if let Some(revision) = &self.revision {
                    add("revision", revision, "");
                }
            }
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

/// The hosts the Certificate was issued for (the ones `expose` was given),
/// as hosts; any that is neither an address nor a name is left out.
pub fn certificate_hosts(s: &Snapshot) -> Vec<Host> {
    s.certificate
        .iter()
        .flat_map(|cert| cert.spec.hosts())
        .filter_map(|host| parse_host(host).ok())
        .collect()
}

/// The labels a Gateway selects its pods by.
pub fn gateway_labels(gateway: &Gateway) -> BTreeMap<String, String> {
    gateway.spec.selector.clone()
}

/// `expose` as the Certificate and Gateway in the cluster were written: their
/// hosts, issuer and gateway label, placeholders only for what is unknown.
pub fn expose_command(s: &Snapshot, names: &Names) -> String {
    let spec = s.certificate.as_ref().map(|c| &c.spec);
    let hosts: Vec<&String> = spec
        .into_iter()
        .flat_map(|spec| spec.ip_addresses.iter().chain(&spec.dns_names))
        .collect();
    expose_command_for(s, names, &hosts)
}

/// `expose_command` for `hosts` instead of the Certificate's.
pub fn expose_command_for(s: &Snapshot, names: &Names, hosts: &[&String]) -> String {
    let spec = s.certificate.as_ref().map(|c| &c.spec);
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
    if s.through_gateway_api() {
        args += " --api gateway-api";
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
    /// The Gateway API's objects, where `expose --api gateway-api` wrote them.
    #[serde(default)]
    pub gateway_api: GatewayApiObjects,
    /// The pods in the Istio namespace that the Gateway's selector matches.
    pub gateway_pods: Vec<Pod>,
    /// The other Gateways, in any namespace, that istiod merges with KMS's
    /// onto those pods.
    #[serde(default)]
    pub neighbour_gateways: Vec<Gateway>,
    /// What the ready gateway pods' proxies hold for KMS, by their own
    /// account.
    #[serde(default)]
    pub gateway_proxies: GatewayProxies,
    /// What `--probe` met at each exposed host; `None` without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probes: Option<Vec<Probe>>,
    /// The secrets of the Istio namespace the gateway's certificate and CA
    /// may come from, by name: those its pods mount and those named by
    /// `credentialName`.
    pub gateway_secrets: BTreeMap<String, Secret>,
    /// The TLS secret kms-api's pods mount: the certificate KMS serves.
    pub kms_tls_secret: Option<(String, Secret)>,
    /// What the Istio control plane would inject into KMS now, for the
    /// sidecar to be compared with.
    #[serde(default)]
    pub injector: Option<Injector>,
    /// When the snapshot was taken, in seconds since the Unix epoch.
    pub now: i64,
}

impl Snapshot {
    /// Whether KMS is exposed through the Gateway API: its objects are
    /// there and Istio's Gateway is not.
    pub fn through_gateway_api(&self) -> bool {
        self.gateway.is_none() && self.gateway_api.any()
    }
}

/// What `expose --api gateway-api` writes, as read; each `None` where it
/// is not there (or the cluster does not serve the Gateway API).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayApiObjects {
    pub gateway: Option<ApiGateway>,
    pub route: Option<HttpRoute>,
    pub policy: Option<BackendTlsPolicy>,
    /// The ConfigMap holding the CA the policy names (a public certificate).
    pub ca: Option<ConfigMap>,
}

impl GatewayApiObjects {
    fn any(&self) -> bool {
        self.gateway.is_some() || self.route.is_some() || self.policy.is_some()
    }
}

/// The control plane KMS's sidecar is compared with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Injector {
    /// The revision chosen, and what its injector injects now.
    #[serde(rename_all = "camelCase")]
    Now {
        revision: String,
        chosen_by: ChosenBy,
        /// `sha256:` of its injector inputs, as `inject` records it.
        fingerprint: String,
        /// The proxy image it injects; `None` when its values do not say.
        proxy_image: Option<String>,
    },
    /// No revision could be chosen, or the one named is not installed.
    Unavailable { problem: String, hint: String },
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

/// When the secret's data last changed, as far as its managed fields tell.
pub fn last_changed(secret: &Secret) -> Option<Timestamp> {
    secret
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|entry| entry.time.as_ref().map(|t| t.0))
        .max()
        .or_else(|| secret.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

pub fn pod_ready(pod: &Pod) -> bool {
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
