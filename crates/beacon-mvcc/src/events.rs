//! The keyspace's history read as watch events: every change in a span of revisions,
//! in revision order, and the value a key had before a change (a watcher's `prev_kv`).
//!
//! There is no event log beside the values: a revision's changes are its values (a put's
//! value, a delete's tombstone), so a watcher that fell behind reads them back from the
//! store, as far back as the last compaction.

use beacon_proto::mvccpb::event::EventType;
use beacon_proto::mvccpb::{Event, KeyValue};

use crate::store::Mvcc;
use crate::{MvccError, Revision};

impl Mvcc {
    /// Every change with a main revision in `from..=to`, in revision order (`from`
    /// not below the compacted revision: older changes may be gone).
    pub fn changes(&self, from: i64, to: i64) -> Result<Vec<(Revision, KeyValue)>, MvccError> {
        if from < self.compacted {
            return Err(MvccError::Compacted);
        }
        self.stored(from, to)
    }

    /// Every stored value with a main revision in `from..=to`, in revision order, what
    /// is not written yet included.
    pub(crate) fn stored(
        &self,
        from: i64,
        to: i64,
    ) -> Result<Vec<(Revision, KeyValue)>, MvccError> {
        let (lo, hi) = (
            Revision { main: from, sub: 0 },
            Revision {
                main: to.saturating_add(1),
                sub: 0,
            },
        );
        let mut found: std::collections::BTreeMap<Revision, KeyValue> = self
            .values
            .scan(lo, hi)
            .map_err(|e| MvccError::Storage(e.0))?
            .into_iter()
            .collect();
        // What is not written yet overrides what is (a compaction's removals too), the
        // newer over the older.
        let taken = self.writing.iter().map(|(_, w)| &**w);
        for layer in taken.chain([&self.pending]) {
            for (rev, kv) in layer.range(lo..hi) {
                match kv {
                    Some(kv) => found.insert(*rev, kv.clone()),
                    None => found.remove(rev),
                };
            }
        }
        Ok(found.into_iter().collect())
    }

    /// The watch event of the change `kv` made at `rev`; with the key's value before it
    /// if `prev_kv` (absent for a creation, or when that value is compacted away).
    pub fn event(&self, kv: KeyValue, prev_kv: bool) -> Result<Event, MvccError> {
        let deleted = kv.version == 0;
        let before = kv.mod_revision - 1;
        let wanted = prev_kv && (deleted || kv.create_revision != kv.mod_revision);
        // etcd reads the key at the revision before: a compacted one is an error there,
        // which leaves the field unset.
        let prev = if wanted && before >= self.compacted {
            match self.index.get(&kv.key, before) {
                Some(rev) => Some(self.value(rev)?),
                None => None,
            }
        } else {
            None
        };
        Ok(Event {
            r#type: if deleted {
                EventType::Delete as i32
            } else {
                EventType::Put as i32
            },
            kv: Some(kv),
            prev_kv: prev,
        })
    }
}
