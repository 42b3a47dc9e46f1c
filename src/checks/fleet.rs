//! `status` over several kubeconfig contexts in one run: what each context
//! gave (a reading for the checks, or the error that kept it from being
//! read), and the one report made of them all: a table with a row per
//! context, a JSON/YAML document with a report per context, and an exit
//! status that is the worst of them. Pure, like `evaluate`: the same runs
//! always give the same report, whether they were just read or loaded from
//! a saved snapshot.

use serde::{Deserialize, Serialize};

use super::evaluate::Reading;
use super::snapshot::Names;
use super::{Category, Check, Outcome, Report, Summary};
use crate::error::ExitStatus;
use crate::terminal::wording::count;

/// One context of a run: its name, the names its checks looked for (its
/// hints carry its `--context`), and what was read or why nothing could be.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContextRun {
    pub context: String,
    pub names: Names,
    pub result: ContextResult,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ContextResult {
    Read(Box<Reading>),
    Failed(ContextError),
}

/// Why a context could not be checked, as a person reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContextError {
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The exit code a run of this context alone would have ended with.
    pub exit_code: u8,
}

/// A context's overall result, as the table's verdict column shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every check passed.
    Pass,
    /// No check failed, some warned.
    Warn,
    /// At least one check failed.
    Fail,
    /// The context could not be checked.
    Error,
}

impl Verdict {
    fn word(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
            Verdict::Error => "error",
        }
    }
}

/// One context in the fleet report: the shape a single-context `status`
/// prints (`success`, `summary`, `categories`), plus the context's name,
/// its server's version, the time its certificate checks compared against,
/// and the error when it could not be checked.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContextReport {
    pub context: String,
    pub verdict: Verdict,
    pub success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<Category>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ContextError>,
}

/// How many contexts ended with each verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FleetSummary {
    pub contexts: usize,
    pub passed: usize,
    pub warnings: usize,
    pub failed: usize,
    pub errors: usize,
}

/// The whole run; its JSON form is the documented multi-context
/// `status -o json` shape.
#[derive(Debug, Clone, Serialize)]
pub struct FleetReport {
    pub success: bool,
    pub summary: FleetSummary,
    pub contexts: Vec<ContextReport>,
    #[serde(skip)]
    pub exit_status: ExitStatus,
}

/// `now` (seconds since the Unix epoch) as RFC 3339.
pub fn timestamp(seconds: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(seconds)
        .map(|time| time.to_string())
        .unwrap_or_else(|_| seconds.to_string())
}

/// A context's part of the report and the exit status a run of it alone
/// would end with: all a fleet report keeps of a context once it is read.
#[derive(Debug, Clone)]
pub struct Judged {
    pub report: ContextReport,
    pub exit_status: ExitStatus,
}

impl ContextRun {
    /// This context's part of the report, and its exit status.
    pub fn judge(&self) -> Judged {
        let report = self.report();
        let exit_status = match (&self.result, report.success) {
            (ContextResult::Failed(error), _) => ExitStatus::from_code(error.exit_code),
            (ContextResult::Read(_), true) => ExitStatus::Success,
            (ContextResult::Read(_), false) => ExitStatus::ChecksFailed,
        };
        Judged {
            report,
            exit_status,
        }
    }

    /// This context's part of the report.
    pub fn report(&self) -> ContextReport {
        match &self.result {
            ContextResult::Read(reading) => {
                let report = reading.report(&self.names);
                let snapshot = reading.snapshot();
                let verdict = if !report.success {
                    Verdict::Fail
                } else if report.all_pass() {
                    Verdict::Pass
                } else {
                    Verdict::Warn
                };
                ContextReport {
                    context: self.context.clone(),
                    verdict,
                    success: report.success,
                    server_version: Some(snapshot.server_version.clone()),
                    checked_at: Some(timestamp(snapshot.now)),
                    summary: Some(report.summary),
                    categories: Some(report.categories),
                    error: None,
                }
            }
            ContextResult::Failed(error) => ContextReport {
                context: self.context.clone(),
                verdict: Verdict::Error,
                success: false,
                server_version: None,
                checked_at: None,
                summary: None,
                categories: None,
                error: Some(error.clone()),
            },
        }
    }
}

/// How bad an exit status is for a fleet: passing, then failed checks,
/// then a context that could not be checked at all.
fn severity(status: ExitStatus) -> u8 {
    match status {
        ExitStatus::Success => 0,
        ExitStatus::ChecksFailed => 1,
        _ => 2,
    }
}

