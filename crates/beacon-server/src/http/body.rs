//! Reading a request body whole, bounded by its bytes and by time.
//!
//! hyper hands a body over as frames that are slices of its read buffer: each frame
//! keeps that whole buffer (8 KiB or more) alive, and hyper allocates a fresh one for
//! the next read. Collecting the frames as they come (`http_body_util`'s `collect`)
//! therefore costs a buffer per frame: a body trickled one byte per TCP segment held
//! ~6.5 KB of memory per byte sent. Here every frame is copied into one growing buffer
//! and dropped at once, so a body costs about its own length, however it is cut up.

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http_body_util::BodyExt as _;

/// Why a body could not be read whole.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body is longer than the limit it was read with.
    #[error("request body over {limit_bytes} bytes")]
    TooLarge { limit_bytes: usize },
    /// The client did not send the whole body in time.
    #[error("request body not received within {}s", timeout.as_secs())]
    TimedOut { timeout: Duration },
    /// The connection failed or the framing was bad (e.g. a broken chunk).
    #[error("{0}")]
    Read(String),
}

/// Reads `body` into one buffer of at most `limit_bytes` bytes, within `timeout`.
pub async fn read_capped(
    body: Body,
    limit_bytes: usize,
    timeout: Duration,
) -> Result<Bytes, BodyError> {
    match tokio::time::timeout(timeout, read_all(body, limit_bytes)).await {
        Ok(read) => read,
        Err(_) => Err(BodyError::TimedOut { timeout }),
    }
}

async fn read_all(mut body: Body, limit_bytes: usize) -> Result<Bytes, BodyError> {
    // Grows by doubling from what actually arrived: a declared Content-Length is not
    // trusted for a reservation, or a client could claim 10 MiB and send nothing.
    let mut buf: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Read(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers carry nothing a form needs
        };
        if buf.len() + data.len() > limit_bytes {
            return Err(BodyError::TooLarge { limit_bytes });
        }
        buf.extend_from_slice(&data);
        // `data` is dropped here, releasing hyper's read buffer behind it.
    }
    // Give back the doubling's slack: the body may live for a whole proposal.
    buf.shrink_to_fit();
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Body;
    use bytes::Bytes;
    use futures_util::stream;
    use http_body_util::StreamBody;

    use super::{read_capped, BodyError};

    fn frames(parts: Vec<&'static [u8]>) -> Body {
        let frames = parts
            .into_iter()
            .map(|p| Ok::<_, std::io::Error>(http_body::Frame::data(Bytes::from_static(p))));
        Body::new(StreamBody::new(stream::iter(frames)))
    }

    #[tokio::test]
    async fn frames_are_joined_into_one_buffer() {
        let body = frames(vec![b"val", b"ue", b"=", b"v"]);
        let read = read_capped(body, 16, Duration::from_secs(1)).await.unwrap();
        assert_eq!(&read[..], b"value=v");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused() {
        let body = frames(vec![b"12345", b"678"]);
        let err = read_capped(body, 7, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(
            matches!(err, BodyError::TooLarge { limit_bytes: 7 }),
            "{err}"
        );
        let exact = read_capped(frames(vec![b"1234567"]), 7, Duration::from_secs(1)).await;
        assert_eq!(&exact.unwrap()[..], b"1234567");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stalls_times_out() {
        let (tx, rx) =
            tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, std::io::Error>>(1);
        tx.send(Ok(http_body::Frame::data(Bytes::from_static(b"v"))))
            .await
            .unwrap();
        let body = Body::new(StreamBody::new(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ));
        let started = tokio::time::Instant::now();
        let err = read_capped(body, 16, Duration::from_secs(60))
            .await
            .unwrap_err();
        assert!(matches!(err, BodyError::TimedOut { .. }), "{err}");
        assert_eq!(started.elapsed(), Duration::from_secs(60));
        drop(tx);
    }
}
