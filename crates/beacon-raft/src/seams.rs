//! The node's seams: what it is built on that a simulation swaps out. Production picks
//! the real ones in one place, [`Seams::production`]; `beacon-sim` picks simulated
//! ones and runs the same node over them.
//!
//! Each seam is a trait object, so the node, and the server above it, name one node
//! type whatever it runs on.

use std::sync::Arc;

use crate::disk::{Disk, StdDisk};

/// What a node runs on. Start from [`Seams::production`] and replace the seams to
/// simulate (it is `non_exhaustive`, so adding a seam breaks no caller).
#[derive(Clone)]
#[non_exhaustive]
pub struct Seams {
    /// The data directory's disk: the log database, the files in `member/`, and where
    /// blocking disk work runs.
    pub disk: Arc<dyn Disk>,
    // Each seam is added here by the change that introduces it: the disk (log store and
    // snapshot directory), the peer network, and the clock.
}

impl Seams {
    /// The real ones: fjall and files under the data directory, TCP, tokio's clock.
    pub fn production() -> Seams {
        Seams {
            disk: Arc::new(StdDisk),
        }
    }
}

impl std::fmt::Debug for Seams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seams").finish_non_exhaustive()
    }
}
