//! The pure half of discovery: what the registry says, what callers were told, and the
//! changes that take one to the other. No I/O and no clock: time is passed in.
//!
//! Two views are kept apart on purpose. `registry` is the latest truth read from the
//! store; `published` is what the consumer of the change stream holds. Every update
//! recomputes the difference, so a re-list after a history gap, a watch timeout or a
//! member failover emits exactly the changes the consumer is missing: none lost, none
//! repeated, in the order they are computed.
//!
//! A removal that would take away more than a configured share of the instances within
//! one grace period is *held*: the consumer keeps the instances until the removal has
//! been true for the whole grace period. A registry-side accident (a recursive delete,
//! every TTL lapsing while the registry was down) then does not empty every caller's
//! list at once, and instances that re-register in time are never removed at all.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use beacon_api::{Action, Event, NodeExtern};

use super::instance::{Instance, InstanceInfo};

/// A change to hand to the consumer.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// A new instance, or new information for a known key.
    Insert(Instance),
    /// The instance under this key is gone.
    Remove(String),
}

/// One key's change in a v3 watch answer.
#[derive(Clone, Copy, Debug)]
pub enum KeyChange<'a> {
    /// The key was put with this value.
    Put {
        /// The key.
        key: &'a [u8],
        /// Its new value.
        value: &'a [u8],
    },
    /// The key was deleted (or its lease expired).
    Delete {
        /// The key.
        key: &'a [u8],
    },
}

/// Discovery's two views and the removals held back.
#[derive(Debug)]
pub struct DiscoveryState {
    registry: BTreeMap<String, InstanceInfo>,
    published: BTreeMap<String, InstanceInfo>,
    /// Keys gone from the registry but still published, with when they may go.
    held: BTreeMap<String, Instant>,
    /// When recent removals were published, oldest first, for the share rule.
    recent_removals: VecDeque<Instant>,
    max_removed_share: f64,
    grace: Duration,
}

impl DiscoveryState {
    /// Empty views; a removal of more than `max_removed_share` of the set within `grace`
    /// waits for `grace`.
    pub fn new(max_removed_share: f64, grace: Duration) -> DiscoveryState {
        assert!(
            (0.0..=1.0).contains(&max_removed_share),
            "a share is between 0 and 1"
        );
        DiscoveryState {
            registry: BTreeMap::new(),
            published: BTreeMap::new(),
            held: BTreeMap::new(),
            recent_removals: VecDeque::new(),
            max_removed_share,
            grace,
        }
    }

    /// Replaces the registry view by a listing (the node of a recursive GET, or `None`
    /// when the prefix does not exist) and returns the changes to publish.
    pub fn relist(&mut self, root: Option<&NodeExtern>, now: Instant) -> Vec<Change> {
        self.registry.clear();
        if let Some(root) = root {
            collect_leaves(root, &mut self.registry);
        }
        self.reconcile(now)
    }

    /// Applies one watch event to the registry view and returns the changes to publish.
    pub fn apply(&mut self, event: &Event, now: Instant) -> Vec<Change> {
        let Some(node) = &event.node else {
            return Vec::new();
        };
        match event.action {
            Action::Get => return Vec::new(),
            Action::Set | Action::Create | Action::Update | Action::CompareAndSwap => {
                if node.dir {
                    // A directory made or re-timed: its children are unchanged.
                    return Vec::new();
                }
                // Keys and values read from JSON are always UTF-8.
                let key = node.key.to_string();
                match node
                    .value
                    .as_ref()
                    .and_then(|v| v.as_str())
                    .and_then(InstanceInfo::parse)
                {
                    Some(info) => {
                        self.registry.insert(key, info);
                    }
                    // A key that no longer holds an instance is not one.
                    None => {
                        self.registry.remove(&key);
                    }
                }
            }
            Action::Delete | Action::CompareAndDelete | Action::Expire => {
                let key = node.key.to_string();
                self.registry.remove(&key);
                // A directory takes everything under it along.
                let dir = format!("{}/", key.trim_end_matches('/'));
                self.registry.retain(|k, _| !k.starts_with(&dir));
            }
        }
        self.reconcile(now)
    }

