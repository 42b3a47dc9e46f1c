//! Files that may hold anything sensitive (backups, answers, istioctl's
//! inputs) are created readable by their owner only: directories 0700, files
//! 0600 on Unix. On Windows the user's own profile directories already keep
//! them private, and the files are created plainly.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Creates `dir` (and its parents) accessible to the owner only.
pub fn create_dir(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|source| Error::LocalFile {
        action: "create",
        path: dir.to_owned(),
        source,
    })
}

/// How `write` treats an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    Refuse,
    Replace,
}

/// Writes `content` to a file readable by the owner only.
pub fn write(path: &Path, content: &[u8], existing: Existing) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    match existing {
        Existing::Refuse => options.create_new(true),
        Existing::Replace => options.create(true).truncate(true),
    };
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .and_then(|mut file| file.write_all(content))
        .map_err(|source| Error::LocalFile {
            action: "write",
            path: path.to_owned(),
            source,
        })
}
