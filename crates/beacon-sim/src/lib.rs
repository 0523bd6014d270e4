//! beacon-sim: a deterministic simulation of a Beacon cluster, for tests only.
//!
//! The simulation itself is the integration test in `tests/simulation/`: openraft with
//! Beacon's settings and state machine (`beacon_store::Store`), over turmoil's simulated
//! network, clock and host crashes. This library holds the simulated seams the real
//! node (`beacon_raft::RaftNode::open_with`) runs on: so far the disk ([`disk`]).
//! turmoil stays a dev-dependency. `docs/SIMULATION.md` says what is simulated and how
//! to run it.

pub mod disk;
