//! Deterministic simulation of a Beacon cluster: the real `RaftNode` (openraft, the log
//! store, the state machine, snapshots, the peer API over HTTP, membership, expiry) on
//! turmoil's simulated hosts, network and clock, over a simulated disk that loses what
//! was not synced when power is lost and fails writes and syncs. Each seed is one run:
//! clients set, quorum-read, compare-and-swap, delete and set keys with a TTL while a
//! nemesis partitions, holds, slows, crashes, stops and replaces members; then the
//! history must be linearizable (porcupine), every member must have applied the same
//! entry at each index, watchers must have seen the same events in order without gaps,
//! TTL keys must have expired, and the members must converge on the same store. The
//! stall check (`stall`) runs steady writes without faults over disks whose log
//! compaction and snapshot writes are slow, and counts the writes that waited on them.
//! docs/SIMULATION.md says what is (not) simulated and how to run it.
//!
//! Nothing here copies production logic: the node is beacon-raft's, chosen through its
//! `Seams`; this crate supplies only the simulated seams, the workload and the checks.

pub mod campaign;
pub mod check;
pub mod client;
pub mod cluster;
pub mod conn;
pub mod disk;
pub mod member;
// The register model of the process-level linearizability test, shared rather than
// copied, so that both judge histories by the same rules.
#[path = "../../beacon-server/tests/linearizability/model.rs"]
pub mod model;
pub mod nemesis;
pub mod net;
pub mod observe;
pub mod run;
pub mod seams;
pub mod stall;
pub mod wire;

pub use run::{run, Options, Report};
