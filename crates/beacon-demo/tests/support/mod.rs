//! Shared by the client framework's integration tests: registries to run against,
//! instance and proxy processes, clients, and waiting on a discovery stream with a
//! deadline.

#![allow(dead_code, unused_imports)]

mod instance;
mod proxy;

pub use instance::{InstanceOptions, InstanceProcess};
pub use proxy::Proxy;

use std::time::Duration;

use beacon_client::{Client, Discovery, Instance, Registry, V3Client};
use beacon_testkit::{beacon_bin, etcd_available, etcd_bin, ServerKind, ServerProcess};
use futures_util::StreamExt;
use tower::discover::Change;

/// The registries every test runs against: Beacon, and etcd 3.4 when it is installed
/// (required with `BEACON_REQUIRE_ETCD=1`, as CI sets it).
pub fn registries() -> Vec<ServerKind> {
    let mut kinds = vec![ServerKind::Beacon];
    if etcd_available() {
        kinds.push(ServerKind::Etcd);
    } else {
        let required = std::env::var("BEACON_REQUIRE_ETCD").is_ok_and(|v| v == "1");
        assert!(!required, "BEACON_REQUIRE_ETCD=1 but etcd is not installed");
        eprintln!("etcd not installed: testing with Beacon as the registry only");
    }
    kinds
}

/// The API a test reaches its registry through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// etcd's v2 keys API: keys with TTLs, watches by index.
    V2,
    /// etcd's v3 API: keys with leases, watch streams by revision.
    V3,
}

/// Every registry of [`registries`] through each API.
pub fn modes() -> Vec<(ServerKind, Api)> {
    registries()
        .into_iter()
        .flat_map(|kind| [(kind, Api::V2), (kind, Api::V3)])
        .collect()
}

/// A registry handle of `endpoints` through `api`, with a 2 s call timeout.
pub fn registry_client(api: Api, endpoints: &[String]) -> Registry {
    let timeout = Duration::from_secs(2);
    match api {
        Api::V2 => client(endpoints).into(),
        Api::V3 => V3Client::new(endpoints.to_vec(), timeout)
            .expect("valid endpoints")
            .into(),
    }
}

/// True when `key` is registered (held with a TTL, or with a lease).
pub async fn is_registered(registry: &Registry, key: &str) -> bool {
    match registry {
        Registry::V2(c) => c
            .get(key, &Default::default())
            .await
            .is_ok_and(|r| r.node().is_some_and(|n| n.ttl > 0)),
        Registry::V3(c) => c.range_prefix(key.as_bytes()).await.is_ok_and(|r| {
            r.kvs
                .iter()
                .any(|kv| kv.key == key.as_bytes() && kv.lease != 0)
        }),
    }
}

/// A single-member registry of `kind`.
pub fn registry(kind: ServerKind) -> ServerProcess {
    let bin = kind.bin();
    ServerProcess::start(kind, bin).expect("registry starts")
}

/// A client of `endpoints` with a 2 s call timeout.
pub fn client(endpoints: &[String]) -> Client {
    Client::new(endpoints.to_vec(), Duration::from_secs(2)).expect("valid endpoints")
}

/// A change as `+key` or `-key`, for comparing sequences.
pub fn describe(change: &Change<String, Instance>) -> String {
    match change {
        Change::Insert(key, _) => format!("+{key}"),
        Change::Remove(key) => format!("-{key}"),
    }
}

/// The next change within `timeout`, or `None`.
pub async fn next_change(
    discovery: &mut Discovery,
    timeout: Duration,
) -> Option<Change<String, Instance>> {
    match tokio::time::timeout(timeout, discovery.next()).await {
        Ok(Some(Ok(change))) => Some(change),
        Ok(Some(Err(never))) => match never {},
        Ok(None) | Err(_) => None,
    }
}

/// The next `n` changes, described; panics if they do not come within `timeout`.
pub async fn next_changes(discovery: &mut Discovery, n: usize, timeout: Duration) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut seen = Vec::new();
    while seen.len() < n {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match next_change(discovery, left).await {
            Some(change) => seen.push(describe(&change)),
            None => panic!("expected {n} changes within {timeout:?}, got {seen:?}"),
        }
    }
    seen
}
