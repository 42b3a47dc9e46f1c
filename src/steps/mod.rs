//! The runbook's steps as library code, one module each: a plain options
//! struct, a `fetch` that reads what the step depends on into a snapshot in
//! as few concurrent batches as the dependencies allow, a pure `plan` that
//! decides every write (with its field-level change) or lists every unmet
//! prerequisite, and an `apply` that writes the plan. The subcommands are
//! thin shells over these, and the wizard composes the four plans before its
//! one confirmation. `uninstall` takes them back out in the same shape.

pub mod apikey;
pub mod exposure;
pub mod identity;
pub mod injection;
pub mod uninstall;
