//! The account a run gives of itself as it works. Steps tell a `Journal`
//! each thing the moment it is done, so a run cut off part-way has already
//! said what it did and a re-run can be read against it, and hand it the
//! objects they write for `-o`. Steps never print: the command that runs
//! them chooses the journal, and with it where and how that is shown.

use crate::error::Result;
use crate::terminal::output;

pub trait Journal {
    /// One thing done, or found already done, as kubectl words it:
    /// `secret/kms-apikey configured (server dry run)`.
    fn done(&self, line: &str);

    /// The objects a run writes (or would), rendered as `-o` asked.
    fn objects(&self, rendered: &str) -> Result<()>;
}

/// kubectl's way: what was done on stderr, the objects on stdout, so that
/// `-o yaml` can be piped to another command while a person reads the rest.
pub struct Terminal;

impl Journal for Terminal {
    fn done(&self, line: &str) {
        eprintln!("{line}");
    }

    fn objects(&self, rendered: &str) -> Result<()> {
        output::print(rendered)
    }
}
