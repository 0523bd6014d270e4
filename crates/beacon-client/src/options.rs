//! Options of the keys calls, one struct per call, defaulting to etcd's defaults.

use std::time::Duration;

/// A condition on whether the key exists before a set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrevExist {
    /// The key must exist (`prevExist=true`, an update).
    Exists,
    /// The key must not exist (`prevExist=false`, a create).
    Absent,
}

/// Options of [`crate::Client::get`].
#[derive(Clone, Debug, Default)]
pub struct GetOptions {
    /// List a directory's children at every depth.
    pub recursive: bool,
    /// Sort children by key.
    pub sorted: bool,
    /// Read through consensus rather than from the member's copy.
    pub quorum: bool,
}

/// Options of [`crate::Client::set`].
#[derive(Clone, Debug, Default)]
pub struct SetOptions {
    /// Seconds to live; `None` makes the key permanent.
    pub ttl: Option<u64>,
    /// Make a directory; the value is then not sent.
    pub dir: bool,
    /// Existence condition.
    pub prev_exist: Option<PrevExist>,
    /// The current value must be this (compare-and-swap).
    pub prev_value: Option<String>,
    /// The current modified index must be this (compare-and-swap).
    pub prev_index: Option<u64>,
    /// Only reset the TTL: no value is sent and watchers are not woken.
    pub refresh: bool,
}

/// Options of [`crate::Client::delete`].
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    /// Delete a directory (empty unless `recursive`).
    pub dir: bool,
    /// Delete a directory and everything under it.
    pub recursive: bool,
    /// The current value must be this (compare-and-delete).
    pub prev_value: Option<String>,
    /// The current modified index must be this (compare-and-delete).
    pub prev_index: Option<u64>,
}

/// Options of [`crate::Client::watch`] and [`crate::Client::watcher`].
#[derive(Clone, Debug, Default)]
pub struct WatchOptions {
    /// Also report changes under the key.
    pub recursive: bool,
    /// The first index of interest; `None` waits for the next change.
    pub wait_index: Option<u64>,
    /// Give up after this long; `None` waits for as long as it takes.
    pub timeout: Option<Duration>,
}