    /// Replaces the registry view by a v3 listing (every key and value under the
    /// prefix) and returns the changes to publish.
    pub fn relist_pairs<'a>(
        &mut self,
        pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
        now: Instant,
    ) -> Vec<Change> {
        self.registry.clear();
        for (key, value) in pairs {
            if let Some((key, Some(info))) = instance(key, Some(value)) {
                self.registry.insert(key, info);
            }
        }
        self.reconcile(now)
    }

    /// Applies the events of one v3 watch answer (all of one revision, or a run of
    /// revisions while catching up) and returns the changes to publish.
    pub fn apply_keys<'a>(
        &mut self,
        changes: impl IntoIterator<Item = KeyChange<'a>>,
        now: Instant,
    ) -> Vec<Change> {
        for change in changes {
            let (key, value) = match change {
                KeyChange::Put { key, value } => (key, Some(value)),
                KeyChange::Delete { key } => (key, None),
            };
            match instance(key, value) {
                Some((key, Some(info))) => {
                    self.registry.insert(key, info);
                }
                // Deleted, or no longer holding an instance.
                Some((key, None)) => {
                    self.registry.remove(&key);
                }
                None => {}
            }
        }
        self.reconcile(now)
    }

    /// Publishes held removals whose grace period is over; call at [`Self::next_deadline`].
    pub fn tick(&mut self, now: Instant) -> Vec<Change> {
        self.reconcile(now)
    }

    /// When the earliest held removal may be published.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.held.values().min().copied()
    }

    /// The instances the consumer holds.
    pub fn published(&self) -> impl Iterator<Item = Instance> + '_ {
        self.published.iter().map(|(key, info)| Instance {
            key: key.clone(),
            info: info.clone(),
        })
    }

    /// How many published instances the registry no longer lists.
    pub fn held_count(&self) -> usize {
        self.held.len()
    }

    fn reconcile(&mut self, now: Instant) -> Vec<Change> {
        let mut changes = Vec::new();
        for (key, info) in &self.registry {
            self.held.remove(key);
            if self.published.get(key) != Some(info) {
                self.published.insert(key.clone(), info.clone());
                changes.push(Change::Insert(Instance {
                    key: key.clone(),
                    info: info.clone(),
                }));
            }
        }
        while self
            .recent_removals
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.grace)
        {
            self.recent_removals.pop_front();
        }
        let gone: Vec<String> = self
            .published
            .keys()
            .filter(|k| !self.registry.contains_key(*k))
            .cloned()
            .collect();
        let (due, undecided): (Vec<String>, Vec<String>) = gone
            .into_iter()
            .partition(|k| self.held.get(k).is_some_and(|t| *t <= now));
        let fresh: Vec<String> = undecided
            .into_iter()
            .filter(|k| !self.held.contains_key(k))
            .collect();
        if !fresh.is_empty() {
            // Everything removed lately, held, or about to go, against the set as it was
            // before those removals.
            let recent = self.recent_removals.len();
            let before = self.published.len() + recent;
            let removing = recent + self.held.len() + fresh.len();
            if removing as f64 > self.max_removed_share * before as f64 {
                for key in fresh {
                    self.held.insert(key, now + self.grace);
                }
            } else {
                changes.extend(self.remove(fresh, now));
            }
        }
        changes.extend(self.remove(due, now));
        debug_assert!(
            self.held.keys().all(|k| self.published.contains_key(k)),
            "a held removal is of a published instance"
        );
        changes
    }

    fn remove(&mut self, keys: Vec<String>, now: Instant) -> Vec<Change> {
        keys.into_iter()
            .map(|key| {
                self.held.remove(&key);
                self.published.remove(&key);
                self.recent_removals.push_back(now);
                Change::Remove(key)
            })
            .collect()
    }
}

/// A v3 key as a registry key, with the instance its value holds (`None` for a value
/// that holds none, or a deletion); no key at all for one that is not UTF-8, which no
/// registration writes.
fn instance(key: &[u8], value: Option<&[u8]>) -> Option<(String, Option<InstanceInfo>)> {
    let key = std::str::from_utf8(key).ok()?.to_string();
    let info = value
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(InstanceInfo::parse);
    Some((key, info))
}

fn collect_leaves(node: &NodeExtern, into: &mut BTreeMap<String, InstanceInfo>) {
    if node.dir {
        for child in &node.nodes {
            collect_leaves(child, into);
        }
    } else if let Some(info) = node
        .value
        .as_ref()
        .and_then(|v| v.as_str())
        .and_then(InstanceInfo::parse)
    {
        into.insert(node.key.to_string(), info);
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
