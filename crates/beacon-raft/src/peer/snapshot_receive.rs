//! Receiving a snapshot from the leader. The body (the snapshot-file format) is
//! streamed into a temporary file, never held whole in memory before it is verified:
//! its header must describe exactly the bytes that arrive, its checksum must match,
//! the store must decode in full, and its membership must agree with this member's.
//! Only then does openraft see it, and install it (which writes it durably before the
//! older snapshots are removed) unless it ends at or before what this member committed;
//! anything else is refused with 400 and changes nothing. A snapshot older than what
//! this member applied is not refused when it comes in the name of the vote this member
//! follows: a leader that lost track of this member's progress (it restarted) sends its
//! newest snapshot, and openraft's answer (not installed, with this member's vote) is
//! what moves the leader on to appends; a refusal had it send the same snapshot again
//! forever (the simulation's seed 111). In a newer vote's name it is refused, so that a
//! replayed snapshot cannot move this member's term.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use xxhash_rust::xxh3::Xxh3;

use super::body::{content_length, next_chunk, too_large};
use super::guard::{same_sender, sender, Refused};
use super::local::LocalMember;
use super::reply::answer_to;
use super::{SNAPSHOT_BYTES_MAX, VOTE_HEADER};
use crate::snapshot_file::{self, SnapshotDir, CHECKSUM_LEN, HEADER_LEN};
use crate::types::{Snapshot, SnapshotMeta, Vote};

/// `POST /raft/snapshot`.
pub(super) async fn snapshot<L: LocalMember>(
    State(node): State<L>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match receive(&node, &headers, body).await {
        Ok(response) => response,
        Err(refused) => refused.into_response(),
    }
}

