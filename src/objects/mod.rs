//! The objects the plugin writes and reads, described once: their typed,
//! partial schemas (`schemas`), and which of them the plugin owns, where
//! they live and who deletes them (`owned`). The manifests that write them
//! and the checks, steps and wizard that read them all go through here, so
//! they cannot disagree on a field, a name or an API version.

pub mod apis;
pub mod mounts;
pub mod owned;
pub mod place;
pub mod rollout_state;
pub mod schemas;
