//! Cloud Resource Names, checked before anything is sent. A CRN has ten
//! colon-separated fields:
//!
//! `crn:v1:CNAME:CTYPE:SERVICE-NAME:LOCATION:SCOPE:SERVICE-INSTANCE:RESOURCE-TYPE:RESOURCE`
//!
//! The runbook's own examples show why this matters: one has nine fields and
//! another a space. Errors name the field at fault and mark it in the value.

use std::fmt;

pub const FIELD_NAMES: [&str; 10] = [
    "prefix",
    "version",
    "cname",
    "ctype",
    "service-name",
    "location",
    "scope",
    "service-instance",
    "resource-type",
    "resource",
];

const SCOPE_PREFIXES: [&str; 5] = ["a/", "o/", "s/", "p/", "n/"];

/// A CRN that passed every rule; `Display` gives it back unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crn {
    text: String,
}

impl Crn {
    pub fn service_name(&self) -> &str {
        self.text.split(':').nth(4).unwrap_or_default()
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Crn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Why a CRN was refused: the problem, and where in the value it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrnError {
    pub value: String,
    pub problem: String,
    /// Character offset and length of the marked part of `value`.
    pub span: (usize, usize),
}

impl fmt::Display for CrnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (start, len) = self.span;
        writeln!(f, "{}", self.problem)?;
        writeln!(f, "    {}", self.value.escape_debug())?;
        write!(f, "    {}{}", " ".repeat(start), "^".repeat(len.max(1)))
    }
}

impl std::error::Error for CrnError {}

/// Character offsets of each field in `text` (split on ':').
fn field_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = 0;
    for field in text.split(':') {
        let len = field.chars().count();
        spans.push((start, len));
        start += len + 1;
    }
    spans
}

/// Parses and checks a CRN.
pub fn parse(text: &str) -> Result<Crn, CrnError> {
    let error = |problem: String, span| CrnError {
        value: text.to_owned(),
        problem,
        span,
    };
    if text.is_empty() {
        return Err(error("the CRN is empty".into(), (0, 1)));
    }
    if let Some(at) = text
        .chars()
        .position(|c| c.is_whitespace() || c.is_control())
    {
        return Err(error(
            format!(
                "a CRN cannot contain whitespace (found at character {})",
                at + 1
            ),
            (at, 1),
        ));
    }
    let fields: Vec<&str> = text.split(':').collect();
    let spans = field_spans(text);
    if fields[0] != "crn" {
        return Err(error("a CRN starts with \"crn:\"".into(), spans[0]));
    }
    if fields.len() != 10 {
        let total = text.chars().count();
        return Err(error(
            format!(
                "a CRN has 10 colon-separated fields ({}), this one has {}",
                FIELD_NAMES.join(":"),
                fields.len()
            ),
            (0, total),
        ));
    }
    if fields[1] != "v1" {
        return Err(error(
            format!("field 2 (version) must be \"v1\", not \"{}\"", fields[1]),
            spans[1],
        ));
    }
    for index in [2, 3, 4] {
        if fields[index].is_empty() {
            return Err(error(
                format!(
                    "field {} ({}) cannot be empty",
                    index + 1,
                    FIELD_NAMES[index]
                ),
                spans[index],
            ));
        }
    }
    let scope = fields[6];
    let scope_ok = SCOPE_PREFIXES
        .iter()
        .any(|prefix| scope.len() > prefix.len() && scope.starts_with(prefix));
    if !scope_ok {
        return Err(error(
            format!(
                "field 7 (scope) must be a/ACCOUNT, o/ORG, s/SPACE, p/PROJECT or n/NAMESPACE, not \"{scope}\""
            ),
            spans[6],
        ));
    }
    Ok(Crn {
        text: text.to_owned(),
    })
}

/// Parses a CRN that must name the Key Management Service.
pub fn parse_kms_target(text: &str) -> Result<Crn, CrnError> {
    let crn = parse(text)?;
    if crn.service_name() != "kms" {
        let span = field_spans(text)[4];
        return Err(CrnError {
            value: text.to_owned(),
            problem: format!(
                "a target must be a Key Management Service CRN: field 5 (service-name) is \"{}\", not \"kms\"",
                crn.service_name()
            ),
            span,
        });
    }
    Ok(crn)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = "crn:v1:staging:public:sts:us-south:a/1234:123456789::";
    const TARGET: &str =
        "crn:v1:icp:private:kms:mycluster:n/kube-system:0d705d95-e216-4ce4-9c81-38eeef4eee3b::";

    #[test]
    fn accepts_the_runbooks_corrected_crns() {
        assert_eq!(parse(SOURCE).unwrap().as_str(), SOURCE);
        assert_eq!(parse_kms_target(TARGET).unwrap().service_name(), "kms");
    }

    #[test]
    fn refuses_the_runbooks_nine_field_crn() {
        let err = parse("crn:v1:staging:public:sts:us-south:a/1234c123456789::").unwrap_err();
        assert!(err.problem.contains("10 colon-separated fields"), "{err}");
        assert!(err.problem.contains("this one has 9"), "{err}");
    }

    #[test]
    fn refuses_and_marks_the_runbooks_space() {
        let text = "crn:v1:icp:private:kms:mycluster:n/kube-system:0d705d95- e216-4ce4-9c81-38eeef4eee3b::";
        let err = parse(text).unwrap_err();
        assert!(err.problem.contains("whitespace"), "{err}");
        assert_eq!(err.span, (56, 1));
        let shown = err.to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines[2].find('^').unwrap() - 4, 56);
    }

    #[test]
    fn each_rule_names_its_field() {
        let cases = [
            ("", "empty"),
            ("urn:v1:a:b:c:d:a/1:e::", "starts with \"crn:\""),
            ("crn:v2:a:b:c:d:a/1:e::", "field 2 (version)"),
            ("crn:v1::b:c:d:a/1:e::", "field 3 (cname)"),
            ("crn:v1:a::c:d:a/1:e::", "field 4 (ctype)"),
            ("crn:v1:a:b::d:a/1:e::", "field 5 (service-name)"),
            ("crn:v1:a:b:c:d:x/1:e::", "field 7 (scope)"),
            ("crn:v1:a:b:c:d::e::", "field 7 (scope)"),
            ("crn:v1:a:b:c:d:a/:e::", "field 7 (scope)"),
            ("crn:v1:a:b:c:d:a/1:e:::", "has 11"),
            ("crn:v1:a:b:c:d:a/1:e:\t:", "whitespace"),
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.problem.contains(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn targets_must_name_kms() {
        let err = parse_kms_target(SOURCE).unwrap_err();
        assert!(
            err.problem.contains("field 5 (service-name) is \"sts\""),
            "{err}"
        );
        assert_eq!(err.span, (22, 3));
    }

    #[test]
    fn never_panics_on_arbitrary_input() {
        // A deterministic sweep of short strings over the characters that
        // matter to the parser, plus multibyte characters.
        let alphabet = [
            'c', 'r', 'n', ':', 'v', '1', 'a', '/', ' ', 'é', '\u{0}', 'k',
        ];
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..50_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 40) as usize;
            let text: String = (0..len)
                .map(|i| alphabet[((state >> (i % 60)) as usize + i) % alphabet.len()])
                .collect();
            let _ = parse(&text).map_err(|err| err.to_string());
            let _ = parse_kms_target(&format!("crn:v1:{text}")).map_err(|err| err.to_string());
        }
    }
}
