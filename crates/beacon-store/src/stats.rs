//! Operation counters for `/v2/stats/store`, in etcd's JSON field names and order.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// A snapshot of the store's counters, serialized as etcd's `/v2/stats/store` body.
#[allow(missing_docs)]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStats {
    #[serde(rename = "getsSuccess")]
    pub gets_success: u64,
    #[serde(rename = "getsFail")]
    pub gets_fail: u64,
    #[serde(rename = "setsSuccess")]
    pub sets_success: u64,
    #[serde(rename = "setsFail")]
    pub sets_fail: u64,
    #[serde(rename = "deleteSuccess")]
    pub delete_success: u64,
    #[serde(rename = "deleteFail")]
    pub delete_fail: u64,
    #[serde(rename = "updateSuccess")]
    pub update_success: u64,
    #[serde(rename = "updateFail")]
    pub update_fail: u64,
    #[serde(rename = "createSuccess")]
    pub create_success: u64,
    #[serde(rename = "createFail")]
    pub create_fail: u64,
    #[serde(rename = "compareAndSwapSuccess")]
    pub compare_and_swap_success: u64,
    #[serde(rename = "compareAndSwapFail")]
    pub compare_and_swap_fail: u64,
    #[serde(rename = "compareAndDeleteSuccess")]
    pub compare_and_delete_success: u64,
    #[serde(rename = "compareAndDeleteFail")]
    pub compare_and_delete_fail: u64,
    #[serde(rename = "expireCount")]
    pub expire_count: u64,
    pub watchers: u64,
}

/// Which counter an operation bumps.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Op {
    Get,
    Set,
    Delete,
    Update,
    Create,
    CompareAndSwap,
    CompareAndDelete,
}

/// Live counters; atomics because reads count too and run under a shared lock.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    success: [AtomicU64; 7],
    fail: [AtomicU64; 7],
    expired: AtomicU64,
}

impl Counters {
    pub fn record(&self, op: Op, ok: bool) {
        let slot = if ok { &self.success } else { &self.fail };
        slot[op as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_expired(&self) {
        self.expired.fetch_add(1, Ordering::Relaxed);
    }

    pub fn read(&self, watchers: u64) -> StoreStats {
        let s = |op: Op| self.success[op as usize].load(Ordering::Relaxed);
        let f = |op: Op| self.fail[op as usize].load(Ordering::Relaxed);
        StoreStats {
            gets_success: s(Op::Get),
            gets_fail: f(Op::Get),
            sets_success: s(Op::Set),
            sets_fail: f(Op::Set),
            delete_success: s(Op::Delete),
            delete_fail: f(Op::Delete),
            update_success: s(Op::Update),
            update_fail: f(Op::Update),
            create_success: s(Op::Create),
            create_fail: f(Op::Create),
            compare_and_swap_success: s(Op::CompareAndSwap),
            compare_and_swap_fail: f(Op::CompareAndSwap),
            compare_and_delete_success: s(Op::CompareAndDelete),
            compare_and_delete_fail: f(Op::CompareAndDelete),
            expire_count: self.expired.load(Ordering::Relaxed),
            watchers,
        }
    }

    pub fn restore(&self, stats: &StoreStats) {
        let pairs = [
            (Op::Get, stats.gets_success, stats.gets_fail),
            (Op::Set, stats.sets_success, stats.sets_fail),
            (Op::Delete, stats.delete_success, stats.delete_fail),
            (Op::Update, stats.update_success, stats.update_fail),
            (Op::Create, stats.create_success, stats.create_fail),
            (
                Op::CompareAndSwap,
                stats.compare_and_swap_success,
                stats.compare_and_swap_fail,
            ),
            (
                Op::CompareAndDelete,
                stats.compare_and_delete_success,
                stats.compare_and_delete_fail,
            ),
        ];
        for (op, ok, fail) in pairs {
            self.success[op as usize].store(ok, Ordering::Relaxed);
            self.fail[op as usize].store(fail, Ordering::Relaxed);
        }
        self.expired.store(stats.expire_count, Ordering::Relaxed);
    }
}
