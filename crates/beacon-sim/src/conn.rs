//! A client's connection to a member's client port over turmoil's TCP, kept while it
//! works and dropped on any error or timeout (a late answer must never be taken for the
//! next call's), every call bounded by the client's deadline; and the hosts' names.

use std::time::Duration;

use turmoil::net::TcpStream;

use crate::wire::{read_frame, write_frame, Answer, Request};

/// The port a member serves its peers on (the real peer API, over HTTP).
pub const PEER_PORT: u16 = 2380;
/// The port a member serves the simulated clients on (see `wire`).
pub const CLIENT_PORT: u16 = 2379;

/// How long to wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The turmoil host name of member `id`.
pub fn host_name(id: u64) -> String {
    format!("m{id}")
}

/// The peer URL member `id` records in the membership.
pub fn peer_url(id: u64) -> String {
    format!("http://{}:{PEER_PORT}", host_name(id))
}

/// Why a call failed.
#[derive(Debug)]
pub enum CallError {
    /// No connection could be made: nothing was sent.
    NotSent(String),
    /// No answer in time: the request may or may not have arrived.
    Timeout,
    /// The connection broke, or the answer made no sense.
    Broken(String),
}

/// A connection to one member, made on first use and after any failure.
pub struct Connection {
    target: u64,
    stream: Option<TcpStream>,
}

impl Connection {
    /// No connection yet to member `target`.
    pub fn new(target: u64) -> Connection {
        Connection {
            target,
            stream: None,
        }
    }

    /// Sends `request` (with `body`) and waits for the answer, all within `ttl`.
    pub async fn call(
        &mut self,
        request: &Request,
        body: &[u8],
        ttl: Duration,
    ) -> Result<(Answer, Vec<u8>), CallError> {
        let deadline = tokio::time::Instant::now() + ttl;
        if self.stream.is_none() {
            let addr = (host_name(self.target), CLIENT_PORT);
            let connecting = TcpStream::connect(addr);
            match tokio::time::timeout(CONNECT_TIMEOUT.min(ttl), connecting).await {
                Ok(Ok(stream)) => self.stream = Some(stream),
                Ok(Err(e)) => return Err(CallError::NotSent(e.to_string())),
                Err(_) => return Err(CallError::NotSent("connect timed out".into())),
            }
        }
        let stream = self.stream.as_mut().expect("connected above");
        let exchange = async {
            write_frame(stream, request, body).await?;
            read_frame::<_, Answer>(stream).await
        };
        let result = match tokio::time::timeout_at(deadline, exchange).await {
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err(e)) => Err(CallError::Broken(e.to_string())),
            Err(_) => Err(CallError::Timeout),
        };
        self.stream = None;
        result
    }
}
