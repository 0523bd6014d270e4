//! Leases: a TTL that keys are attached to, revoked (its keys deleted) when it expires
//! or on request.
//!
//! Time comes from the log: a grant or a renewal carries the proposer's wall clock, and
//! the leader's clock entries (`Mvcc::expire`) revoke every lease whose expiry has
//! passed, so every replica revokes the same leases at the same revision, and a lease's
//! remaining time is part of the replicated state: it survives a leader change and a
//! restart (etcd keeps it on the leader alone unless checkpointing is on, and a new
//! leader grants every lease its whole TTL again).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use beacon_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveResponse, LeaseLeasesResponse,
    LeaseRevokeResponse, LeaseStatus, LeaseTimeToLiveResponse,
};
use beacon_proto::mvccpb::KeyValue;

use crate::store::{header, Mvcc};
use crate::{MvccError, Revision};

/// The longest TTL a lease may have, in seconds (etcd's `MaxLeaseTTL`).
pub const LEASE_TTL_MAX: i64 = 9_000_000_000;

/// The most leases one clock entry revokes. Part of the replicated state machine: every
/// replica of a cluster must apply the same bound (a member of an older Beacon, which
/// revoked every due lease in one entry, must not be mixed with this one while leases
/// expire). 20,000 revokes apply in about 60 ms on a 2-CPU VM (`bench/v3-scale`'s burst
/// profile), so other requests wait at most that long behind a mass expiry.
pub const LEASES_EXPIRED_PER_CLOCK_MAX: usize = 20_000;

const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// What is stored of a lease (its keys are found again from the keys' own `lease`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseRecord {
    pub id: i64,
    /// Granted TTL, in seconds.
    pub ttl: i64,
    /// When it expires, in Unix nanoseconds of the proposers' clocks.
    pub expiry_ns: i64,
}

impl LeaseRecord {
    /// The stored form: TTL and expiry, big-endian.
    pub fn encode(&self) -> [u8; 16] {
        let mut out = [0; 16];
        out[..8].copy_from_slice(&self.ttl.to_be_bytes());
        out[8..].copy_from_slice(&self.expiry_ns.to_be_bytes());
        out
    }

    /// A record read back under `id`.
    pub fn decode(id: i64, bytes: &[u8]) -> Option<LeaseRecord> {
        let ttl: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
        let expiry: [u8; 8] = bytes.get(8..16)?.try_into().ok()?;
        (bytes.len() == 16).then(|| LeaseRecord {
            id,
            ttl: i64::from_be_bytes(ttl),
            expiry_ns: i64::from_be_bytes(expiry),
        })
    }
}

/// The stored key of lease `id`: big-endian with the sign bit flipped (ID order).
pub fn lease_key(id: i64) -> [u8; 8] {
    ((id as u64) ^ (1 << 63)).to_be_bytes()
}

/// The lease id a [`lease_key`] encodes.
pub fn parse_lease_key(key: &[u8]) -> Option<i64> {
    let key: [u8; 8] = key.try_into().ok()?;
    Some((u64::from_be_bytes(key) ^ (1 << 63)) as i64)
}

#[derive(Debug)]
struct Lease {
    ttl: i64,
    expiry_ns: i64,
    keys: BTreeSet<Vec<u8>>,
}

/// Every lease, by id and by expiry, and which live key is attached to which.
#[derive(Debug, Default)]
pub(crate) struct Leases {
    by_id: BTreeMap<i64, Lease>,
    by_expiry: BTreeSet<(i64, i64)>,
    /// Live keys with a lease, and their lease.
    attached: HashMap<Vec<u8>, i64>,
}

impl Leases {
    pub fn contains(&self, id: i64) -> bool {
        self.by_id.contains_key(&id)
    }

