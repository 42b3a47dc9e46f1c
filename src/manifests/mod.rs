//! What the plugin writes, computed by pure functions from typed inputs: the
//! runbook's YAML files (steps 5-13) done right for the APIs the cluster serves.

pub mod exposure;
pub mod gateway_api;
pub mod identity;
