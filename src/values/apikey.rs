//! The API key as a value: where it is read from, what makes it acceptable,
//! and the fingerprint that stands for it in every output. The key itself is
//! never formatted: `ApiKey` has no `Display`, and its `Debug` shows only the
//! fingerprint, so it cannot reach a log or an error message by accident.

use std::fmt;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Where to read the key from. There is deliberately no source that takes the
/// key itself on the command line: argv is visible to every local user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A hidden prompt on the terminal.
    Prompt,
    /// Standard input, one trailing newline removed.
    Stdin,
    /// A file, one trailing newline removed.
    File(PathBuf),
    /// An environment variable.
    Env(String),
}

pub struct ApiKey(Vec<u8>);

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey(sha256:{})", self.fingerprint())
    }
}

impl ApiKey {
    /// Validates raw key bytes: non-empty UTF-8 text without whitespace or
    /// control characters (a pasted key often carries a stray newline or
    /// space, which the token adapter would send as part of the key).
    pub fn new(bytes: Vec<u8>) -> Result<ApiKey> {
        let invalid = |reason: &str| Error::InvalidApiKey {
            reason: reason.to_owned(),
        };
        if bytes.is_empty() {
            return Err(invalid("the key is empty"));
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| invalid("the key is not UTF-8 text"))?;
        if text.chars().any(char::is_whitespace) {
            return Err(invalid("the key contains whitespace"));
        }
        if text.chars().any(char::is_control) {
            return Err(invalid("the key contains control characters"));
        }
        Ok(ApiKey(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The first 8 hex digits of the key's SHA-256: enough to tell keys
    /// apart in output, useless for recovering the key.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.0)
    }
}

/// The fingerprint of any stored value, for comparing with `ApiKey`'s.
pub fn fingerprint(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .take(4)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Reads and validates the key from `source`.
pub fn read(source: &KeySource) -> Result<ApiKey> {
    let bytes = match source {
        KeySource::Prompt => {
            if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
                return Err(Error::NoKeySource);
            }
            dialoguer::Password::new()
                .with_prompt("API key")
                .interact()
                .map_err(|err| Error::KeyRead {
                    source_name: "the terminal".into(),
                    source: std::io::Error::other(err.to_string()),
                })?
                .into_bytes()
        }
        KeySource::Stdin => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|source| Error::KeyRead {
                    source_name: "standard input".into(),
                    source,
                })?;
            trim_one_newline(bytes)
        }
        KeySource::File(path) => {
            let bytes = std::fs::read(path).map_err(|source| Error::KeyRead {
                source_name: format!("file {}", path.display()),
                source,
            })?;
            trim_one_newline(bytes)
        }
        KeySource::Env(name) => match std::env::var_os(name) {
            Some(value) => value.into_encoded_bytes(),
            None => {
                return Err(Error::InvalidApiKey {
                    reason: format!("environment variable {name} is not set"),
                });
            }
        },
    };
    ApiKey::new(bytes)
}

fn trim_one_newline(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.ends_with(b"\r\n") {
        bytes.truncate(bytes.len() - 2);
    } else if bytes.ends_with(b"\n") {
        bytes.pop();
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_a_plain_key() {
        let key = ApiKey::new(b"Ab3-_x.Y/+=".to_vec()).unwrap();
        assert_eq!(key.as_bytes(), b"Ab3-_x.Y/+=");
    }

    #[test]
    fn refuses_empty_spaced_control_and_binary_keys() {
        for (bytes, reason) in [
            (&b""[..], "empty"),
            (b"ab cd", "whitespace"),
            (b"abcd\n", "whitespace"),
            (b"ab\tcd", "whitespace"),
            (b"ab\x07cd", "control"),
            (b"ab\xffcd", "UTF-8"),
        ] {
            let err = ApiKey::new(bytes.to_vec()).unwrap_err().to_string();
            assert!(err.contains(reason), "{bytes:?}: {err}");
        }
    }

    #[test]
    fn fingerprint_is_the_sha256_prefix() {
        // sha256("abc") = ba7816bf...
        assert_eq!(fingerprint(b"abc"), "ba7816bf");
        assert_eq!(
            ApiKey::new(b"abc".to_vec()).unwrap().fingerprint(),
            "ba7816bf"
        );
    }

    #[test]
    fn debug_shows_no_key() {
        let key = ApiKey::new(b"s3cr3t-value".to_vec()).unwrap();
        let shown = format!("{key:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains(&key.fingerprint()));
    }

    #[test]
    fn one_trailing_newline_is_trimmed() {
        assert_eq!(trim_one_newline(b"key\n".to_vec()), b"key");
        assert_eq!(trim_one_newline(b"key\r\n".to_vec()), b"key");
        assert_eq!(trim_one_newline(b"key\n\n".to_vec()), b"key\n");
        assert_eq!(trim_one_newline(b"key".to_vec()), b"key");
    }
}