impl FleetReport {
    /// The report of runs read or loaded earlier.
    pub fn of(runs: &[ContextRun]) -> FleetReport {
        FleetReport::new(runs.iter().map(ContextRun::judge).collect())
    }

    pub fn new(judged: Vec<Judged>) -> FleetReport {
        // The first of the worst, so that the exit code names the context
        // listed first among those that fared worst.
        let exit_status = judged.iter().map(|context| context.exit_status).fold(
            ExitStatus::Success,
            |worst, next| {
                if severity(next) > severity(worst) {
                    next
                } else {
                    worst
                }
            },
        );
        let contexts: Vec<ContextReport> = judged.into_iter().map(|c| c.report).collect();
        let mut summary = FleetSummary {
            contexts: contexts.len(),
            ..FleetSummary::default()
        };
        for context in &contexts {
            match context.verdict {
                Verdict::Pass => summary.passed += 1,
                Verdict::Warn => summary.warnings += 1,
                Verdict::Fail => summary.failed += 1,
                Verdict::Error => summary.errors += 1,
            }
        }
        FleetReport {
            success: contexts.iter().all(|context| context.success),
            summary,
            contexts,
            exit_status,
        }
    }

    /// How many contexts did not pass (warnings pass, as for one context).
    pub fn not_passing(&self) -> usize {
        self.contexts.iter().filter(|c| !c.success).count()
    }

    /// The text form: the table, then the full report of every context
    /// that did not pass every check.
    pub fn render_text(&self) -> String {
        let mut out = self.table();
        for context in self.contexts.iter().filter(|c| c.verdict != Verdict::Pass) {
            let title = format!("Context {}", context.context);
            out += &format!("\n{title}\n{}\n", "=".repeat(title.chars().count()));
            out += &match (&context.error, &context.categories, context.summary) {
                (Some(error), _, _) => error_text(error),
                (None, Some(categories), Some(_)) => Report::new(categories.clone()).render_text(),
                _ => String::new(),
            };
        }
        let FleetSummary {
            contexts,
            passed,
            warnings,
            failed,
            errors,
        } = self.summary;
        out += &format!(
            "\n{}: {passed} passed, {warnings} with warnings, {failed} failed, {errors} not \
             checked\n",
            count(contexts as i64, "context", "contexts")
        );
        out
    }

    fn table(&self) -> String {
        let header = [
            "CONTEXT",
            "SERVER VERSION",
            "VERDICT",
            "PASSED",
            "WARNINGS",
            "FAILED",
            "FIRST PROBLEM",
        ]
        .map(str::to_owned);
        let rows: Vec<[String; 7]> = self.contexts.iter().map(row).collect();
        let widths: Vec<usize> = (0..header.len())
            .map(|column| {
                std::iter::once(&header)
                    .chain(&rows)
                    .map(|row| row[column].chars().count())
                    .max()
                    .unwrap_or_default()
            })
            .collect();
        std::iter::once(&header)
            .chain(&rows)
            .map(|row| {
                let cells: Vec<String> = row
                    .iter()
                    .zip(&widths)
                    .map(|(cell, width)| format!("{cell:<width$}"))
                    .collect();
                format!("{}\n", cells.join("  ").trim_end())
            })
            .collect()
    }
}

/// A context's table row.
fn row(context: &ContextReport) -> [String; 7] {
    let number = |field: fn(&Summary) -> usize| {
        context
            .summary
            .as_ref()
            .map_or("-".to_owned(), |summary| field(summary).to_string())
    };
    let problem = match (&context.error, &context.categories) {
        (Some(error), _) => with_hint(&error.message, error.hint.as_deref()),
        (None, Some(categories)) => first_problem(categories)
            .map(|check| {
                with_hint(
                    &format!("{}: {}", check.id.name(), check.message),
                    check.hint.as_deref(),
                )
            })
            .unwrap_or_default(),
        (None, None) => String::new(),
    };
    [
        context.context.clone(),
        context.server_version.clone().unwrap_or("-".to_owned()),
        context.verdict.word().to_owned(),
        number(|s| s.passed),
        number(|s| s.warnings),
        number(|s| s.failed),
        problem,
    ]
}

const MAX_PROBLEM: usize = 100;

/// The first failed check, else the first warning.
fn first_problem(categories: &[Category]) -> Option<&Check> {
    let checks = || categories.iter().flat_map(|category| &category.checks);
    checks()
        .find(|check| check.result == Outcome::Fail)
        .or_else(|| checks().find(|check| check.result == Outcome::Warn))
}

