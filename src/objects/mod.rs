//! The objects the plugin writes and reads, described once: their typed,
//! partial schemas (`schemas`); which of them the plugin owns, where they
//! live and who deletes them (`owned`); which API versions a cluster serves
//! and the choices that follow (`apis`); where an object is and how the
//! plugin wants it (`place`); pure readings of core objects (`mounts`,
//! `rollout_state`); and where KMS's Gateway collides with the other
//! Gateways on its gateway pods (`shared_gateway`). The manifests that
//! write the objects and the checks, steps and wizard that read them all go
//! through here, so they cannot disagree on a field, a name or an API
//! version.

pub mod apis;
pub mod gateway_api;
pub mod injection_record;
pub mod mounts;
pub mod owned;
pub mod place;
pub mod rollout_state;
pub mod schemas;
pub mod shared_gateway;
