//! One run's context: the connection, the APIs the cluster serves, where the
//! run works (the two namespaces, and the cluster flags that hints repeat),
//! how it writes, and the journal its steps tell what they did. A command
//! builds it once from its lowered options and hands it to every step it
//! runs; it is a few references, copied freely.

use crate::cluster::apply::WriteOptions;
use crate::cluster::{Cluster, Target};
use crate::objects::apis::ServedApis;
use crate::terminal::journal::Journal;

static NO_CUSTOM_APIS: ServedApis = ServedApis::NONE;

#[derive(Clone, Copy)]
pub struct Run<'a> {
    pub cluster: &'a Cluster,
    pub target: &'a Target,
    pub served: &'a ServedApis,
    pub write: WriteOptions,
    pub journal: &'a dyn Journal,
}

impl<'a> Run<'a> {
    pub fn new(
        cluster: &'a Cluster,
        target: &'a Target,
        served: &'a ServedApis,
        write: WriteOptions,
        journal: &'a dyn Journal,
    ) -> Run<'a> {
        Run {
            cluster,
            target,
            served,
            write,
            journal,
        }
    }

    /// A run whose steps touch no custom object, so nothing needs
    /// discovering: it serves no custom API.
    pub fn without_discovery(
        cluster: &'a Cluster,
        target: &'a Target,
        write: WriteOptions,
        journal: &'a dyn Journal,
    ) -> Run<'a> {
        Run::new(cluster, target, &NO_CUSTOM_APIS, write, journal)
    }

    /// The same run as if the cluster served `served`: a fetch that runs
    /// before discovery has answered reads with the versions it guesses.
    pub fn serving<'b>(&self, served: &'b ServedApis) -> Run<'b>
    where
        'a: 'b,
    {
        Run { served, ..*self }
    }
}
