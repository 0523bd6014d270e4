//! The last 1000 events, for watches that start at a past `waitIndex`.
//!
//! Kept in a persistent vector (`imbl::Vector`), so that a snapshot view takes the
//! history in O(1) instead of copying 1000 pointers under the store's lock.

use std::sync::Arc;

use beacon_api::{Action, ErrorCode, EtcdError, Event};

use crate::HISTORY_EVENTS_MAX;

/// A bounded queue of events in index order (etcd's `EventHistory`).
#[derive(Clone, Debug, Default)]
pub(crate) struct History {
    events: imbl::Vector<Arc<Event>>,
    /// Index of the oldest event kept; 0 before any event.
    start_index: u64,
    /// Index of the newest event; 0 before any event.
    last_index: u64,
}

impl History {
    pub fn add(&mut self, event: Arc<Event>) {
        assert!(
            event.index() > self.last_index,
            "history must grow in index order: {} after {}",
            event.index(),
            self.last_index
        );
        if self.events.len() == HISTORY_EVENTS_MAX {
            self.events.pop_front();
        }
        self.last_index = event.index();
        self.events.push_back(event);
        self.start_index = self.events.front().map_or(0, |e| e.index());
    }

    /// The first event at or after `index` that a watcher on `key` would see;
    /// `Ok(None)` when it is still in the future, an error when it was dropped.
    pub fn scan(
        &self,
        key: &[u8],
        recursive: bool,
        index: u64,
    ) -> Result<Option<Arc<Event>>, EtcdError> {
        if index < self.start_index {
            return Err(EtcdError::request(
                ErrorCode::EventIndexCleared,
                format!(
                    "the requested history has been cleared [{}/{}]",
                    self.start_index, index
                ),
            ));
        }
        if index > self.last_index {
            return Ok(None);
        }
        let mut prefix = key.to_vec();
        if !prefix.ends_with(b"/") {
            prefix.push(b'/');
        }
        // Where the events at or after `index` start (the comparison never answers
        // `Equal`, so the search ends between two events).
        let first = self
            .events
            .binary_search_by(|e| {
                if e.index() < index {
                    std::cmp::Ordering::Less
                } else {
                    std::cmp::Ordering::Greater
                }
            })
            .unwrap_or_else(|at| at);
        let found = self.events.iter().skip(first).find(|e| {
            if e.refresh {
                return false;
            }
            let node_key = e.key();
            let mut wanted = node_key == key || (recursive && node_key.starts_with(&prefix));
            // A deleted or expired directory is news for every key below it. etcd
            // compares raw prefixes here, so "/foobar" also matches a deleted "/foo".
            if matches!(e.action, Action::Delete | Action::Expire) {
                if let Some(prev) = &e.prev_node {
                    wanted |= prev.dir && key.starts_with(prev.key.as_bytes());
                }
            }
            wanted
        });
        Ok(found.cloned())
    }

    pub fn events(&self) -> impl Iterator<Item = &Arc<Event>> {
        self.events.iter()
    }
}
