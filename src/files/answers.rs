//! The wizard's answers: everything it asks, as a YAML file that replays a
//! run without a terminal. The API key is never part of it. Unknown fields and
//! invalid values are refused with the field named, before anything is sent.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::files::private_files::{self, Existing};
use crate::values::crn;
use crate::values::defaults;
use crate::values::exposure as values_exposure;
use crate::values::host;
use crate::values::revision;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Answers {
    /// The kubeconfig context to use; the current one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    #[serde(default = "default_kms_namespace")]
    pub kms_namespace: String,
    #[serde(default = "default_istio_namespace")]
    pub istio_namespace: String,
    /// Addresses of the ingress gateway (IP addresses or DNS names).
    pub hosts: Vec<String>,
    #[serde(default = "default_issuer")]
    pub issuer: String,
    #[serde(default = "default_issuer_kind")]
    pub issuer_kind: String,
    #[serde(default = "default_common_name")]
    pub common_name: String,
    pub source_crn: String,
    pub target_crns: Vec<String>,
    /// The label of the ingress gateway pods, `LABEL=VALUE`.
    #[serde(default = "default_gateway_selector")]
    pub gateway_selector: String,
    /// The API that exposes KMS, as `expose --api` takes it (`istio` or
    /// `gateway-api`); when absent, the one exposing it already, else
    /// Istio's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    /// A Secret in the KMS namespace whose `ca.crt` signed kms-api's
    /// certificate; read from kms-api's own TLS secret when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_ca_secret: Option<String>,
    /// The KMS Deployment, in the KMS namespace.
    #[serde(default = "default_deployment")]
    pub deployment: String,
    /// The token adapter's Deployment, in the Istio namespace.
    #[serde(default = "default_token_adapter")]
    pub token_adapter: String,
    /// The Secret holding the API key, in the Istio namespace.
    #[serde(default = "default_secret")]
    pub secret: String,
    /// The data key of that Secret.
    #[serde(default = "default_secret_key")]
    pub secret_key: String,
    /// The IdentityMappingPolicy, in the Istio namespace.
    #[serde(default = "default_policy")]
    pub policy: String,
    /// The Istio revision to inject with, as `inject --revision` takes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

fn default_deployment() -> String {
    defaults::DEPLOYMENT.into()
}
fn default_token_adapter() -> String {
    defaults::TOKEN_ADAPTER.into()
}
fn default_secret() -> String {
    defaults::SECRET.into()
}
fn default_secret_key() -> String {
    defaults::SECRET_KEY.into()
}
fn default_policy() -> String {
    defaults::POLICY.into()
}

fn default_kms_namespace() -> String {
    defaults::KMS_NAMESPACE.into()
}
fn default_istio_namespace() -> String {
    defaults::ISTIO_NAMESPACE.into()
}
fn default_issuer() -> String {
    defaults::ISSUER.into()
}
fn default_issuer_kind() -> String {
    defaults::ISSUER_KIND.into()
}
/// The runbook's gateway label, as an answer.
fn default_gateway_selector() -> String {
    defaults::GATEWAY_SELECTOR.into()
}
fn default_common_name() -> String {
    defaults::COMMON_NAME.into()
}

/// What `api` may say, as `expose --api` takes it.
pub const API_WORDS: [&str; 2] = ["istio", "gateway-api"];

/// Whether `value` is a Kubernetes object name (a DNS subdomain).
fn is_object_name(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 253
        && value.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

impl Answers {
    /// Checks every value; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let invalid = |field: &str, reason: String| Error::InvalidAnswers {
            field: field.to_owned(),
            reason,
        };
        if self.hosts.is_empty() {
            return Err(invalid(
                "hosts",
                "give at least one IP address or DNS name".into(),
            ));
        }
        for (index, host) in self.hosts.iter().enumerate() {
            host::parse_host(host).map_err(|reason| invalid(&format!("hosts[{index}]"), reason))?;
        }
        if !["ClusterIssuer", "Issuer"].contains(&self.issuer_kind.as_str()) {
            return Err(invalid(
                "issuerKind",
                "must be ClusterIssuer or Issuer".into(),
            ));
        }
        values_exposure::check_common_name(&self.common_name)
            .map_err(|reason| invalid("commonName", reason))?;
        values_exposure::parse_selector(&self.gateway_selector)
            .map_err(|reason| invalid("gatewaySelector", reason))?;
        if let Some(api) = &self.api
            && !API_WORDS.contains(&api.as_str())
        {
            return Err(invalid(
                "api",
                format!("\"{api}\" is not istio or gateway-api"),
            ));
        }
        crn::parse(&self.source_crn).map_err(|err| invalid("sourceCrn", err.to_string()))?;
        if self.target_crns.is_empty() {
            return Err(invalid("targetCrns", "give at least one KMS CRN".into()));
        }
        for (index, target) in self.target_crns.iter().enumerate() {
            crn::parse_kms_target(target)
                .map_err(|err| invalid(&format!("targetCrns[{index}]"), err.to_string()))?;
        }
        if let Some(name) = &self.revision {
            revision::parse(name).map_err(|reason| invalid("revision", reason))?;
        }
        for (field, value) in [
            ("deployment", &self.deployment),
            ("tokenAdapter", &self.token_adapter),
            ("secret", &self.secret),
            ("policy", &self.policy),
        ] {
            if !is_object_name(value) {
                return Err(invalid(field, format!("\"{value}\" is not an object name")));
            }
        }
        if self.secret_key.is_empty()
            || !self
                .secret_key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
        {
            return Err(invalid(
                "secretKey",
                format!("\"{}\" is not a Secret data key", self.secret_key),
            ));
        }
        for (field, value) in [
            ("kmsNamespace", &self.kms_namespace),
            ("istioNamespace", &self.istio_namespace),
        ] {
            if value.is_empty()
                || value.len() > 63
                || !value
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                return Err(invalid(
                    field,
                    format!("\"{value}\" is not a namespace name"),
                ));
            }
        }
        Ok(())
    }

    /// Parses and validates answers from YAML text.
    pub fn from_yaml(text: &str) -> Result<Answers> {
        let answers: Answers =
            serde_saphyr::from_str(text).map_err(|err| Error::InvalidAnswers {
                field: "(file)".into(),
                reason: first_line(&err.to_string()),
            })?;
        answers.validate()?;
        Ok(answers)
    }

    pub fn load(path: &Path) -> Result<Answers> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::LocalFile {
            action: "read",
            path: path.to_owned(),
            source,
        })?;
        Answers::from_yaml(&text).map_err(|err| match err {
            Error::InvalidAnswers { field, reason } => Error::InvalidAnswers {
                field: format!("{field} in {}", path.display()),
                reason,
            },
            other => other,
        })
    }

    /// The answers as YAML, as `from_yaml` reads them.
    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).expect("answers serialise")
    }

    /// Writes the answers as YAML, readable by the owner only.
    pub fn save(&self, path: &Path) -> Result<()> {
        private_files::write(path, self.to_yaml().as_bytes(), Existing::Replace)
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "hosts: [10.0.0.1, kms.example.com]\n\
        sourceCrn: 'crn:v1:staging:public:sts:us-south:a/1234:123456789::'\n\
        targetCrns: ['crn:v1:icp:private:kms:mycluster:n/kube-system:0d70::']\n";

    #[test]
    fn minimal_answers_get_defaults() {
        let answers = Answers::from_yaml(GOOD).unwrap();
        assert_eq!(answers.kms_namespace, "kube-system");
        assert_eq!(answers.issuer, "icp-ca-issuer");
        assert_eq!(answers.hosts.len(), 2);
        assert_eq!(answers.gateway_selector, "istio=ingressgateway");
        assert_eq!(answers.upstream_ca_secret, None);
        assert_eq!(
            [&answers.deployment, &answers.token_adapter, &answers.policy],
            ["key-management-api", "tokenadapter", "stspolicy"]
        );
        assert_eq!(
            (&*answers.secret, &*answers.secret_key),
            ("sts-apikey", "apikey")
        );
        let again = Answers::from_yaml(&answers.to_yaml()).unwrap();
        assert_eq!(again, answers);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (format!("{GOOD}apikey: secret\n"), "unknown field"),
            (format!("{GOOD}issuerKind: Boss\n"), "issuerKind"),
            (GOOD.replace("10.0.0.1", "10.0.0"), "hosts[0]"),
            (GOOD.replace("a/1234:", "a/1234c"), "sourceCrn"),
            (GOOD.replace(":kms:", ":sts:"), "targetCrns[0]"),
            (
                GOOD.replace("hosts: [10.0.0.1, kms.example.com]", "hosts: 5"),
                "(file)",
            ),
            (format!("{GOOD}kmsNamespace: Kube_System\n"), "kmsNamespace"),
            (format!("{GOOD}deployment: Key_Management\n"), "deployment"),
            (format!("{GOOD}tokenAdapter: -adapter\n"), "tokenAdapter"),
            (format!("{GOOD}policy: ''\n"), "policy"),
            (format!("{GOOD}secretKey: 'api key'\n"), "secretKey"),
            (format!("{GOOD}gatewaySelector: istio\n"), "gatewaySelector"),
            (
                "hosts: []\nsourceCrn: x\ntargetCrns: []\n".to_owned(),
                "hosts",
            ),
        ];
        for (text, field) in cases {
            let err = Answers::from_yaml(&text).unwrap_err().to_string();
            assert!(err.contains(field), "{text}: {err}");
        }
    }

    #[test]
    fn never_panics_on_mangled_files() {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let bytes: Vec<char> = GOOD.chars().collect();
        for _ in 0..5_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut text = bytes.clone();
            for step in 0..4 {
                let at = ((state >> (step * 12)) as usize) % text.len();
                text[at] =
                    [':', '-', '[', '\'', ' ', '\n', '{', 'x'][(state >> (step * 3)) as usize % 8];
            }
            let text: String = text.into_iter().collect();
            let _ = Answers::from_yaml(&text);
        }
    }
}
