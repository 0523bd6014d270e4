//! A member's answer on its way to the client (`forward`): streamed, and ended as
//! etcd's proxy ends it when the member's side fails midway.

use bytes::Bytes;
use hyper::body::Incoming;

/// A member's answer as the client gets it: frame by frame as they arrive, ended
/// cleanly when reading it fails (a read timeout, the member gone), as etcd's copy
/// ends and its handler returns.
pub struct Relayed {
    incoming: Incoming,
    ended: bool,
}

impl Relayed {
    /// Relays `incoming`.
    pub fn new(incoming: Incoming) -> Relayed {
        Relayed {
            incoming,
            ended: false,
        }
    }
}

impl http_body::Body for Relayed {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        use std::task::Poll;
        if self.ended {
            return Poll::Ready(None);
        }
        match std::pin::Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
            Poll::Ready(Some(Err(e))) => {
                tracing::info!("proxy: reading a member's answer: {e}");
                self.ended = true;
                Poll::Ready(None)
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.incoming.size_hint()
    }
}
