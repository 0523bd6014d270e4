//! etcd-client, the Rust v3 client from crates.io, unmodified, against a fresh etcd 3.4.23
//! and a fresh Beacon: each test runs one script of calls through the library against
//! both, and every answer (a response, or a refusal with its gRPC code and message) must
//! be the same once what legitimately differs is blanked: the member's and cluster's
//! ids, the Raft term, and ids a server picks on its own (a lease granted without one).
//! Both keyspaces start at revision 1 and count writes alike, so revisions compare as
//! they are. Lock and Election calls that wait run on tasks of their own
//! (`recipes.rs`). Without etcd the tests skip, unless `BEACON_REQUIRE_ETCD=1`;
//! `BEACON_COMPAT_SHOW=1` prints etcd's answers (with `--nocapture`).

mod kv;
mod lease;
mod normalize;
mod recipes;
mod txn;
mod watch;

use std::future::Future;

use beacon_testkit::ServerProcess;
use etcd_client::Client;

pub use normalize::{answer, blank};

/// Runs `script` against a fresh etcd, then against a fresh Beacon, and fails if any of
/// their answers differ, listing every difference.
pub async fn same_answers<S, F>(script: S)
where
    S: Fn(Client) -> F,
    F: Future<Output = Vec<String>>,
{
    if !beacon_testkit::etcd_or_skip() {
        return;
    }
    let etcd = ServerProcess::etcd().expect("etcd starts");
    let want = script(connect(&etcd).await).await;
    drop(etcd);
    let beacon = ServerProcess::beacon().expect("beacon starts");
    let got = script(connect(&beacon).await).await;
    if std::env::var_os("BEACON_COMPAT_SHOW").is_some_and(|v| v == "1") {
        eprintln!("etcd's answers:\n{}", want.join("\n"));
    }
    beacon_testkit::assert_same_answers(&want, &got);
}

async fn connect(server: &ServerProcess) -> Client {
    Client::connect([server.client_url()], None)
        .await
        .expect("etcd-client connects")
}
