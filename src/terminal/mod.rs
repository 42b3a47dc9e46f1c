//! What a person or a script reads: stdout's documents, the journal a run
//! tells what it did, progress on a terminal, and the wording helpers every
//! message uses.

pub mod journal;
pub mod output;
pub mod progress;
pub mod wording;
