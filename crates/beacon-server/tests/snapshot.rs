//! Backups (`Maintenance.Snapshot`), against etcd 3.4 and Beacon alike: `etcdctl snapshot
//! save` writes the file and prints the same; the stream is chunked as etcd chunks it
//! (32 KiB blobs, `remaining_bytes` counting down to 0, then the sha256 in a message of
//! its own), and the file is a multiple of 512 bytes plus that hash. What is inside
//! differs (etcd's bbolt database, Beacon's snapshot file), so the transcripts say only
//! how the bytes are framed.

use std::path::Path;
use std::time::Duration;

use beacon_proto::etcdserverpb::kv_client::KvClient;
use beacon_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use beacon_proto::etcdserverpb::{PutRequest, SnapshotRequest};
use beacon_testkit::{
    assert_same_answers, beacon_bin, etcd_bin, etcd_or_skip, ServerKind, ServerProcess,
};
use sha2::{Digest, Sha256};

/// How long one etcdctl run may take.
const DEADLINE: Duration = Duration::from_secs(30);
/// Enough 1 KiB values for a backup of several 32 KiB chunks.
const KEYS: usize = 200;

/// Runs `etcdctl` (API 3) against `server` with `args`; its exit code and stdout.
async fn etcdctl(server: &ServerProcess, args: &[&str]) -> (i32, String) {
    let run = tokio::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", server.client_url()))
        .args(args)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(DEADLINE, run)
        .await
        .expect("etcdctl finishes in time")
        .expect("etcdctl runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// How a backup file is framed: its length fits etcdctl's check, and it ends with the
/// sha256 of the bytes before it.
fn framing(path: &Path) -> String {
    let bytes = std::fs::read(path).expect("the saved file");
    let (body, hash) = bytes.split_at(bytes.len().saturating_sub(32));
    format!(
        "length % 512 = {}, sha256 at the end matches: {}",
        bytes.len() % 512,
        Sha256::digest(body).as_slice() == hash
    )
}

async fn backup_answers(kind: ServerKind) -> Vec<String> {
    let bin = match kind {
        ServerKind::Beacon => beacon_bin(),
        ServerKind::Etcd => etcd_bin(),
    };
    let server = ServerProcess::cluster(kind, bin, 1)
        .expect("server starts")
        .remove(0);
    let channel = beacon_testkit::grpc_channel(&server.client_url()).await;
    let mut kv = KvClient::new(channel.clone());
    for i in 0..KEYS {
        kv.put(PutRequest {
            key: format!("key{i:04}").into(),
            value: vec![b'v'; 1024],
            ..PutRequest::default()
        })
        .await
        .expect("put");
    }
    let mut answers = Vec::new();

    // The stream: every blob but the hash is 32 KiB except the last, and
    // remaining_bytes says what follows it.
    let mut stream = MaintenanceClient::new(channel)
        .snapshot(SnapshotRequest {})
        .await
        .expect("snapshot")
        .into_inner();
    let mut messages = Vec::new();
    while let Some(message) = tokio::time::timeout(DEADLINE, stream.message())
        .await
        .expect("the stream goes on")
        .expect("a message")
    {
        messages.push(message);
    }
    let (hash, data) = messages.split_last().expect("at least the hash");
    let total: u64 = data.iter().map(|m| m.blob.len() as u64).sum();
    let mut sent = 0u64;
    let mut framed = true;
    for (i, m) in data.iter().enumerate() {
        sent += m.blob.len() as u64;
        let last = i + 1 == data.len();
        framed &= m.remaining_bytes == total - sent && (last || m.blob.len() == 32 * 1024);
        framed &= m.header.is_none();
    }
    answers.push(format!(
        "stream: several chunks {}, each 32 KiB but the last, remaining_bytes counting down: {framed}",
        data.len() > 1
    ));
    let mut digest = Sha256::new();
    for m in data {
        digest.update(&m.blob);
    }
    answers.push(format!(
        "stream ends with its sha256 ({} bytes, remaining {}): {}",
        hash.blob.len(),
        hash.remaining_bytes,
        digest.finalize().as_slice() == hash.blob.as_slice()
    ));

    // etcdctl snapshot save: what it prints, and the file it writes.
    let dir = beacon_testkit::TempDir::new("snapshot-save").expect("temp dir");
    let path = dir.path().join("backup.db");
    let path_arg = path.display().to_string();
    let (code, stdout) = etcdctl(&server, &["snapshot", "save", &path_arg]).await;
    answers.push(format!(
        "save: exit {code}, {}",
        stdout.replace(&path_arg, "FILE")
    ));
    answers.push(format!("saved file: {}", framing(&path)));
    answers.push(format!(
        "no .part left behind: {}",
        !dir.path().join("backup.db.part").exists()
    ));
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_snapshot_save_as_against_etcd() {
    let got = backup_answers(ServerKind::Beacon).await;
    if !etcd_or_skip() {
        return;
    }
    let want = backup_answers(ServerKind::Etcd).await;
    assert_same_answers(&want, &got);
}
