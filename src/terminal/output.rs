//! Machine-readable output: the `-o json|yaml` flag and the printers behind
//! it. Everything printed here goes to stdout; diagnostics go to stderr.

use serde::Serialize;
use std::io::Write;

use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

/// Serialises `value` in `format`, ending with a newline.
pub fn render<T: Serialize>(value: &T, format: Format) -> String {
    match format {
        Format::Json => {
            let mut text =
                serde_json::to_string_pretty(value).expect("plugin output types serialise to JSON");
            text.push('\n');
            text
        }
        Format::Yaml => {
            let mut text =
                serde_saphyr::to_string(value).expect("plugin output types serialise to YAML");
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text
        }
    }
}

/// Writes `text` to stdout. A reader that stopped early (`| head`) closes
/// the pipe; that ends the output quietly, as it does for kubectl, instead of
/// failing the command after its work is done.
pub fn print(text: &str) -> Result<(), Error> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::StandardOutput(err)),
        _ => Ok(()),
    }
}
