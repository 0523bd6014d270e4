//! The node's seams: what it is built on that a simulation swaps out. Production picks
//! the real ones in one place, [`Seams::production`]; `beacon-sim` picks simulated
//! ones and runs the same node over them.
//!
//! Each seam is a trait object, so the node, and the server above it, name one node
//! type whatever it runs on.

use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::disk::{Disk, StdDisk};
use crate::observer::{InjectedBug, NodeObserver};
use crate::peer::{PeerNet, TcpNet};

/// What a node runs on.
///
/// Non-exhaustive: a simulation starts from [`Seams::production`] and replaces the
/// fields it simulates (`seams.net = ...`).
#[derive(Clone)]
#[non_exhaustive]
pub struct Seams {
    /// How the node's peer client reaches the other members (`peer::PeerNet`).
    pub net: Arc<dyn PeerNet>,
    /// The data directory's disk: the log database, the files in `member/`, and where
    /// blocking disk work runs.
    pub disk: Arc<dyn Disk>,
    /// Seeds openraft's random draws (election timeouts, the tick's phase) in the
    /// node's tasks (`runtime::with_seed`), so a simulated run replays; `None` draws
    /// from the operating system.
    pub rng_seed: Option<u64>,
    /// The wall clock: the leader's expiry ticker proposes its time, and the server
    /// stamps TTLs with it (`RaftNode::now_ns`).
    pub clock: Arc<dyn Clock>,
    /// A simulation's observer of what the state machine applies, builds and installs.
    pub observer: Option<Arc<dyn NodeObserver>>,
    /// A bug to inject, for a simulation's negative control only.
    pub bug: Option<InjectedBug>,
}

impl Seams {
    /// The real ones: fjall and files under the data directory, TCP, tokio's clock, the
    /// system's wall clock, random draws seeded by the OS.
    pub fn production() -> Seams {
        Seams {
            net: Arc::new(TcpNet),
            disk: Arc::new(StdDisk::default()),
            rng_seed: None,
            clock: Arc::new(SystemClock),
            observer: None,
            bug: None,
        }
    }
}

impl std::fmt::Debug for Seams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seams").finish_non_exhaustive()
    }
}
