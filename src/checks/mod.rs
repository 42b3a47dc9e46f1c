//! The result of `status`: checks grouped by runbook step, each pass, warn or
//! fail with a hint saying what to run, printed like `linkerd check` or as a
//! stable JSON/YAML document. `evaluate` decides every check from a `snapshot`
//! of the cluster, a module per category; it never talks to the cluster
//! itself. `redact` decides what a snapshot may keep, `proxy_reading` what
//! it keeps of a gateway proxy's own configuration, `fleet` makes one report
//! of several contexts, and `saved` is the snapshot file `status --save`
//! writes and `--from` reads.

pub mod evaluate;
pub mod fleet;
pub mod proxy_reading;
pub mod redact;
pub mod saved;
pub mod snapshot;

use serde::Serialize;

use crate::terminal::wording::count;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Warn,
    Fail,
}

/// Every check `status` makes, by what it checks; `name` is how reports
/// and the JSON output call it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckId {
    ApiServer,
    Permissions,
    ReadAccess,
    CertManagerApi,
    IstioNetworkingApi,
    IdentityPolicyApi,
    KmsApiService,
    ApiKeySecret,
    TokenAdapter,
    KmsDeployment,
    Sidecar,
    ProxyVersion,
    Certificate,
    TlsSecret,
    Gateway,
    VirtualService,
    DestinationRule,
    HttpRoute,
    BackendTlsPolicy,
    GatewayPods,
    SharedGateway,
    GatewayCertificate,
    GatewayConfig,
    Probe,
    CertificateHosts,
    UpstreamTrust,
    IdentityMappingPolicy,
    Crns,
    ApiKeyReference,
}

impl CheckId {
    pub fn name(self) -> &'static str {
        match self {
            CheckId::ApiServer => "API server",
            CheckId::Permissions => "permissions",
            CheckId::ReadAccess => "read access",
            CheckId::CertManagerApi => "cert-manager API",
            CheckId::IstioNetworkingApi => "Istio networking API",
            CheckId::IdentityPolicyApi => "IdentityMappingPolicy API",
            CheckId::KmsApiService => "kms-api Service",
            CheckId::ApiKeySecret => "API key secret",
            CheckId::TokenAdapter => "token adapter",
            CheckId::KmsDeployment => "KMS deployment",
            CheckId::Sidecar => "sidecar",
            CheckId::ProxyVersion => "proxy version",
            CheckId::Certificate => "Certificate",
            CheckId::TlsSecret => "TLS secret",
            CheckId::Gateway => "Gateway",
            CheckId::VirtualService => "VirtualService",
            CheckId::DestinationRule => "DestinationRule",
            CheckId::HttpRoute => "HTTPRoute",
            CheckId::BackendTlsPolicy => "BackendTLSPolicy",
            CheckId::GatewayPods => "gateway pods",
            CheckId::SharedGateway => "shared gateway",
            CheckId::GatewayConfig => "gateway config",
            CheckId::Probe => "probe",
            CheckId::GatewayCertificate => "gateway certificate",
            CheckId::CertificateHosts => "certificate hosts",
            CheckId::UpstreamTrust => "upstream trust",
            CheckId::IdentityMappingPolicy => "IdentityMappingPolicy",
            CheckId::Crns => "CRNs",
            CheckId::ApiKeyReference => "API key reference",
        }
    }
}

impl Serialize for CheckId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    #[serde(rename = "name")]
    pub id: CheckId,
    pub result: Outcome,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// A warning that waiting does not change (a check skipped, a proxy
    /// that cannot be read): `status --wait` does not wait for it.
    #[serde(skip)]
    pub lasting: bool,
}

impl Check {
    pub fn pass(id: CheckId, message: impl Into<String>) -> Check {
        Check {
            id,
            result: Outcome::Pass,
            message: message.into(),
            hint: None,
            lasting: false,
        }
    }

    pub fn warn(id: CheckId, message: impl Into<String>, hint: impl Into<String>) -> Check {
        Check {
            id,
            result: Outcome::Warn,
            message: message.into(),
            hint: Some(hint.into()),
            lasting: false,
        }
    }

    /// A warning `status --wait` does not wait for.
    pub fn lasting_warn(id: CheckId, message: impl Into<String>, hint: impl Into<String>) -> Check {
        Check {
            lasting: true,
            ..Check::warn(id, message, hint)
        }
    }

    pub fn fail(id: CheckId, message: impl Into<String>, hint: impl Into<String>) -> Check {
        Check {
            id,
            result: Outcome::Fail,
            message: message.into(),
            hint: Some(hint.into()),
            lasting: false,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Category {
    pub name: &'static str,
    pub checks: Vec<Check>,
}

/// The whole report; its JSON form is the documented `status -o json` shape.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub success: bool,
    pub summary: Summary,
    pub categories: Vec<Category>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub passed: usize,
    pub warnings: usize,
    pub failed: usize,
}

impl Report {
    pub fn new(categories: Vec<Category>) -> Report {
        let mut summary = Summary::default();
        for check in categories.iter().flat_map(|c| &c.checks) {
            match check.result {
                Outcome::Pass => summary.passed += 1,
                Outcome::Warn => summary.warnings += 1,
                Outcome::Fail => summary.failed += 1,
            }
        }
        Report {
            success: summary.failed == 0,
            summary,
            categories,
        }
    }

    /// Every check passed, warnings included.
    pub fn all_pass(&self) -> bool {
        self.summary.warnings == 0 && self.summary.failed == 0
    }

    /// Nothing left that waiting may change: no check failed, and every
    /// warning is a lasting one.
    pub fn settled(&self) -> bool {
        self.summary.failed == 0
            && self
                .categories
                .iter()
                .flat_map(|category| &category.checks)
                .all(|check| check.result != Outcome::Warn || check.lasting)
    }

    /// The text form, in the manner of `linkerd check`.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for category in &self.categories {
            out += &format!("{}\n{}\n", category.name, "-".repeat(category.name.len()));
            for check in &category.checks {
                let symbol = match check.result {
                    Outcome::Pass => "√",
                    Outcome::Warn => "‼",
                    Outcome::Fail => "×",
                };
                out += &format!("{symbol} {}: {}\n", check.id.name(), check.message);
                if let Some(hint) = &check.hint {
                    out += &format!("    hint: {hint}\n");
                }
            }
            out.push('\n');
        }
        let Summary {
            passed,
            warnings,
            failed,
        } = self.summary;
        out += &format!(
            "Status: {passed} passed, {}, {failed} failed\n",
            count(warnings as i64, "warning", "warnings")
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_and_success_ignores_warnings() {
        let report = Report::new(vec![Category {
            name: "cluster",
            checks: vec![
                Check::pass(CheckId::ApiServer, "yes"),
                Check::warn(CheckId::Permissions, "old", "upgrade"),
            ],
        }]);
        assert!(report.success);
        assert!(!report.all_pass());
        assert_eq!(
            report.summary,
            Summary {
                passed: 1,
                warnings: 1,
                failed: 0
            }
        );
        let text = report.render_text();
        assert!(text.contains("√ API server: yes"));
        assert!(text.contains("‼ permissions: old\n    hint: upgrade"));
        assert!(text.ends_with("Status: 1 passed, 1 warning, 0 failed\n"));
        // The JSON form names each check as the text does.
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["categories"][0]["checks"][1]["name"], "permissions");
    }
}