    pub fn insert(&mut self, rec: LeaseRecord) {
        let old = self.by_id.insert(
            rec.id,
            Lease {
                ttl: rec.ttl,
                expiry_ns: rec.expiry_ns,
                keys: BTreeSet::new(),
            },
        );
        assert!(old.is_none(), "a lease is granted once");
        self.by_expiry.insert((rec.expiry_ns, rec.id));
    }

    /// `key`, live with lease `lease` (0: none) from now on.
    pub fn attach(&mut self, key: &[u8], lease: i64) {
        self.detach(key);
        if lease == 0 {
            return;
        }
        if let Some(l) = self.by_id.get_mut(&lease) {
            l.keys.insert(key.to_vec());
            self.attached.insert(key.to_vec(), lease);
        }
    }

    /// `key` is deleted (or put without a lease).
    pub fn detach(&mut self, key: &[u8]) {
        if let Some(old) = self.attached.remove(key) {
            if let Some(l) = self.by_id.get_mut(&old) {
                l.keys.remove(key);
            }
        }
    }

    fn set_expiry(&mut self, id: i64, expiry_ns: i64) -> Option<LeaseRecord> {
        let l = self.by_id.get_mut(&id)?;
        self.by_expiry.remove(&(l.expiry_ns, id));
        l.expiry_ns = expiry_ns;
        self.by_expiry.insert((expiry_ns, id));
        Some(LeaseRecord {
            id,
            ttl: l.ttl,
            expiry_ns,
        })
    }

    fn remove(&mut self, id: i64) -> Option<Lease> {
        let l = self.by_id.remove(&id)?;
        self.by_expiry.remove(&(l.expiry_ns, id));
        for key in &l.keys {
            self.attached.remove(key);
        }
        Some(l)
    }

    /// The live keys attached to lease `id` (none if there is no such lease).
    pub fn keys_of(&self, id: i64) -> impl Iterator<Item = &[u8]> + '_ {
        self.by_id
            .get(&id)
            .into_iter()
            .flat_map(|l| l.keys.iter().map(Vec::as_slice))
    }

    /// Every lease, by id.
    pub fn records(&self) -> impl Iterator<Item = LeaseRecord> + '_ {
        self.by_id.iter().map(|(&id, l)| LeaseRecord {
            id,
            ttl: l.ttl,
            expiry_ns: l.expiry_ns,
        })
    }

    /// The earliest expiry of any lease.
    pub fn next_expiry(&self) -> Option<i64> {
        self.by_expiry.first().map(|(at, _)| *at)
    }
}

fn expiry(now_ns: i64, ttl: i64) -> i64 {
    now_ns.saturating_add(ttl.saturating_mul(NANOS_PER_SECOND))
}

impl Mvcc {
    /// Grants a lease at `now_ns` (the server chose the ID and raised the TTL to the
    /// minimum before proposing).
    pub fn lease_grant(
        &mut self,
        req: &LeaseGrantRequest,
        now_ns: i64,
    ) -> Result<LeaseGrantResponse, MvccError> {
        if req.id == 0 {
            return Err(MvccError::LeaseNotFound);
        }
        if req.ttl > LEASE_TTL_MAX {
            return Err(MvccError::LeaseTtlTooLarge);
        }
        if self.leases.contains(req.id) {
            return Err(MvccError::LeaseExists);
        }
        let rec = LeaseRecord {
            id: req.id,
            ttl: req.ttl,
            expiry_ns: expiry(now_ns, req.ttl),
        };
        self.leases.insert(rec);
        self.pending_leases.insert(rec.id, Some(rec));
        Ok(LeaseGrantResponse {
            header: header(self.current),
            id: req.id,
            ttl: req.ttl,
            error: String::new(),
        })
    }

    /// Revokes lease `id`: its keys are deleted in one write transaction.
    pub fn lease_revoke(&mut self, id: i64) -> Result<LeaseRevokeResponse, MvccError> {
        if !self.leases.contains(id) {
            return Err(MvccError::LeaseNotFound);
        }
        self.revoke(id);
        Ok(LeaseRevokeResponse {
            header: header(self.current),
        })
    }

