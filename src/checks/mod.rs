//! The result of `status`: checks grouped by runbook step, each pass, warn or
//! fail with a hint saying what to run, printed like `linkerd check` or as a
//! stable JSON/YAML document. `evaluate` decides every check from a snapshot of
//! the cluster; it never talks to the cluster itself.

pub mod evaluate;

use serde::Serialize;

use crate::wording::count;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Warn,
    Fail,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub result: Outcome,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Check {
    pub fn pass(name: &str, message: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            result: Outcome::Pass,
            message: message.into(),
            hint: None,
        }
    }

    pub fn warn(name: &str, message: impl Into<String>, hint: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            result: Outcome::Warn,
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    pub fn fail(name: &str, message: impl Into<String>, hint: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            result: Outcome::Fail,
            message: message.into(),
            hint: Some(hint.into()),
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
                out += &format!("{symbol} {}: {}\n", check.name, check.message);
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
                Check::pass("reachable", "yes"),
                Check::warn("version", "old", "upgrade"),
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
        assert!(text.contains("√ reachable: yes"));
        assert!(text.contains("‼ version: old\n    hint: upgrade"));
        assert!(text.ends_with("Status: 1 passed, 1 warning, 0 failed\n"));
    }
}
