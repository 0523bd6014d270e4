//! A test fixture: openraft's log storage over a member's simulated disk ([`Disk`]).
//! It keeps production's contract (beacon-raft's fjall store): an append is durable
//! before openraft is told it is flushed, truncation and purge leave no hole.

use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;

use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader};

use crate::durable::{lock, SharedDisk};
use crate::types::{Entry, LogId, SimConfig, Vote};

/// The log store of one member; clones share the disk (one is the log reader).
#[derive(Clone)]
pub struct SimLogStore {
    disk: SharedDisk,
}

impl SimLogStore {
    /// The log store over `disk`.
    pub fn new(disk: SharedDisk) -> SimLogStore {
        SimLogStore { disk }
    }
}

impl RaftLogReader<SimConfig> for SimLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        Ok(lock(&self.disk)
            .log
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(lock(&self.disk).vote)
    }
}

impl RaftLogStorage<SimConfig> for SimLogStore {
    type LogReader = SimLogStore;

    async fn get_log_state(&mut self) -> Result<LogState<SimConfig>, io::Error> {
        let disk = lock(&self.disk);
        let last = disk.log.values().next_back().map(|e| e.log_id());
        Ok(LogState {
            last_log_id: last.or(disk.purged),
            last_purged_log_id: disk.purged,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        lock(&self.disk).vote = Some(*vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        lock(&self.disk).committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(lock(&self.disk).committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<SimConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        {
            let mut disk = lock(&self.disk);
            for entry in entries {
                disk.log.insert(entry.index(), entry);
            }
        }
        callback.io_completed(Ok(()));
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.map_or(0, |l| l.index + 1);
        lock(&self.disk).log.split_off(&from);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let mut disk = lock(&self.disk);
        disk.log = disk.log.split_off(&(log_id.index + 1));
        disk.purged = Some(log_id);
        Ok(())
    }
}
