//! Backups of objects the plugin is about to change, so an operator can always
//! restore by hand with `kubectl apply -f BACKUP`. They live in a per-context
//! directory, `$XDG_STATE_HOME/kubectl-kms-sts/backups/<context>/` (default
//! `~/.local/state/...`), readable by the current user only (0700/0600).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::files::private_files::{self, Existing};

/// The default backup directory for a kubeconfig context.
pub fn default_dir(context: &str) -> PathBuf {
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    // Context names may hold '/' or ':' (e.g. EKS ARNs); keep them one path segment.
    let segment: String = context
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    state.join("kubectl-kms-sts/backups").join(segment)
}

/// Writes `content` as `<namespace>.<kind>.<name>.<UTC time>.yaml` in `dir`
/// and returns its path. Never overwrites an existing file.
pub fn save(dir: &Path, kind: &str, namespace: &str, name: &str, content: &str) -> Result<PathBuf> {
    private_files::create_dir(dir)?;
    let stamp = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%S%.fZ");
    let path = dir.join(format!(
        "{namespace}.{}.{name}.{stamp}.yaml",
        kind.to_lowercase()
    ));
    private_files::write(&path, content.as_bytes(), Existing::Refuse)?;
    Ok(path)
}

/// The most recently written backup of an object in `dir`, if any.
pub fn newest(dir: &Path, kind: &str, namespace: &str, name: &str) -> Result<Option<PathBuf>> {
    let prefix = format!("{namespace}.{}.{name}.", kind.to_lowercase());
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::LocalFile {
                action: "read",
                path: dir.to_owned(),
                source,
            });
        }
    };
    let newest = entries
        .flatten()
        .filter(|entry| {
            let file = entry.file_name();
            let file = file.to_string_lossy();
            file.starts_with(&prefix) && file.ends_with(".yaml")
        })
        .filter_map(|entry| Some((entry.metadata().ok()?.modified().ok()?, entry.path())))
        .max();
    Ok(newest.map(|(_, path)| path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_names_become_one_safe_segment() {
        let dir = default_dir("arn:aws:eks:us-east-1:1:cluster/prod");
        assert!(dir.ends_with("kubectl-kms-sts/backups/arn_aws_eks_us-east-1_1_cluster_prod"));
    }
}
