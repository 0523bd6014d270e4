//! The keyspace: the key index, every revision's value (on disk, see `values.rs`), and
//! the current and compacted revisions; Range, Put, DeleteRange and Compact.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use beacon_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use beacon_proto::etcdserverpb::{
    CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse, ResponseHeader,
};
use beacon_proto::mvccpb::KeyValue;

use crate::index::{KeyIndex, KeyRange};
use crate::lease::{LeaseRecord, Leases};
use crate::values::{Changes, MemValues, StorageError, Values};
use crate::{MvccError, Revision};

/// Values written (`Some`) or forgotten (`None`), by revision.
pub(crate) type ValueChanges = BTreeMap<Revision, Option<KeyValue>>;

/// etcd's v3 keyspace.
pub struct Mvcc {
    pub(crate) index: KeyIndex,
    /// Every committed revision's value (a tombstone's: the key alone).
    pub(crate) values: Arc<dyn Values>,
    /// Values written (`Some`) or forgotten (`None`) since the last commit; reads look
    /// here first.
    pub(crate) pending: BTreeMap<Revision, Option<KeyValue>>,
    /// Changes taken for writing (`take_changes`) and not yet known written, oldest
    /// first, each with the applied index it was taken at: reads look here after
    /// `pending`, newest first, so the writes go on without the keyspace's lock and
    /// while the next batches apply.
    pub(crate) writing: VecDeque<(u64, Arc<ValueChanges>)>,
    pub(crate) leases: Leases,
    /// Leases granted, renewed (`Some`) or revoked (`None`) since the last commit.
    pub(crate) pending_leases: BTreeMap<i64, Option<LeaseRecord>>,
    /// The last write transaction's main revision; an empty keyspace is at 1.
    pub(crate) current: i64,
    /// Reads before this are refused; -1 until the first compaction (so compacting to
    /// 0 succeeds, as etcd's does).
    pub(crate) compacted: i64,
    /// The alarms raised (`alarm.rs`), and whether they changed since the last commit.
    pub(crate) alarms: crate::alarm::Alarms,
    pub(crate) alarms_changed: bool,
    /// Users, roles and whether auth is on (`auth.rs`), and whether they changed since
    /// the last commit.
    pub(crate) auth: beacon_auth::AuthStore,
    pub(crate) auth_changed: bool,
}

impl Default for Mvcc {
    /// An empty keyspace over values in memory.
    fn default() -> Self {
        Mvcc::empty(Arc::<MemValues>::default())
    }
}

impl std::fmt::Debug for Mvcc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mvcc")
            .field("current", &self.current)
            .field("compacted", &self.compacted)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

/// A response header with only the revision; the server fills in the rest.
pub(crate) fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..ResponseHeader::default()
    })
}

impl Mvcc {
    /// An empty keyspace over `values`, which must hold none.
    pub fn empty(values: Arc<dyn Values>) -> Mvcc {
        Mvcc {
            index: KeyIndex::default(),
            values,
            pending: BTreeMap::new(),
            writing: VecDeque::new(),
            leases: Leases::default(),
            pending_leases: BTreeMap::new(),
            current: 1,
            compacted: -1,
            alarms: crate::alarm::Alarms::new(),
            alarms_changed: false,
            auth: beacon_auth::AuthStore::default(),
            auth_changed: false,
        }
    }

    /// The keyspace `values` holds: `stored` is every value in it, in revision order,
    /// from which the key index is rebuilt; `leases` every lease, to which the live keys
    /// naming them are attached again; `current` and `compacted` as last committed.
    pub fn open(
        values: Arc<dyn Values>,
        stored: impl IntoIterator<Item = Result<(Revision, KeyValue), StorageError>>,
        leases: impl IntoIterator<Item = LeaseRecord>,
        current: i64,
        compacted: i64,
    ) -> Result<Mvcc, StorageError> {
        let mut mvcc = Mvcc::empty(values);
        for rec in leases {
            mvcc.leases.insert(rec);
        }
        for item in stored {
            let (rev, kv) = item?;
            if rev.main > current {
                return Err(StorageError(format!(
                    "a value at revision {rev:?}, past the current revision {current}"
                )));
            }
            let tombstone = kv.version == 0;
            mvcc.index.record(&kv.key, rev, tombstone, kv.value.len());
            if tombstone {
                mvcc.leases.detach(&kv.key);
            } else {
                mvcc.leases.attach(&kv.key, kv.lease);
            }
        }
        mvcc.current = current;
        mvcc.compacted = compacted;
        Ok(mvcc)
    }

