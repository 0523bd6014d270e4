//! Reading a peer request's body: bounded in bytes (refused by its `Content-Length`
//! before a byte is read when that is already too large) and in time between bytes,
//! so that neither a huge nor a trickled body can hold memory or a connection.

use axum::body::{Body, BodyDataStream, Bytes};
use axum::http::{HeaderMap, StatusCode};
use futures_util::StreamExt;

use super::guard::Refused;
use super::PEER_BODY_READ_TIMEOUT;

/// The declared `Content-Length`, when there is a valid one.
pub(super) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// etcd's answer to a body over its limit (Go's `http.MaxBytesReader`).
pub(super) fn too_large(limit: u64) -> Refused {
    Refused::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("message larger than {limit} bytes\n"),
    )
}

/// The body's next chunk, `None` at its end; refused when none arrives within
/// [`PEER_BODY_READ_TIMEOUT`] or the connection broke.
pub(super) async fn next_chunk(stream: &mut BodyDataStream) -> Result<Option<Bytes>, Refused> {
    let chunk = tokio::time::timeout(PEER_BODY_READ_TIMEOUT, stream.next())
        .await
        .map_err(|_| unreadable("no data within the read timeout"))?;
    chunk.transpose().map_err(unreadable)
}

/// A body that stopped arriving, or a connection that broke mid-body.
pub(super) fn unreadable(why: impl std::fmt::Display) -> Refused {
    Refused::bad_request(format!("error reading raft message: {why}\n"))
}

/// Reads the whole body, at most `limit` bytes, each chunk within
/// [`PEER_BODY_READ_TIMEOUT`] of the previous one.
pub(super) async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, Refused> {
    let limit_u64 = limit as u64;
    let declared = content_length(headers);
    if declared.is_some_and(|n| n > limit_u64) {
        return Err(too_large(limit_u64));
    }
    let mut stream = body.into_data_stream();
    // Pre-sized only to what was declared, and that was checked above.
    let mut buf = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    while let Some(chunk) = next_chunk(&mut stream).await? {
        if buf.len() + chunk.len() > limit {
            return Err(too_large(limit_u64));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}
