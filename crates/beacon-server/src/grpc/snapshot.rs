//! `Maintenance.Snapshot`: a backup of this member, streamed as etcd streams its bbolt
//! file, in Beacon's own format (`beacon_raft::backup`). The bytes are the newest Raft
//! snapshot file once it holds everything applied when the call came
//! (`RaftNode::backup_file`: built from O(1) views, so a point-in-time image that stalls
//! no write), zeros up to a multiple of 512 bytes, then the sha256 of all that in a last
//! message of its own, as etcd sends it: etcdctl refuses a stream whose length is not a
//! multiple of 512 plus the 32 bytes of the hash ("sha256 checksum not found"), which a
//! bbolt file's pages always are. Chunks are etcd's 32 KiB, each with
//! the bytes still to come before the hash; a few are read ahead of the client, so a
//! backup holds kilobytes in memory whatever the snapshot's size.

use std::pin::Pin;
use std::sync::Arc;

use beacon_proto::etcdserverpb::SnapshotResponse;
use futures_util::Stream;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tonic::Status;

use crate::limits::{SNAPSHOT_BUILD_TIMEOUT, SNAPSHOT_CHUNKS_QUEUED_MAX, SNAPSHOT_CHUNK_BYTES};
use crate::state::AppState;

pub(super) type SnapshotStream =
    Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

/// How many times a backup looks for its file again when a newer snapshot pruned it
/// between being found and being opened (each try writes no new snapshot).
const OPEN_TRIES: usize = 3;

/// Opens the file of a backup, and its length, as of now.
async fn open(state: &AppState) -> Result<(tokio::fs::File, u64), Status> {
    let mut tries = 0;
    loop {
        let path = state
            .consensus
            .backup_file(SNAPSHOT_BUILD_TIMEOUT)
            .await
            .map_err(|e| match e {
                beacon_raft::BackupError::Timeout | beacon_raft::BackupError::Stopped => {
                    Status::unavailable(e.to_string())
                }
                beacon_raft::BackupError::Io(_) => Status::internal(e.to_string()),
            })?;
        match tokio::fs::File::open(&path).await {
            Ok(file) => {
                // An open file outlives its removal by a later prune: its length is final.
                let len = file
                    .metadata()
                    .await
                    .map_err(|e| internal(&path, &e))?
                    .len();
                return Ok((file, len));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && tries + 1 < OPEN_TRIES => {
                tries += 1;
            }
            Err(e) => return Err(internal(&path, &e)),
        }
    }
}

fn internal(path: &std::path::Path, e: &std::io::Error) -> Status {
    Status::internal(format!("beacon: snapshot {}: {e}", path.display()))
}

/// Starts a backup's stream: the file is found (or written) before the call answers, so
/// a member that cannot take one refuses the call instead of sending a broken stream.
pub(super) async fn stream(state: Arc<AppState>) -> Result<SnapshotStream, Status> {
    let (file, len) = open(&state).await?;
    let (tx, rx) = mpsc::channel(SNAPSHOT_CHUNKS_QUEUED_MAX);
    tokio::spawn(async move {
        if let Err(status) = send(file, len, &tx).await {
            // The client may be gone already; then nobody is left to tell.
            let _ = tx.send(Err(status)).await;
        }
    });
    Ok(Box::pin(super::queued(rx)))
}

/// Sends `len` bytes of `file` and the padding after them in chunks, then their
/// sha256; stops quietly when the client went away.
async fn send(
    mut file: tokio::fs::File,
    len: u64,
    tx: &mpsc::Sender<Result<SnapshotResponse, Status>>,
) -> Result<(), Status> {
    let total = beacon_raft::backup::padded_len(len);
    let mut hash = Sha256::new();
    let mut sent = 0u64;
    while sent < total {
        let want = chunk_len(total - sent);
        // The zeros of the padding are already there: only the file's part is read.
        let mut blob = vec![0; want];
        let from_file = chunk_len(len.saturating_sub(sent)).min(want);
        file.read_exact(&mut blob[..from_file])
            .await
            .map_err(|e| Status::internal(format!("beacon: reading a snapshot: {e}")))?;
        hash.update(&blob);
        sent += want as u64;
        // No header: etcd 3.4 sends none on this stream.
        let chunk = SnapshotResponse {
            header: None,
            remaining_bytes: total - sent,
            blob,
        };
        if tx.send(Ok(chunk)).await.is_err() {
            return Ok(());
        }
    }
    let digest = SnapshotResponse {
        header: None,
        remaining_bytes: 0,
        blob: hash.finalize().to_vec(),
    };
    let _ = tx.send(Ok(digest)).await;
    Ok(())
}

/// The bytes of the next chunk when `left` remain.
fn chunk_len(left: u64) -> usize {
    usize::try_from(left).map_or(SNAPSHOT_CHUNK_BYTES, |left| left.min(SNAPSHOT_CHUNK_BYTES))
}