    /// Restores the alarms a reopened keyspace had raised (its state holds them).
    pub fn restore_alarms(&mut self, alarms: impl IntoIterator<Item = (u64, i32)>) {
        self.alarms = alarms.into_iter().collect();
    }

    /// What the keyspace stores, by the space quota's count: each revision's key and
    /// value plus [`crate::REVISION_OVERHEAD_BYTES`] (what compaction forgets is taken
    /// off), and the keyspace's own state record, counted as one more revision, so an
    /// empty keyspace is not nothing.
    pub fn stored_bytes(&self) -> u64 {
        self.index.stored_bytes() + crate::REVISION_OVERHEAD_BYTES
    }

    /// Writes what changed since the last commit to the values store, with
    /// `applied_index`, in one atomic write.
    pub fn commit(&mut self, applied_index: u64) -> Result<(), StorageError> {
        let changes = self.take_changes(applied_index);
        self.values.commit(&changes)?;
        self.written(applied_index);
        Ok(())
    }

    /// What changed since the last commit, for the caller to write to [`Self::values`]
    /// (outside the keyspace's lock, while more batches apply) and then confirm with
    /// [`Self::written`]; reads see the changes meanwhile. `applied_index` must grow
    /// from one call to the next.
    pub fn take_changes(&mut self, applied_index: u64) -> Changes {
        if let Some((last, _)) = self.writing.back() {
            assert!(
                *last < applied_index,
                "changes are taken in the order they apply"
            );
        }
        let writes = Arc::new(std::mem::take(&mut self.pending));
        if !writes.is_empty() {
            self.writing.push_back((applied_index, Arc::clone(&writes)));
        }
        self.alarms_changed = false;
        let auth = std::mem::take(&mut self.auth_changed).then(|| self.auth.state().clone());
        Changes {
            auth,
            writes,
            leases: std::mem::take(&mut self.pending_leases),
            current: self.current,
            compacted: self.compacted,
            alarms: self.alarms.iter().copied().collect(),
            applied_index,
        }
    }

    /// The changes taken up to `applied_index` are in the values store.
    pub fn written(&mut self, applied_index: u64) {
        while self
            .writing
            .front()
            .is_some_and(|(taken, _)| *taken <= applied_index)
        {
            self.writing.pop_front();
        }
    }

