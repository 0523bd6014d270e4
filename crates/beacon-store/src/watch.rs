//! The watcher hub: who waits on which key, and which of them an event wakes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use beacon_api::{ByteString, Event};

use crate::path;

/// Where a watcher's events go. Called under the store's lock, so it must not block.
pub trait WatchSink: Send + Sync + 'static {
    /// Hands over one event; `false` when the receiver is gone or full, which ends the watch.
    fn deliver(&mut self, event: &Arc<Event>) -> bool;
}

/// Names one registered watcher, for removing it when its client leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WatcherId(pub u64);

struct Watcher {
    recursive: bool,
    stream: bool,
    since_index: u64,
    sink: Box<dyn WatchSink>,
}

/// Watchers by the key they watch, each list in registration order (etcd notifies in it).
#[derive(Default)]
pub(crate) struct Hub {
    by_key: HashMap<ByteString, BTreeMap<WatcherId, Watcher>>,
    key_of: HashMap<WatcherId, ByteString>,
    next_id: u64,
}

impl Hub {
    pub fn next_id(&mut self) -> WatcherId {
        self.next_id += 1;
        WatcherId(self.next_id)
    }

    pub fn add(
        &mut self,
        id: WatcherId,
        key: &[u8],
        recursive: bool,
        stream: bool,
        since_index: u64,
        sink: Box<dyn WatchSink>,
    ) {
        let watcher = Watcher {
            recursive,
            stream,
            since_index,
            sink,
        };
        self.by_key
            .entry(key.into())
            .or_default()
            .insert(id, watcher);
        self.key_of.insert(id, key.into());
    }

    pub fn remove(&mut self, id: WatcherId) {
        if let Some(key) = self.key_of.remove(&id) {
            if let Some(list) = self.by_key.get_mut(&key) {
                list.remove(&id);
                if list.is_empty() {
                    self.by_key.remove(&key);
                }
            }
        }
    }

    pub fn count(&self) -> usize {
        self.key_of.len()
    }

    /// Drops every watcher (their channels close), as etcd does on recovery.
    pub fn clear(&mut self) {
        self.by_key.clear();
        self.key_of.clear();
    }

    /// Wakes the watchers of every directory on the event's path, from the root down
    /// (etcd's `watcherHub.notify`, after the event entered the history).
    pub fn notify(&mut self, event: &Arc<Event>) {
        // Without watchers, a deep key need not be walked level by level.
        if self.by_key.is_empty() {
            return;
        }
        let key = event.key().to_vec();
        self.notify_watchers(event, b"/", false);
        let mut current = Vec::with_capacity(key.len());
        for part in path::components(&key) {
            current.push(b'/');
            current.extend_from_slice(part);
            self.notify_watchers(event, &current, false);
        }
    }

    /// Wakes the watchers on exactly `watch_key` (etcd's `notifyWatchers`); `deleted`
    /// forces it for watchers below a deleted directory.
    pub fn notify_watchers(&mut self, event: &Arc<Event>, watch_key: &[u8], deleted: bool) {
        if self.by_key.is_empty() {
            return;
        }
        let Some(list) = self.by_key.get_mut(watch_key) else {
            return;
        };
        let original_path = event.key() == watch_key;
        if !original_path && path::is_hidden_below(watch_key, event.key()) {
            return;
        }
        let mut finished = Vec::new();
        for (id, w) in list.iter_mut() {
            if (w.recursive || original_path || deleted) && event.index() >= w.since_index {
                let delivered = w.sink.deliver(event);
                // A long-poll watcher is done after one event; a stream watcher is done
                // only when its receiver can no longer keep up or has gone.
                if !w.stream || !delivered {
                    finished.push(*id);
                }
            }
        }
        for id in &finished {
            list.remove(id);
            self.key_of.remove(id);
        }
        if list.is_empty() {
            self.by_key.remove(watch_key);
        }
    }
}
