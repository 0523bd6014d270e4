//! The keyspace: the key index, every revision's value, and the current and compacted
//! revisions; Range, Put, DeleteRange and Compact.

use std::collections::BTreeMap;

use beacon_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use beacon_proto::etcdserverpb::{
    CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse, ResponseHeader,
};
use beacon_proto::mvccpb::KeyValue;

use crate::index::{KeyIndex, KeyRange};
use crate::{MvccError, Revision};

/// etcd's v3 keyspace.
#[derive(Debug)]
pub struct Mvcc {
    pub(crate) index: KeyIndex,
    /// Every revision's value (a tombstone's: the key alone).
    pub(crate) values: BTreeMap<Revision, KeyValue>,
    /// The last write transaction's main revision; an empty keyspace is at 1.
    pub(crate) current: i64,
    /// Reads before this are refused; -1 until the first compaction (so compacting to
    /// 0 succeeds, as etcd's does).
    pub(crate) compacted: i64,
}

impl Default for Mvcc {
    fn default() -> Self {
        Self {
            index: KeyIndex::default(),
            values: BTreeMap::new(),
            current: 1,
            compacted: -1,
        }
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
        let found = self.index.range(&range, at);
        let count = found.len() as i64;
        let mut kvs: Vec<KeyValue> = found
            .into_iter()
            .map(|(_, rev)| self.values[&rev].clone())
            .filter(|kv| {
                (req.min_mod_revision == 0 || kv.mod_revision >= req.min_mod_revision)
                    && (req.max_mod_revision == 0 || kv.mod_revision <= req.max_mod_revision)
                    && (req.min_create_revision == 0
                        || kv.create_revision >= req.min_create_revision)
                    && (req.max_create_revision == 0
                        || kv.create_revision <= req.max_create_revision)
            })
            .collect();
        sort(&mut kvs, req);
        let mut more = false;
        if req.limit > 0 && kvs.len() as i64 > req.limit {
            kvs.truncate(req.limit as usize);
            more = true;
        }
        if req.count_only {
            kvs.clear();
        } else if req.keys_only {
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
    pub(crate) fn live(&self, key: &[u8], current: i64) -> Option<&KeyValue> {
        self.index.get(key, current).map(|rev| &self.values[&rev])
    }

    /// Puts `req` at `rev` (checked by `check_put` first).
    pub(crate) fn put_at(&mut self, req: &PutRequest, rev: Revision) -> PutResponse {
        let prev = self.live(&req.key, rev.main).cloned();
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
        self.index.record(&req.key, rev, false);
        self.values.insert(rev, kv);
        PutResponse {
            header: header(rev.main),
            prev_kv: prev.filter(|_| req.prev_kv),
        }
    }

    /// Whether a put can apply as of `current`: `ignore_value`/`ignore_lease` need a
    /// value to keep, and a lease must exist.
    pub(crate) fn check_put(
        &self,
        req: &PutRequest,
        current: i64,
        lease_exists: &dyn Fn(i64) -> bool,
    ) -> Result<(), MvccError> {
        if (req.ignore_value || req.ignore_lease) && self.live(&req.key, current).is_none() {
            return Err(MvccError::KeyNotFound);
        }
        if !req.ignore_lease && req.lease != 0 && !lease_exists(req.lease) {
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
    ) -> (DeleteRangeResponse, i64) {
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
                prev_kvs.push(self.values[was].clone());
            }
            self.index.record(key, at, true);
            self.values.insert(
                at,
                KeyValue {
                    key: key.clone(),
                    mod_revision: rev.main,
                    ..KeyValue::default()
                },
            );
        }
        let deleted = doomed.len() as i64;
        (
            DeleteRangeResponse {
                header: None,
                deleted,
                prev_kvs,
            },
            deleted,
        )
    }

    /// A single Put: its own write transaction.
    pub fn put(
        &mut self,
        req: &PutRequest,
        lease_exists: &dyn Fn(i64) -> bool,
    ) -> Result<PutResponse, MvccError> {
        self.check_put(req, self.current, lease_exists)?;
        let rev = Revision {
            main: self.current + 1,
            sub: 0,
        };
        let resp = self.put_at(req, rev);
        self.current = rev.main;
        Ok(resp)
    }

    /// A single DeleteRange: its own write transaction, which takes a revision only if
    /// it deleted something.
    pub fn delete_range(&mut self, req: &DeleteRangeRequest) -> DeleteRangeResponse {
        let rev = Revision {
            main: self.current + 1,
            sub: 0,
        };
        let (mut resp, deleted) = self.delete_at(req, rev);
        if deleted > 0 {
            self.current = rev.main;
        }
        resp.header = header(self.current);
        resp
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
            self.values.remove(&rev);
        }
        Ok(CompactionResponse {
            header: header(self.current),
        })
    }
}

/// Sorts as etcd does: by the request's target, ascending when a target other than the
/// key is named without an order; the key order of the index otherwise.
fn sort(kvs: &mut [KeyValue], req: &RangeRequest) {
    let target = SortTarget::try_from(req.sort_target).unwrap_or(SortTarget::Key);
    let mut order = SortOrder::try_from(req.sort_order).unwrap_or(SortOrder::None);
    if order == SortOrder::None && target != SortTarget::Key {
        order = SortOrder::Ascend;
    }
    if order == SortOrder::None {
        return;
    }
    // Stable, so ties keep key order (etcd's sort leaves them in no defined order).
    match target {
        SortTarget::Key => kvs.sort_by(|a, b| a.key.cmp(&b.key)),
        SortTarget::Version => kvs.sort_by_key(|kv| kv.version),
        SortTarget::Create => kvs.sort_by_key(|kv| kv.create_revision),
        SortTarget::Mod => kvs.sort_by_key(|kv| kv.mod_revision),
        SortTarget::Value => kvs.sort_by(|a, b| a.value.cmp(&b.value)),
    }
    if order == SortOrder::Descend {
        kvs.reverse();
    }
}
