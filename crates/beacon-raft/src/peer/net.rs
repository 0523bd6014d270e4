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
use std::sync::Arc;
use std::time::Duration;

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

    /// How a connection to an `https` peer URL is secured over what [`connect`] opened;
    /// `None` when this member has no peer TLS, and then such a URL is not dialed.
    ///
    /// [`connect`]: PeerNet::connect
    fn tls(&self) -> Option<&beacon_tls::Connector> {
        None
    }

    /// The HTTP proxy every connection goes through (`super::proxy`); `None`: direct.
    fn proxy(&self) -> Option<&super::proxy::HttpProxy> {
        None
    }
}

/// A network whose `https` peer URLs are dialed with TLS (`--peer-cert-file`,
/// `--peer-auto-tls`); `http` ones stay plain, as etcd decides by each URL's scheme.
pub struct TlsNet {
    inner: Arc<dyn PeerNet>,
    tls: beacon_tls::Connector,
}

impl TlsNet {
    /// `inner`'s connections, secured with `tls` for `https` peers.
    pub fn new(inner: Arc<dyn PeerNet>, tls: beacon_tls::Connector) -> TlsNet {
        TlsNet { inner, tls }
    }
}

impl PeerNet for TlsNet {
    fn connect(&self, host: &str, port: u16) -> Connecting {
        self.inner.connect(host, port)
    }

    fn tls(&self) -> Option<&beacon_tls::Connector> {
        Some(&self.tls)
    }
}

/// Opens a connection to a peer URL's `host:port` over `net`: as it comes for `http`,
/// with a TLS handshake on it for `https` (`secure`).
pub(crate) fn dial(net: &Arc<dyn PeerNet>, secure: bool, host: &str, port: u16) -> Connecting {
    if let Some(proxy) = net.proxy() {
        return super::proxy::dial(net, proxy, secure, host, port);
    }
    let plain = net.connect(host, port);
    if !secure {
        return plain;
    }
    let Some(tls) = net.tls().cloned() else {
        return Box::pin(async {
            Err(io::Error::other(
                "an https peer URL, but this member has no peer TLS \
                 (--peer-cert-file and --peer-key-file, or --peer-auto-tls)",
            ))
        });
    };
    let host = host.to_owned();
    Box::pin(async move {
        let stream = plain.await?;
        let secured = tls.connect(&host, stream).await?;
        Ok(Box::new(secured) as PeerStream)
    })
}

/// How long a peer connection may be silent before TCP probes it, and then how often
/// it probes: reqwest's defaults, which the peer client had before (etcd's dialer
/// probes after 30 s). Calls have their own deadlines; this finds a peer host that
/// vanished under an idle pooled connection.
const TCP_KEEPALIVE_IDLE: Duration = Duration::from_secs(15);
/// How many unanswered probes close the connection (reqwest's default).
const TCP_KEEPALIVE_PROBES_MAX: u32 = 3;
/// How long sent data may stay unacknowledged before the kernel closes the connection
/// (Linux's `TCP_USER_TIMEOUT`; reqwest's default).
#[cfg(any(target_os = "linux", target_os = "android"))]
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

/// Production's network: TCP, with Nagle's algorithm off (every message is one small
/// request waiting for its answer) and keepalive on, as reqwest, which the peer client
/// used before, set them.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpNet;

impl PeerNet for TcpNet {
    fn connect(&self, host: &str, port: u16) -> Connecting {
        let host = host.to_owned();
        Box::pin(async move {
            let stream = TcpStream::connect((host.as_str(), port)).await?;
            // Socket options are refinements: a connection that refuses one is still
            // used, as reqwest's connector did.
            if let Err(e) = tune(&stream) {
                tracing::debug!(error = %e, "setting a peer connection's TCP options");
            }
            Ok(Box::new(stream) as PeerStream)
        })
    }
}

fn tune(stream: &TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let sock = socket2::SockRef::from(stream);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(TCP_KEEPALIVE_IDLE)
        .with_interval(TCP_KEEPALIVE_IDLE)
        .with_retries(TCP_KEEPALIVE_PROBES_MAX);
    sock.set_tcp_keepalive(&keepalive)?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    sock.set_tcp_user_timeout(Some(TCP_USER_TIMEOUT))?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tcp_peer_connections_get_the_options_reqwest_gave_them() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        tune(&stream).unwrap();
        assert!(stream.nodelay().unwrap());
        let sock = socket2::SockRef::from(&stream);
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), TCP_KEEPALIVE_IDLE);
        assert_eq!(sock.tcp_keepalive_interval().unwrap(), TCP_KEEPALIVE_IDLE);
        assert_eq!(
            sock.tcp_keepalive_retries().unwrap(),
            TCP_KEEPALIVE_PROBES_MAX
        );
        #[cfg(any(target_os = "linux", target_os = "android"))]
        assert_eq!(sock.tcp_user_timeout().unwrap(), Some(TCP_USER_TIMEOUT));
    }
}
