//! beacon-sim: a deterministic simulation of a Beacon cluster, for tests only.
//!
//! The library holds the simulated seams the real node (`beacon_raft::RaftNode`) runs
//! on under turmoil: the peer network ([`net`]) and the disk ([`disk`]). The simulation
//! itself is the integration test in `tests/simulation/`: openraft with Beacon's
//! settings and state machine (`beacon_store::Store`), over turmoil's simulated network,
//! clock and host crashes. turmoil turns on tokio's `test-util`, so no production crate
//! depends on this one (`tests/dependencies.rs`). `docs/SIMULATION.md` says what is
//! simulated and how to run it.

pub mod disk;
pub mod net;
