//! How words read in messages for people: counts that agree in number
//! ("1 pod", "2 pods", never "1 pods"), and command lines quoted so that
//! they can be pasted into a shell as printed.

/// `n` followed by the singular or the plural of a noun.
pub fn count(n: impl Into<i64>, singular: &str, plural: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("{n} {singular}")
    } else {
        format!("{n} {plural}")
    }
}

/// `text` as one shell word: as it is when it needs no quoting, else in
/// single quotes.
pub fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./:=@%+,-".contains(c));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// `text` with `flags` (` --flag value` each) added to the end of every
/// backquoted command line that starts with `command`, but for the flags
/// that line already gives.
pub fn with_flags(text: &str, command: &str, flags: &str) -> String {
    if flags.is_empty() {
        return text.to_owned();
    }
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find(&format!("`{command}")) {
        let Some(length) = rest[start + 1..].find('`') else {
            break;
        };
        let end = start + 1 + length;
        let line = &rest[start + 1..end];
        out += &rest[..end];
        for flag in flags.split(" --").filter(|f| !f.is_empty()) {
            let name = flag.split(' ').next().unwrap_or_default();
            if !line.contains(&format!("--{name} ")) && !line.ends_with(&format!("--{name}")) {
                out += &format!(" --{flag}");
            }
        }
        out.push('`');
        rest = &rest[end + 1..];
    }
    out + rest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_in_a_text_get_the_flags() {
        let text =
            "run `kubectl kms-sts status`, or `kubectl get pods`; then `kubectl kms-sts inject`";
        assert_eq!(
            with_flags(text, "kubectl kms-sts ", " --kms-namespace k"),
            "run `kubectl kms-sts status --kms-namespace k`, or `kubectl get pods`; \
             then `kubectl kms-sts inject --kms-namespace k`"
        );
        assert_eq!(with_flags(text, "kubectl kms-sts ", ""), text);
        assert_eq!(
            with_flags(
                "`kubectl kms-sts set-apikey --istio-namespace i`",
                "kubectl kms-sts ",
                " --kubeconfig /k --istio-namespace i"
            ),
            "`kubectl kms-sts set-apikey --istio-namespace i --kubeconfig /k`"
        );
        assert_eq!(
            with_flags(
                "unclosed `kubectl kms-sts status",
                "kubectl kms-sts ",
                " --x y"
            ),
            "unclosed `kubectl kms-sts status"
        );
    }

    #[test]
    fn words_are_quoted_only_when_the_shell_needs_it() {
        assert_eq!(shell_word("kms-ns"), "kms-ns");
        assert_eq!(shell_word("/home/me/.kube/config"), "/home/me/.kube/config");
        assert_eq!(shell_word("my config"), "'my config'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn one_is_singular_and_every_other_count_plural() {
        assert_eq!(count(1, "pod", "pods"), "1 pod");
        assert_eq!(count(0, "pod", "pods"), "0 pods");
        assert_eq!(count(2, "replica", "replicas"), "2 replicas");
        assert_eq!(count(-1, "pod", "pods"), "-1 pods");
    }
}