/// A row's problem: its message cut to `MAX_PROBLEM` characters (the full
/// report follows the table), and its hint whole, to paste as printed.
fn with_hint(message: &str, hint: Option<&str>) -> String {
    let message = match message.char_indices().nth(MAX_PROBLEM) {
        Some((cut, _)) => format!("{}...", &message[..cut]),
        None => message.to_owned(),
    };
    match hint {
        Some(hint) => format!("{message} (hint: {hint})"),
        None => message.to_owned(),
    }
}

fn error_text(error: &ContextError) -> String {
    let mut text = format!("error: {}\n", error.message);
    if let Some(hint) = &error.hint {
        text += &format!("  hint: {hint}\n");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::snapshot::Snapshot;

    fn names(context: &str) -> Names {
        Names::runbook(&format!(" --context {context}"))
    }

    fn read(context: &str) -> ContextRun {
        ContextRun {
            context: context.into(),
            names: names(context),
            result: ContextResult::Read(Box::new(Reading::Complete(Snapshot {
                server_version: "v1.36.3".into(),
                now: 1_800_000_000,
                ..Snapshot::default()
            }))),
        }
    }

    fn failed(context: &str, exit_code: u8) -> ContextRun {
        ContextRun {
            context: context.into(),
            names: names(context),
            result: ContextResult::Failed(ContextError {
                message: "cannot reach https://127.0.0.1:1".into(),
                hint: Some("check the server".into()),
                exit_code,
            }),
        }
    }

    #[test]
    fn the_exit_status_is_the_worst_context_s() {
        let fleet = FleetReport::of(&[read("a"), failed("b", 3), failed("c", 4)]);
        assert_eq!(fleet.exit_status, ExitStatus::Unreachable);
        assert_eq!(
            FleetReport::of(&[read("a")]).exit_status,
            ExitStatus::ChecksFailed
        );
        assert_eq!(FleetReport::of(&[]).exit_status, ExitStatus::Success);
        assert!(!fleet.success);
        assert_eq!(fleet.not_passing(), 3);
        assert_eq!(
            fleet.summary,
            FleetSummary {
                contexts: 3,
                passed: 0,
                warnings: 0,
                failed: 1,
                errors: 2
            }
        );
    }

    #[test]
    fn each_context_is_a_row_then_a_report_with_its_own_hints() {
        let text = FleetReport::of(&[read("east"), failed("west", 3)]).render_text();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("CONTEXT  SERVER VERSION  VERDICT"),
            "{text}"
        );
        assert!(
            lines[1].starts_with("east     v1.36.3         fail"),
            "{text}"
        );
        assert!(lines[1].contains("(hint: "), "{text}");
        assert!(
            lines[2].starts_with("west     -               error    -"),
            "{text}"
        );
        assert!(
            lines[2].ends_with("cannot reach https://127.0.0.1:1 (hint: check the server)"),
            "{text}"
        );
        assert!(
            text.contains("\nContext east\n============\ncluster\n"),
            "{text}"
        );
        assert!(text.contains("--context east`"), "{text}");
        assert!(
            text.contains("\nContext west\n============\nerror: cannot reach"),
            "{text}"
        );
        assert!(
            text.ends_with("\n2 contexts: 0 passed, 0 with warnings, 1 failed, 1 not checked\n"),
            "{text}"
        );
        let long = with_hint(&"x".repeat(300), Some("run `this whole command`"));
        assert_eq!(
            long,
            format!("{}... (hint: run `this whole command`)", "x".repeat(100))
        );
    }

    #[test]
    fn the_document_has_a_report_per_context_in_the_single_context_shape() {
        let document =
            serde_json::to_value(FleetReport::of(&[read("east"), failed("west", 3)])).unwrap();
        let east = &document["contexts"][0];
        assert_eq!(east["context"], "east");
        assert_eq!(east["checkedAt"], "2027-01-15T08:00:00Z");
        let run = read("east");
        let ContextResult::Read(reading) = &run.result else {
            unreachable!("read gives a reading")
        };
        let single = serde_json::to_value(reading.report(&run.names)).unwrap();
        assert_eq!(east["categories"], single["categories"]);
        assert_eq!(east["summary"]["failed"], single["summary"]["failed"]);
        let west = &document["contexts"][1];
        assert_eq!(west["verdict"], "error");
        assert_eq!(west["error"]["exitCode"], 3);
        assert!(west.get("categories").is_none());
        assert_eq!(document["success"], false);
    }
}
