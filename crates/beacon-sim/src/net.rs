//! The peer network under turmoil: the real node's peer client dials turmoil's
//! simulated TCP ([`SimNet`]), and its peer server accepts from turmoil's listener
//! ([`SimListener`]). Everything above the byte streams (HTTP, the router, its guard
//! and limits, the client's pool, timeouts and error classification) is production's.

use std::io;
use std::net::SocketAddr;

use beacon_raft::peer::{Connecting, PeerAccept, PeerNet, PeerStream};

/// Dials peers over turmoil's network: a peer URL's host is a turmoil host name.
#[derive(Debug, Clone, Copy, Default)]
pub struct SimNet;

impl PeerNet for SimNet {
    fn connect(&self, host: &str, port: u16) -> Connecting {
        Box::pin(dial(host.to_owned(), port))
    }
}

/// Opens a turmoil connection to `host`'s `port`; no socket options to set, turmoil
/// has none.
async fn dial(host: String, port: u16) -> io::Result<PeerStream> {
    let stream = turmoil::net::TcpStream::connect((host, port)).await?;
    Ok(Box::new(stream))
}

/// turmoil's listener as the peer server's accept source.
pub struct SimListener(turmoil::net::TcpListener);

impl std::fmt::Debug for SimListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SimListener")
            .field(&self.0.local_addr().ok())
            .finish()
    }
}

impl SimListener {
    /// Listens on `port` of the current turmoil host.
    pub async fn bind(port: u16) -> io::Result<SimListener> {
        let listener = turmoil::net::TcpListener::bind(("0.0.0.0", port)).await?;
        Ok(SimListener(listener))
    }
}

impl From<turmoil::net::TcpListener> for SimListener {
    fn from(listener: turmoil::net::TcpListener) -> SimListener {
        SimListener(listener)
    }
}

impl PeerAccept for SimListener {
    type Io = turmoil::net::TcpStream;

    async fn accept(&mut self) -> io::Result<(turmoil::net::TcpStream, SocketAddr)> {
        self.0.accept().await
    }

    // hyper would read the real wall clock for each answer's `Date` header.
    fn dates_answers(&self) -> bool {
        false
    }
}
