//! Istio control-plane revisions as the plugin names them: `default` for a
//! control plane installed without one, and why a revision was the one
//! chosen (the flag, the Deployment's own injection, the `default` tag, or
//! the only one installed), for the reports that name it.

use serde::{Deserialize, Serialize};

/// The revision of a control plane installed without one.
pub const DEFAULT_REVISION: &str = "default";

/// Accepts a revision name as Istio spells them: a DNS label.
pub fn parse(text: &str) -> Result<String, String> {
    let label = !text.is_empty()
        && text.len() <= 63
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !text.starts_with('-')
        && !text.ends_with('-');
    if label {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "\"{text}\" is not a revision name (lowercase letters, digits and '-', like 1-31-2 or canary)"
        ))
    }
}

/// Why a revision was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ChosenBy {
    /// `--revision`.
    Flag,
    /// The revision the Deployment was injected with.
    Injected,
    /// The revision the `default` tag points to.
    DefaultTag,
    /// The only control plane installed.
    OnlyInstalled,
    /// The control plane installed without a revision, beside revisioned ones.
    NonRevisioned,
}

impl ChosenBy {
    /// How a report says it: "revision R {why}".
    pub fn reason(self) -> &'static str {
        match self {
            ChosenBy::Flag => "named by --revision",
            ChosenBy::Injected => "it was injected with",
            ChosenBy::DefaultTag => "the default tag points to",
            ChosenBy::OnlyInstalled => "the only one installed",
            ChosenBy::NonRevisioned => "installed without a revision",
        }
    }
}