    /// The applied indexes of the changes taken and not yet confirmed written, oldest
    /// first.
    pub fn unwritten(&self) -> impl ExactSizeIterator<Item = u64> + '_ {
        self.writing.iter().map(|(taken, _)| *taken)
    }

    /// The values store.
    pub fn values(&self) -> Arc<dyn Values> {
        Arc::clone(&self.values)
    }

    /// The value at `rev`, which the index lists, so it must exist.
    pub(crate) fn value(&self, rev: Revision) -> Result<KeyValue, MvccError> {
        let taken = || self.writing.iter().rev().find_map(|(_, w)| w.get(&rev));
        let found = match self.pending.get(&rev).or_else(taken) {
            Some(pending) => pending.clone(),
            None => self.values.get(rev).map_err(|e| MvccError::Storage(e.0))?,
        };
        found.ok_or_else(|| MvccError::Storage(format!("no value at revision {rev:?}")))
    }

    /// The revision of the last change.
    pub fn current_revision(&self) -> i64 {
        self.current
    }

    /// The revision of the last compaction (-1 before any).
    pub fn compact_revision(&self) -> i64 {
        self.compacted
    }

    /// A read, at the request's revision or the current one. The header carries the
    /// current revision, whichever revision was read.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, MvccError> {
        let mut resp = self.range_at(req, self.current)?;
        resp.header = header(self.current);
        Ok(resp)
    }

    /// A read as of `current` (a write transaction's reads see its own writes).
    pub(crate) fn range_at(
        &self,
        req: &RangeRequest,
        current: i64,
    ) -> Result<RangeResponse, MvccError> {
        let at = if req.revision <= 0 {
            current
        } else {
            req.revision
        };
        if at > current {
            return Err(MvccError::FutureRevision);
        }
        if at < self.compacted {
            return Err(MvccError::Compacted);
        }
        let range = KeyRange::new(&req.key, &req.range_end);
        if req.count_only {
            // etcd counts in its index alone (`CountRevisions`), before and regardless of
            // the filters, limit and sort: no value is read, so a count of a million keys
            // is not a million disk reads under the keyspace's read lock.
            return Ok(RangeResponse {
                header: None,
                kvs: Vec::new(),
                more: false,
                count: self.index.count(&range, at) as i64,
            });
        }
        let mut found = self.index.range(&range, at);
        let count = found.len() as i64;
        // Without an order or a filter, etcd reads one key past the limit, in key order,
        // and sorts (by a target other than the key) only what it read.
        let filtered = req.min_mod_revision != 0
            || req.max_mod_revision != 0
            || req.min_create_revision != 0
            || req.max_create_revision != 0;
        if req.sort_order == SortOrder::None as i32 && !filtered && req.limit > 0 {
            found.truncate(
                usize::try_from(req.limit)
                    .unwrap_or(usize::MAX)
                    .saturating_add(1),
            );
        }
        let mut kvs = Vec::with_capacity(found.len());
        for (_, rev) in found {
            kvs.push(self.value(rev)?);
        }
        kvs.retain(|kv| {
            (req.min_mod_revision == 0 || kv.mod_revision >= req.min_mod_revision)
                && (req.max_mod_revision == 0 || kv.mod_revision <= req.max_mod_revision)
                && (req.min_create_revision == 0 || kv.create_revision >= req.min_create_revision)
                && (req.max_create_revision == 0 || kv.create_revision <= req.max_create_revision)
        });
        sort(&mut kvs, req);
        let mut more = false;
        // etcd truncates the values it read.
        if req.limit > 0 && kvs.len() as i64 > req.limit {
            kvs.truncate(req.limit as usize);
            more = true;
        }
        if req.keys_only {
            for kv in &mut kvs {
                kv.value.clear();
            }
        }
        Ok(RangeResponse {
            header: None,
            kvs,
            more,
            count,
        })
    }

    /// The live value of `key` as of `current`.
    pub(crate) fn live(&self, key: &[u8], current: i64) -> Result<Option<KeyValue>, MvccError> {
        self.index
            .get(key, current)
            .map(|rev| self.value(rev))
            .transpose()
    }

    /// Puts `req` at `rev` (checked by `check_put` first).
    pub(crate) fn put_at(
        &mut self,
        req: &PutRequest,
        rev: Revision,
    ) -> Result<PutResponse, MvccError> {
        let prev = self.live(&req.key, rev.main)?;
        let (create_revision, version) = match &prev {
            Some(p) => (p.create_revision, p.version + 1),
            None => (rev.main, 1),
        };
        // `check_put` has made sure a previous value exists where these ask for it.
        let value = match (&prev, req.ignore_value) {
            (Some(p), true) => p.value.clone(),
            _ => req.value.clone(),
        };
        let lease = match (&prev, req.ignore_lease) {
            (Some(p), true) => p.lease,
            _ => req.lease,
        };
        let kv = KeyValue {
            key: req.key.clone(),
            create_revision,
            mod_revision: rev.main,
            version,
            value,
            lease,
        };
        self.leases.attach(&req.key, lease);
        self.index.record(&req.key, rev, false, kv.value.len());
        self.pending.insert(rev, Some(kv));
        Ok(PutResponse {
            header: header(rev.main),
            prev_kv: prev.filter(|_| req.prev_kv),
        })
    }

    /// Whether a put can apply as of `current`: `ignore_value`/`ignore_lease` need a
    /// value to keep, and a lease must exist.
    pub(crate) fn check_put(&self, req: &PutRequest, current: i64) -> Result<(), MvccError> {
        if (req.ignore_value || req.ignore_lease) && self.live(&req.key, current)?.is_none() {
            return Err(MvccError::KeyNotFound);
        }
        if !req.ignore_lease && req.lease != 0 && !self.leases.contains(req.lease) {
            return Err(MvccError::LeaseNotFound);
        }
        Ok(())
    }

    /// Deletes the live keys of `req`'s range, numbering the deletes from `rev`;
    /// returns the response and how many revisions it used.
    pub(crate) fn delete_at(
        &mut self,
        req: &DeleteRangeRequest,
        rev: Revision,
    ) -> Result<(DeleteRangeResponse, i64), MvccError> {
        let range = KeyRange::new(&req.key, &req.range_end);
        let doomed: Vec<(Vec<u8>, Revision)> = self
            .index
            .range(&range, rev.main)
            .into_iter()
            .map(|(k, r)| (k.to_vec(), r))
            .collect();
        let mut prev_kvs = Vec::new();
        for (i, (key, was)) in doomed.iter().enumerate() {
            let at = Revision {
                main: rev.main,
                sub: rev.sub + i as i64,
            };
            if req.prev_kv {
                prev_kvs.push(self.value(*was)?);
            }
            self.tombstone(key, at);
        }
        let deleted = doomed.len() as i64;
        Ok((
            DeleteRangeResponse {
                header: None,
                deleted,
                prev_kvs,
            },
            deleted,
        ))
    }

    /// A single Put: its own write transaction.
    pub fn put(&mut self, req: &PutRequest) -> Result<PutResponse, MvccError> {
        self.check_put(req, self.current)?;
        let rev = Revision {
            main: self.current + 1,
            sub: 0,
        };
        let resp = self.put_at(req, rev)?;
        self.current = rev.main;
        Ok(resp)
    }

    /// A single DeleteRange: its own write transaction, which takes a revision only if
    /// it deleted something.
    pub fn delete_range(
        &mut self,
        req: &DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, MvccError> {
        let rev = Revision {
            main: self.current + 1,
            sub: 0,
        };
        let (mut resp, deleted) = self.delete_at(req, rev)?;
        if deleted > 0 {
            self.current = rev.main;
        }
        resp.header = header(self.current);
        Ok(resp)
    }

    /// Forgets the history before `revision` (keeping each live key's value at it).
    pub fn compact(&mut self, revision: i64) -> Result<CompactionResponse, MvccError> {
        if revision <= self.compacted {
            return Err(MvccError::Compacted);
        }
        if revision > self.current {
            return Err(MvccError::FutureRevision);
        }
        self.compacted = revision;
        for rev in self.index.compact(revision) {
            self.pending.insert(rev, None);
        }
        Ok(CompactionResponse {
            header: header(self.current),
        })
    }
}

/// Sorts as etcd 3.4 does: by the request's target, ascending when a target other than
/// the key is named without an order; ties keep key order in either direction (etcd's
/// sort of a short list is an insertion sort, which keeps them; of a long one, no order
/// is defined).
fn sort(kvs: &mut [KeyValue], req: &RangeRequest) {
    use std::cmp::Ordering;
    let target = SortTarget::try_from(req.sort_target).unwrap_or(SortTarget::Key);
    let mut order = SortOrder::try_from(req.sort_order).unwrap_or(SortOrder::None);
    if order == SortOrder::None && target != SortTarget::Key {
        order = SortOrder::Ascend;
    }
    let by = |a: &KeyValue, b: &KeyValue| -> Ordering {
        match target {
            SortTarget::Key => a.key.cmp(&b.key),
            SortTarget::Version => a.version.cmp(&b.version),
            SortTarget::Create => a.create_revision.cmp(&b.create_revision),
            SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
            SortTarget::Value => a.value.cmp(&b.value),
        }
    };
    match order {
        SortOrder::None => {}
        SortOrder::Ascend => kvs.sort_by(by),
        SortOrder::Descend => kvs.sort_by(|a, b| by(b, a)),
    }
}
