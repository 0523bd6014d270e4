//! The simulated clients' wire to a member's client port: one request and one answer
//! per round trip on a turmoil TCP stream, each a frame of a JSON header and a binary
//! body. The clients stand in for the keys and members APIs; members talk to each other
//! over the real peer transport (HTTP), not this.

use std::io;

use beacon_api::{EtcdError, Event};
use beacon_raft::{MemberChange, MembershipError, ProposeError, Proposed};
use beacon_store::Command;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest header or body accepted: far above anything a run produces, it only
/// stops a corrupted length from allocating without bound.
const FRAME_PART_BYTES_MAX: usize = 64 << 20;

/// What a client (or the run's administrator) asks a member on its client port.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// A write or quorum read: `RaftNode::propose`, as the server's keys handler calls it.
    Propose(Command),
    /// A plain read from the member's own store (production's `GET` without
    /// `quorum=true`), or, under the negative control, a quorum read served that way.
    LocalGet {
        /// The key.
        path: String,
    },
    /// A membership change: `RaftNode::change_members`, as the members API calls it.
    Change(MemberChange),
}

/// A member's answer.
#[derive(Debug, Serialize, Deserialize)]
pub enum Answer {
    /// To `Propose`.
    Proposed(Result<Proposed, ProposeError>),
    /// To `LocalGet`.
    Read(Result<Event, EtcdError>),
    /// To `Change`.
    Changed(Result<(), MembershipError>),
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
