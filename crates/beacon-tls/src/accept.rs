//! A listener's and a dialer's side of a TLS connection over any byte stream: the
//! handshake, and after it etcd's check that a peer's client certificate names the
//! address it connects from.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::identity::subject_alt_names;

/// Accepts TLS connections with one server configuration.
#[derive(Clone)]
pub struct Acceptor {
    inner: tokio_rustls::TlsAcceptor,
    check_san: bool,
}

impl Acceptor {
    /// Accepts with `config`. With `check_san` (a peer listener, unless
    /// `--experimental-peer-skip-client-san-verification`), a client certificate must
    /// name the address the connection comes from, as etcd's peer listener requires.
    pub fn new(config: Arc<ServerConfig>, check_san: bool) -> Acceptor {
        Acceptor {
            inner: tokio_rustls::TlsAcceptor::from(config),
            check_san,
        }
    }

    /// The handshake on `io`, which came from `remote`; the caller bounds its time.
    pub async fn accept<IO>(
        &self,
        io: IO,
        remote: SocketAddr,
    ) -> io::Result<tokio_rustls::server::TlsStream<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let stream = self.inner.accept(io).await?;
        if self.check_san {
            let (_, conn) = stream.get_ref();
            if let Some(cert) = conn.peer_certificates().and_then(|c| c.first()) {
                let (ips, names) = subject_alt_names(cert);
                if !names_address(&ips, &names, remote.ip()).await {
                    return Err(io::Error::other(format!(
                        "client certificate does not name {} (IP SANs {ips:?}, DNS SANs {names:?})",
                        remote.ip()
                    )));
                }
            }
        }
        Ok(stream)
    }
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptor")
            .field("check_san", &self.check_san)
            .finish_non_exhaustive()
    }
}

/// Whether `ip` is among the certificate's IP SANs, or a DNS SAN resolves to it; a
/// certificate that names no address at all passes, as etcd lets it.
async fn names_address(ips: &[IpAddr], names: &[String], ip: IpAddr) -> bool {
    if (ips.is_empty() && names.is_empty()) || ips.contains(&ip) {
        return true;
    }
    for name in names {
        if let Ok(found) = tokio::net::lookup_host((name.as_str(), 0)).await {
            if found.map(|a| a.ip()).any(|a| a == ip) {
                return true;
            }
        }
    }
    false
}

/// Opens TLS connections with one client configuration.
#[derive(Clone)]
pub struct Connector {
    inner: tokio_rustls::TlsConnector,
    /// The name every server's certificate is checked against, instead of the host
    /// dialed (etcd's `TLSInfo.ServerName`).
    server_name: Option<String>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector").finish_non_exhaustive()
    }
}

impl Connector {
    /// Connects with `config`.
    pub fn new(config: Arc<ClientConfig>) -> Connector {
        Connector {
            inner: tokio_rustls::TlsConnector::from(config),
            server_name: None,
        }
    }

    /// This connector, checking every server's certificate against `name` whatever host
    /// it dials (and sending it as SNI).
    pub fn with_server_name(self, name: String) -> Connector {
        Connector {
            server_name: Some(name),
            ..self
        }
    }

    /// The handshake on `io` with the server at `host` (a name or an IP, which its
    /// certificate must name, unless a server name was given); the caller bounds its
    /// time.
    pub async fn connect<IO>(
        &self,
        host: &str,
        io: IO,
    ) -> io::Result<tokio_rustls::client::TlsStream<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let host = self.server_name.as_deref().unwrap_or(host);
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.inner.connect(name, io).await
    }
}
