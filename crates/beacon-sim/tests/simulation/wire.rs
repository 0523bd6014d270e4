//! The simulated members' wire: one request and one answer per round trip on a turmoil
//! TCP stream, each a frame of a JSON header and a binary body (a snapshot's bytes,
//! moved as they are, as production sends them as the HTTP body; empty otherwise).

use std::io;

use beacon_api::{EtcdError, Event};
use beacon_raft::{ProposeError, Proposed};
use beacon_store::Command;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::types::{SimConfig, SnapshotMeta, Vote};

/// The largest header or body accepted: far above anything a run produces, it only
/// stops a corrupted length from allocating without bound.
const FRAME_PART_BYTES_MAX: usize = 64 << 20;

/// What one host asks a member.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// openraft's append-entries.
    Append(AppendEntriesRequest<SimConfig>),
    /// openraft's vote.
    Vote(VoteRequest<SimConfig>),
    /// openraft's pre-vote.
    PreVote(VoteRequest<SimConfig>),
    /// A full snapshot; the frame's body holds its bytes.
    Snapshot {
        /// The sending leader's vote.
        vote: Vote,
        /// What the snapshot covers.
        meta: SnapshotMeta,
    },
    /// openraft's leadership transfer.
    TransferLeader(TransferLeaderRequest<SimConfig>),
    /// A follower's proposal forwarded to the leader (production's `/raft/propose`).
    Forwarded(Command),
    /// A client's write or quorum read (production's keys handler, minus HTTP).
    Propose(Command),
    /// A client's plain read, served from the member's own store without consensus
    /// (production's `GET` without `quorum=true`).
    LocalGet {
        /// The key.
        path: String,
    },
}

/// A member's answer; openraft's errors travel as text, as production's 503 bodies do.
#[derive(Debug, Serialize, Deserialize)]
pub enum Answer {
    /// To `Append`.
    Append(Result<AppendEntriesResponse<SimConfig>, String>),
    /// To `Vote` and `PreVote`.
    Vote(Result<VoteResponse<SimConfig>, String>),
    /// To `Snapshot`.
    Snapshot(Result<SnapshotResponse<SimConfig>, String>),
    /// To `TransferLeader`.
    TransferLeader(Result<TransferLeaderResponse<SimConfig>, String>),
    /// To `Forwarded` and `Propose`.
    Proposed(Result<Proposed, ProposeError>),
    /// To `LocalGet`.
    Read(Result<Event, EtcdError>),
}

/// Writes one frame: `header` as JSON, then `body`.
pub async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    header: &T,
    body: &[u8],
) -> io::Result<()> {
    let json = serde_json::to_vec(header).map_err(io::Error::other)?;
    let mut frame = Vec::with_capacity(8 + json.len() + body.len());
    frame.extend_from_slice(&part_len(json.len())?.to_be_bytes());
    frame.extend_from_slice(&json);
    frame.extend_from_slice(&part_len(body.len())?.to_be_bytes());
    frame.extend_from_slice(body);
    w.write_all(&frame).await?;
    w.flush().await
}

fn part_len(len: usize) -> io::Result<u32> {
    if len > FRAME_PART_BYTES_MAX {
        return Err(io::Error::other(format!("frame part of {len} bytes")));
    }
    Ok(len as u32)
}

async fn read_part<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Vec<u8>> {
    let len = r.read_u32().await? as usize;
    if len > FRAME_PART_BYTES_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame part of {len} bytes"),
        ));
    }
    let mut buf = vec![0; len];
    r.read_exact(&mut buf).await?;
    Ok(buf)
}

/// Reads one frame: the decoded header and the body.
pub async fn read_frame<R: AsyncRead + Unpin, T: DeserializeOwned>(
    r: &mut R,
) -> io::Result<(T, Vec<u8>)> {
    let json = read_part(r).await?;
    let header =
        serde_json::from_slice(&json).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let body = read_part(r).await?;
    Ok((header, body))
}