    fn revoke(&mut self, id: i64) {
        let Some(lease) = self.leases.remove(id) else {
            return;
        };
        self.pending_leases.insert(id, None);
        if lease.keys.is_empty() {
            return;
        }
        let main = self.current + 1;
        // In key order (the set's), as etcd sorts them, which fixes the sub revisions.
        for (sub, key) in lease.keys.iter().enumerate() {
            self.tombstone(
                key,
                Revision {
                    main,
                    sub: sub as i64,
                },
            );
        }
        self.current = main;
    }

    /// A keep-alive at `now_ns`: the lease's whole TTL again; TTL 0 for a lease that is
    /// not there (etcd's answer, no error).
    pub fn lease_renew(&mut self, id: i64, now_ns: i64) -> LeaseKeepAliveResponse {
        let ttl = self.leases.by_id.get(&id).map(|l| l.ttl);
        let Some(ttl) = ttl else {
            return LeaseKeepAliveResponse {
                header: header(self.current),
                id,
                ttl: 0,
            };
        };
        if let Some(rec) = self.leases.set_expiry(id, expiry(now_ns, ttl)) {
            self.pending_leases.insert(id, Some(rec));
        }
        LeaseKeepAliveResponse {
            header: header(self.current),
            id,
            ttl,
        }
    }

    /// Revokes the leases whose expiry is at or before `now_ns`, earliest first (ties
    /// by id), each in its own write transaction (as etcd's leader proposes one revoke
    /// per lease), at most [`LEASES_EXPIRED_PER_CLOCK_MAX`] of them: the rest wait for
    /// the next clock entry, which the leader proposes at once while any are due, so a
    /// million leases due together do not hold every other request behind one apply.
    /// Returns how many it revoked.
    pub fn expire(&mut self, now_ns: i64) -> usize {
        let due: Vec<i64> = self
            .leases
            .by_expiry
            .iter()
            .take_while(|(at, _)| *at <= now_ns)
            .take(LEASES_EXPIRED_PER_CLOCK_MAX)
            .map(|(_, id)| *id)
            .collect();
        for &id in &due {
            self.revoke(id);
        }
        due.len()
    }

    /// The earliest expiry of any lease, in Unix nanoseconds.
    pub fn next_lease_expiry(&self) -> Option<i64> {
        self.leases.next_expiry()
    }

    /// A lease's remaining and granted TTL as of `now_ns`, and its keys if asked; TTL
    /// -1 for a lease that is not there (etcd's answer, no error).
    pub fn lease_time_to_live(&self, id: i64, keys: bool, now_ns: i64) -> LeaseTimeToLiveResponse {
        let Some(l) = self.leases.by_id.get(&id) else {
            return LeaseTimeToLiveResponse {
                header: header(self.current),
                id,
                ttl: -1,
                ..LeaseTimeToLiveResponse::default()
            };
        };
        LeaseTimeToLiveResponse {
            header: header(self.current),
            id,
            ttl: (l.expiry_ns.saturating_sub(now_ns) / NANOS_PER_SECOND).max(0),
            granted_ttl: l.ttl,
            keys: if keys {
                l.keys.iter().cloned().collect()
            } else {
                Vec::new()
            },
        }
    }

    /// Every lease, earliest expiry first.
    pub fn lease_leases(&self) -> LeaseLeasesResponse {
        LeaseLeasesResponse {
            header: header(self.current),
            leases: self
                .leases
                .by_expiry
                .iter()
                .map(|(_, id)| LeaseStatus { id: *id })
                .collect(),
        }
    }

    /// Marks `key` deleted at `at`.
    pub(crate) fn tombstone(&mut self, key: &[u8], at: Revision) {
        self.leases.detach(key);
        self.index.record(key, at, true, 0);
        self.pending.insert(
            at,
            Some(KeyValue {
                key: key.to_vec(),
                mod_revision: at.main,
                ..KeyValue::default()
            }),
        );
    }
}
