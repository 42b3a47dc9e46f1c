//! The texts `expose` (and the wizard's answers) take, checked before
//! anything is sent: the gateway pods' label selector, the certificate's
//! common name, the route's path prefix.

/// Accepts a pod label selector of one `LABEL=VALUE`.
pub fn parse_selector(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((label, value)) if !label.is_empty() && !value.contains('=') => {
            Ok((label.to_owned(), value.to_owned()))
        }
        _ => Err(format!(
            "\"{text}\" is not LABEL=VALUE (for example istio=ingressgateway)"
        )),
    }
}

/// Refuses a common name that would put junk into the certificate.
pub fn check_common_name(text: &str) -> Result<(), String> {
    if text.is_empty() || text.chars().count() > 64 {
        return Err("must be 1 to 64 characters long".into());
    }
    if let Some(bad) = text
        .chars()
        .find(|c| !c.is_ascii_graphic() || "\"'`".contains(*c))
    {
        return Err(format!(
            "\"{text}\" contains {bad:?}; give the name without quotes (the runbook's sample has \
             typographic quotes around istio-service)"
        ));
    }
    Ok(())
}

/// Accepts a URI path prefix like `/kms/api`.
pub fn check_path(text: &str) -> Result<(), String> {
    if !text.starts_with('/') || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "\"{text}\" must start with '/' and contain no spaces"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_are_one_label() {
        assert_eq!(
            parse_selector("istio=ingress"),
            Ok(("istio".into(), "ingress".into()))
        );
        for bad in ["istio", "=x", "a=b=c"] {
            assert!(parse_selector(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn common_name_quotes_are_refused() {
        assert!(check_common_name("istio-service").is_ok());
        let err = check_common_name("\u{201c}istio-service\u{201d}").unwrap_err();
        assert!(err.contains("without quotes"), "{err}");
        assert!(check_common_name("\"istio-service\"").is_err());
        assert!(check_common_name(&"a".repeat(65)).is_err());
    }
}
