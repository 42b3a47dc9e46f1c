//! Durations as kubectl spells them on the command line: a bare `0`, or one or
//! more number-unit pairs such as `30s`, `2m`, `1h30m`, `500ms`. jiff's
//! "friendly" duration format reads and writes them; this module only adds
//! kubectl's bare `0`, refuses negative durations, and says what is accepted,
//! so every flag that takes a duration accepts and reports the same way.

use std::time::Duration;

use jiff::fmt::friendly::{Designator, Spacing, SpanParser, SpanPrinter};

const PARSER: SpanParser = SpanParser::new();
const PRINTER: SpanPrinter = SpanPrinter::new()
    .designator(Designator::Compact)
    .spacing(Spacing::None);

/// Parses a kubectl-style duration; the error says what is accepted.
pub fn parse(text: &str) -> Result<Duration, String> {
    let invalid =
        || format!("\"{text}\" is not a duration: use a number with a unit, like 30s, 2m or 1h30m");
    let trimmed = text.trim();
    if trimmed == "0" {
        return Ok(Duration::ZERO);
    }
    let parsed = PARSER
        .parse_unsigned_duration(trimmed)
        .map_err(|_| invalid())?;
    Ok(parsed)
}

/// Parses a duration that must not be zero, for limits on waiting.
pub fn parse_positive(text: &str) -> Result<Duration, String> {
    match parse(text)? {
        Duration::ZERO => Err(format!(
            "\"{text}\" is no time at all: give a limit longer than 0s"
        )),
        duration => Ok(duration),
    }
}

/// Formats a duration the way it would be typed: `30s`, `1m30s`, `500ms`.
pub fn display(duration: Duration) -> String {
    PRINTER.unsigned_duration_to_string(&duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kubectl_spellings() {
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn rejects_what_kubectl_rejects() {
        for bad in ["", "10", "s", "10x", "-5s", "1h-5m", "ten seconds"] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("is not a duration"), "{bad}: {err}");
        }
    }

    #[test]
    fn limits_must_be_longer_than_zero() {
        assert_eq!(parse_positive("5m"), Ok(Duration::from_secs(300)));
        for zero in ["0", "0s", "0ms"] {
            assert!(
                parse_positive(zero).unwrap_err().contains("longer than 0s"),
                "{zero}"
            );
        }
    }

    #[test]
    fn displays_what_parses_back() {
        for text in ["30s", "1m30s", "2h", "500ms", "1h1m1s"] {
            assert_eq!(display(parse(text).unwrap()), text);
        }
        assert_eq!(display(Duration::ZERO), "0s");
    }
}