async fn receive(
    node: &impl LocalMember,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Refused> {
    let from = sender(node, headers)?;
    let vote_json = headers
        .get(VOTE_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    let vote: Vote = serde_json::from_slice(vote_json)
        .map_err(|e| Refused::bad_request(format!("bad vote header: {e}\n")))?;
    same_sender(node, from, &vote)?;
    if content_length(headers).is_some_and(|n| n > SNAPSHOT_BYTES_MAX) {
        return Err(too_large(SNAPSHOT_BYTES_MAX));
    }
    let Some(_receiving) = node.try_receive_snapshot() else {
        return Err(Refused::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "a snapshot is already being received\n",
        ));
    };
    let dir = node.snapshot_dir().clone();
    let path = dir.incoming_path();
    let received = match write_verified(&dir, headers, body, &path, from).await {
        Ok(()) => load(&dir, &path).await,
        Err(refused) => Err(refused),
    };
    // Whatever happened, the temp file goes: a verified snapshot is in memory now, and
    // openraft writes its own durable copy when it installs it.
    let (disk, incoming) = (std::sync::Arc::clone(dir.disk()), path.clone());
    let _ = crate::disk::blocking(&**dir.disk(), move || disk.remove_file(&incoming)).await;
    let (meta, data) = received?;
    check_against_state(node, &vote, &meta)?;
    let snapshot = Snapshot {
        meta,
        snapshot: data,
    };
    Ok(answer_to(from, node.install_snapshot(vote, snapshot).await))
}

fn refused(why: impl std::fmt::Display) -> Refused {
    Refused::bad_request(format!("bad snapshot: {why}\n"))
}

/// Streams the body into `path`, refusing it as soon as its header or length is wrong,
/// and checks the trailing checksum over everything before it; its bytes count as
/// received from `from` (`traffic`).
async fn write_verified(
    dir: &SnapshotDir,
    headers: &HeaderMap,
    body: Body,
    path: &std::path::Path,
    from: crate::types::NodeId,
) -> Result<(), Refused> {
    let mut file = dir
        .disk()
        .create_streamed(path)
        .await
        .map_err(|e| internal(format!("creating {}: {e}", path.display())))?;
    let mut stream = body.into_data_stream();
    let mut header = Vec::with_capacity(HEADER_LEN);
    let mut expected: Option<u64> = None;
    let mut received: u64 = 0;
    let mut hasher = Xxh3::new();
    let mut tail = Vec::with_capacity(CHECKSUM_LEN);
    while let Some(chunk) = next_chunk(&mut stream).await? {
        if expected.is_none() {
            let wanted = HEADER_LEN - header.len();
            header.extend_from_slice(&chunk[..chunk.len().min(wanted)]);
            if let Ok(complete) = <[u8; HEADER_LEN]>::try_from(header.as_slice()) {
                let len = snapshot_file::encoded_len(&complete).map_err(refused)?;
                if len > SNAPSHOT_BYTES_MAX {
                    return Err(too_large(SNAPSHOT_BYTES_MAX));
                }
                if content_length(headers).is_some_and(|n| n != len) {
                    return Err(refused(format!(
                        "its header describes {len} bytes, Content-Length says otherwise"
                    )));
                }
                expected = Some(len);
            }
        }
        received += chunk.len() as u64;
        super::traffic::received(from, chunk.len());
        if received > expected.unwrap_or(HEADER_LEN as u64) {
            return Err(refused("more bytes than its header describes"));
        }
        // Everything but the last CHECKSUM_LEN bytes is hashed; those are the checksum.
        let body_end = expected.map_or(u64::MAX, |n| n - CHECKSUM_LEN as u64);
        let chunk_start = received - chunk.len() as u64;
        let hashed = body_end.saturating_sub(chunk_start).min(chunk.len() as u64) as usize;
        hasher.update(&chunk[..hashed]);
        tail.extend_from_slice(&chunk[hashed..]);
        file.write(&chunk)
            .await
            .map_err(|e| internal(format!("writing {}: {e}", path.display())))?;
    }
    if expected != Some(received) {
        return Err(refused(format!(
            "{received} bytes arrived, fewer than its header describes"
        )));
    }
    let stored =
        <[u8; CHECKSUM_LEN]>::try_from(tail.as_slice()).map_err(|_| refused("no checksum"))?;
    if !snapshot_file::checksum_matches(&hasher, stored) {
        return Err(refused("checksum mismatch"));
    }
    file.flush()
        .await
        .map_err(|e| internal(format!("writing {}: {e}", path.display())))
}

fn internal(why: String) -> Refused {
    Refused::new(StatusCode::INTERNAL_SERVER_ERROR, why)
}

/// Reads the verified file back and decodes the store in full, on a scratch store:
/// a snapshot that does not load is refused here, not discovered by the state machine.
async fn load(
    dir: &SnapshotDir,
    path: &std::path::Path,
) -> Result<(SnapshotMeta, Vec<u8>), Refused> {
    let (disk, dir, path) = (
        std::sync::Arc::clone(dir.disk()),
        dir.clone(),
        path.to_owned(),
    );
    crate::disk::blocking(&*disk, move || {
        let (meta, data) = dir.load(&path).map_err(refused)?;
        crate::state_machine::check_snapshot(&data)
            .map_err(|e| refused(format!("the store does not decode: {e}")))?;
        Ok((meta, data))
    })
    .await
    .map_err(|e| internal(format!("verifying a snapshot: {e}")))?
}

/// Refuses a snapshot older than what this member applied unless it comes with the
/// vote this member already follows (an honest leader that lost track of it; openraft
/// answers without installing it, see the module doc): in a newer vote's name it would
/// only move this member's vote, which that leader's heartbeats do first anyway, so a
/// replayed snapshot cannot bump the term. Refuses one that would drop this member from
/// a membership that includes it since before the snapshot's position.
fn check_against_state(
    node: &impl LocalMember,
    vote: &Vote,
    meta: &SnapshotMeta,
) -> Result<(), Refused> {
    let (applied, ours) = node.applied_and_vote();
    if meta.last_log_id < applied && *vote != ours {
        return Err(refused(format!(
            "it ends at {:?}, before what this member applied ({applied:?}), in the name of \
             a vote it does not follow ({vote} against {ours})",
            meta.last_log_id,
        )));
    }
    let ours = node.membership();
    let includes_us = ours.membership().get_node(&node.id()).is_some();
    // Our membership entry is at or before the snapshot's end, so the snapshot covers
    // it: a membership there without us would remove us. (A snapshot that ends before
    // the entry that added us is followed by that entry in the log.)
    let covered = ours.log_id().is_some() && meta.last_log_id.as_ref() >= ours.log_id().as_ref();
    let keeps_us = meta
        .last_membership
        .membership()
        .get_node(&node.id())
        .is_some();
    if includes_us && covered && !keeps_us {
        return Err(refused(
            "its membership leaves out this member, which the membership it covers includes",
        ));
    }
    Ok(())
}
