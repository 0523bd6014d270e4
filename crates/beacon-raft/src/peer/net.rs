//! How bytes reach a peer and how a peer's bytes arrive: the transport's lowest seam.
//! Everything above it (the HTTP client with its pool, timeouts and error
//! classification, the axum router with its guard, body limits and snapshot streaming,
//! the accept loop with its connection cap) is the same code in production and in a
//! simulation; only the byte streams differ.
//!
//! [`PeerNet`] opens a connection to a peer's `host:port`; production's [`TcpNet`]
//! dials TCP, `beacon-sim` dials turmoil's simulated TCP. [`PeerAccept`] hands the
//! peer server the connections it accepts; production passes its `TcpListener`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

/// A byte stream to or from a peer.
pub trait PeerIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> PeerIo for T {}

/// A connection to a peer, whatever carries it.
pub type PeerStream = Box<dyn PeerIo>;

/// What [`PeerNet::connect`] returns: a connection, later.
pub type Connecting = Pin<Box<dyn Future<Output = io::Result<PeerStream>> + Send + 'static>>;

/// Opens connections to peers. The client bounds each attempt by its own connect
/// timeout, so an implementation need not.
pub trait PeerNet: Send + Sync + 'static {
    /// Opens a connection to `host:port`, the host and port of a peer URL (a name, an
    /// IPv4 address, or an IPv6 address without its brackets).
    fn connect(&self, host: &str, port: u16) -> Connecting;
}

/// Production's network: TCP, with Nagle's algorithm off (as reqwest set it, which
/// the peer client used before), since every message is one small request waiting
/// for its answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpNet;

impl PeerNet for TcpNet {
    fn connect(&self, host: &str, port: u16) -> Connecting {
        let host = host.to_owned();
        Box::pin(async move {
            let stream = TcpStream::connect((host.as_str(), port)).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as PeerStream)
        })
    }
}

/// Where the peer server's connections come from: production's `TcpListener`, or a
/// simulation's listener.
pub trait PeerAccept: Send + 'static {
    /// The connection type it hands over.
    type Io: PeerIo;

    /// The next connection and its remote address.
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Io, SocketAddr)>> + Send;

    /// Whether answers carry a `Date` header, read from the wall clock, as Go's server
    /// (so etcd's peer port) sends one. No peer reads it; a simulation turns it off so
    /// that no answer depends on the real clock.
    fn dates_answers(&self) -> bool {
        true
    }
}

impl PeerAccept for TcpListener {
    type Io = TcpStream;

    async fn accept(&mut self) -> io::Result<(TcpStream, SocketAddr)> {
        let (sock, remote) = TcpListener::accept(self).await?;
        // Answers are small and awaited: no Nagle delay on them.
        let _ = sock.set_nodelay(true);
        Ok((sock, remote))
    }
}
