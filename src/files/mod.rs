//! Files the plugin keeps on this machine: the wizard's answers, backups of
//! what it replaces, and the owner-only way both are written.

pub mod answers;
pub mod backup;
pub mod private_files;
