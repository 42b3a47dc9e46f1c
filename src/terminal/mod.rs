//! What a person or a script reads: stdout's documents, progress on a
//! terminal, and the wording helpers every message uses.

pub mod output;
pub mod progress;
pub mod wording;
