//! The file `status --save` writes and `status --from` reads: the runs the
//! checks were decided on, every context of the run inside, so that someone
//! without access to the clusters gets the same report. The snapshots in it
//! hold no secret material (see `redact`). The format is versioned: a file
//! of another format, or one that is not a snapshot at all, is refused with
//! the reason instead of being half read.
//!
//! ```json
//! {"kind": "KmsStsStatusSnapshot", "formatVersion": 1,
//!  "savedBy": "kubectl-kms-sts 0.1.0",
//!  "contexts": [{"context": "...", "names": {...}, "result": {"read": ...}}]}
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use super::fleet::ContextRun;

pub const KIND: &str = "KmsStsStatusSnapshot";
/// The format this version writes and reads.
pub const FORMAT_VERSION: u64 = 1;
const SAVED_BY: &str = concat!("kubectl-kms-sts ", env!("CARGO_PKG_VERSION"));

/// The file: its contexts are `ContextRun`s, written as each is read.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SavedRun<C> {
    kind: String,
    format_version: u64,
    saved_by: String,
    contexts: Vec<C>,
}

/// A context as the file holds it, serialised as soon as it is read so that
/// a run over many contexts keeps only text, not every snapshot.
pub struct Entry(Box<RawValue>);

impl Entry {
    pub fn of(run: &ContextRun) -> Entry {
        Entry(serde_json::value::to_raw_value(run).expect("snapshots serialise to JSON"))
    }
}

/// The file's text for the contexts of a run, in order.
pub fn to_text(entries: Vec<Entry>) -> String {
    let saved = SavedRun {
        kind: KIND.to_owned(),
        format_version: FORMAT_VERSION,
        saved_by: SAVED_BY.to_owned(),
        contexts: entries.into_iter().map(|entry| entry.0).collect(),
    };
    let mut text = serde_json::to_string_pretty(&saved).expect("snapshots serialise to JSON");
    text.push('\n');
    text
}

/// The runs a saved file holds, or why it cannot be read, in words that
/// finish "is not a status snapshot this version can read: ".
pub fn parse(text: &[u8]) -> Result<Vec<ContextRun>, String> {
    let looks_like_json = text.trim_ascii_start().starts_with(b"{");
    let document: Value = serde_json::from_slice(text).map_err(|err| {
        if err.is_eof() || looks_like_json {
            format!("it is cut short or damaged ({err})")
        } else {
            format!("it is not JSON ({err}); `status --save` writes JSON")
        }
    })?;
    let kind = document.get("kind").and_then(Value::as_str);
    if kind != Some(KIND) {
        return Err(match kind {
            Some(other) => format!("it is a {other}, not a {KIND}"),
            None => format!("it has no kind; a snapshot says kind {KIND}"),
        });
    }
    let saved_by = document
        .get("savedBy")
        .and_then(Value::as_str)
        .unwrap_or("an unknown version")
        .to_owned();
    match document.get("formatVersion").and_then(Value::as_u64) {
        Some(FORMAT_VERSION) => {}
        Some(other) => {
            return Err(format!(
                "it is of format {other}, saved by {saved_by}; {SAVED_BY} reads format \
                 {FORMAT_VERSION}"
            ));
        }
        None => return Err("it has no formatVersion".to_owned()),
    }
    let saved: SavedRun<ContextRun> = serde_json::from_value(document)
        .map_err(|err| format!("it is damaged: {err} (saved by {saved_by})"))?;
    Ok(saved.contexts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::evaluate::Reading;
    use crate::checks::fleet::{ContextError, ContextResult};
    use crate::checks::snapshot::{Names, Snapshot};

    fn runs() -> Vec<ContextRun> {
        let names = Names::runbook(" --context east");
        vec![
            ContextRun {
                context: "east".into(),
                names: names.clone(),
                result: ContextResult::Read(Box::new(Reading::Refused {
                    snapshot: Snapshot {
                        server_version: "v1.36.3".into(),
                        missing_permissions: vec!["get secrets in istio".into()],
                        now: 1_800_000_000,
                        ..Snapshot::default()
                    },
                    action: "read secret istio/sts-apikey".into(),
                    refusal: "forbidden".into(),
                })),
            },
            ContextRun {
                context: "west".into(),
                names,
                result: ContextResult::Failed(ContextError {
                    message: "cannot reach".into(),
                    hint: None,
                    exit_code: 3,
                }),
            },
        ]
    }

    #[test]
    fn a_saved_run_reads_back_as_the_same_report() {
        let text = to_text(runs().iter().map(Entry::of).collect());
        let back = parse(text.as_bytes()).unwrap();
        assert_eq!(back.len(), 2);
        for (before, after) in runs().iter().zip(&back) {
            assert_eq!(
                serde_json::to_value(before.report()).unwrap(),
                serde_json::to_value(after.report()).unwrap()
            );
        }
        let document: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(document["kind"], KIND);
        assert_eq!(document["formatVersion"], FORMAT_VERSION);
    }

    #[test]
    fn foreign_damaged_and_other_format_files_are_refused_with_the_reason() {
        let text = to_text(runs().iter().map(Entry::of).collect());
        let cases: Vec<(String, &str)> = vec![
            ("apiVersion: v1\nkind: Config\n".into(), "not JSON"),
            (text[..text.len() / 2].to_owned(), "cut short or damaged"),
            (
                "{\"kind\": \"Config\"}".into(),
                "is a Config, not a KmsStsStatusSnapshot",
            ),
            ("{}".into(), "has no kind"),
            (
                text.replace("\"formatVersion\": 1", "\"formatVersion\": 2"),
                "of format 2, saved by kubectl-kms-sts",
            ),
            (
                text.replace("\"formatVersion\": 1,", ""),
                "no formatVersion",
            ),
            (
                text.replace("\"context\":\"west\"", "\"context\":7"),
                "damaged: invalid type",
            ),
        ];
        for (text, expected) in cases {
            let reason = parse(text.as_bytes()).unwrap_err();
            assert!(reason.contains(expected), "{expected}: {reason}");
        }
    }
}
