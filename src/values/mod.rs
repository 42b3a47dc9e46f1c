//! Value types: what the flags and objects carry, parsed and checked
//! (CRNs, API keys, certificates, durations, host names, the sidecar's
//! marks, proxy versions, Istio revisions, what a probe met) and the
//! default object names, with no knowledge of the cluster.

pub mod apikey;
pub mod certificate;
pub mod crn;
pub mod defaults;
pub mod duration;
pub mod exposure;
pub mod host;
pub mod probe;
pub mod proxy;
pub mod revision;
pub mod sidecar;
