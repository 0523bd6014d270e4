//! Calls through an HTTP forward proxy, as Go's `http.Transport{Proxy: ...}` makes
//! them (etcd's `--discovery-proxy`): every connection goes to the proxy; an `http`
//! target is then asked in absolute form (`GET http://host:port/path`, the pool marks
//! such connections proxied, see `call`), an `https` one through a `CONNECT host:port`
//! tunnel with the TLS handshake inside it. A proxy URL's credentials go in
//! `Proxy-Authorization`, on the CONNECT or on each plain request, never to the target
//! inside a tunnel.

use std::io;
use std::sync::Arc;

use http::HeaderValue;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::net::{Connecting, PeerNet, PeerStream};

/// The most a proxy's answer to CONNECT may take before its end (`\r\n\r\n`): a status
/// line and a few headers.
const CONNECT_ANSWER_BYTES_MAX: usize = 16 * 1024;

/// Where the proxy is, and what it is told about who asks.
#[derive(Clone, Debug)]
pub struct HttpProxy {
    host: String,
    port: u16,
    /// An `https://` proxy is spoken to over TLS (the member's TLS client).
    tls: bool,
    authorization: Option<HeaderValue>,
}

impl HttpProxy {
    /// The proxy at `host:port` (an IPv6 address without brackets), over TLS when `tls`,
    /// with `authorization` as each request's `Proxy-Authorization`.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        tls: bool,
        authorization: Option<HeaderValue>,
    ) -> HttpProxy {
        HttpProxy {
            host: host.into(),
            port,
            tls,
            authorization,
        }
    }

    /// The `Proxy-Authorization` a plain request through it carries.
    pub(crate) fn authorization(&self) -> Option<&HeaderValue> {
        self.authorization.as_ref()
    }
}

/// `inner`'s network with every connection made through `proxy`.
pub struct ProxyNet {
    inner: Arc<dyn PeerNet>,
    proxy: HttpProxy,
}

impl ProxyNet {
    /// Connections over `inner` (its TLS for `https` targets) through `proxy`.
    pub fn new(inner: Arc<dyn PeerNet>, proxy: HttpProxy) -> ProxyNet {
        ProxyNet { inner, proxy }
    }
}

impl PeerNet for ProxyNet {
    fn connect(&self, host: &str, port: u16) -> Connecting {
        self.inner.connect(host, port)
    }

    fn tls(&self) -> Option<&beacon_tls::Connector> {
        self.inner.tls()
    }

    fn proxy(&self) -> Option<&HttpProxy> {
        Some(&self.proxy)
    }
}

/// A connection to the target `host:port` through `proxy`: to the proxy itself for an
/// `http` target (the request names the target), a tunnel with TLS in it for `https`.
pub(crate) fn dial(
    net: &Arc<dyn PeerNet>,
    proxy: &HttpProxy,
    secure: bool,
    host: &str,
    port: u16,
) -> Connecting {
    let to_proxy = net.connect(&proxy.host, proxy.port);
    let tls = net.tls().cloned();
    let (proxy, host) = (proxy.clone(), host.to_owned());
    Box::pin(async move {
        let mut stream = to_proxy.await?;
        let no_tls = || io::Error::other("an https URL, but no TLS client to reach it with");
        if proxy.tls {
            let tls = tls.as_ref().ok_or_else(no_tls)?;
            stream = Box::new(tls.connect(&proxy.host, stream).await?);
        }
        if !secure {
            return Ok(stream);
        }
        connect_tunnel(&mut stream, &proxy, &host, port).await?;
        let tls = tls.as_ref().ok_or_else(no_tls)?;
        Ok(Box::new(tls.connect(&host, stream).await?) as PeerStream)
    })
}

/// `CONNECT host:port` on `stream`; `Ok` once the proxy answered 200, the stream then
/// a tunnel to the target. Go reports any other answer by its reason phrase alone.
async fn connect_tunnel(
    stream: &mut PeerStream,
    proxy: &HttpProxy,
    host: &str,
    port: u16,
) -> io::Result<()> {
    let target = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(auth) = proxy.authorization.as_ref().and_then(|a| a.to_str().ok()) {
        head.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.flush().await?;
    // Read byte by byte up to the blank line: nothing of the tunnel may be consumed.
    let mut answer = Vec::with_capacity(256);
    while !answer.ends_with(b"\r\n\r\n") {
        if answer.len() >= CONNECT_ANSWER_BYTES_MAX {
            return Err(io::Error::other(
                "the proxy's answer to CONNECT is too long",
            ));
        }
        let byte = stream.read_u8().await?;
        answer.push(byte);
    }
    let text = String::from_utf8_lossy(&answer);
    let status_line = text.lines().next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let (version, code) = (parts.next().unwrap_or_default(), parts.next());
    if !version.starts_with("HTTP/") {
        return Err(io::Error::other(format!(
            "malformed answer to CONNECT: {status_line:?}"
        )));
    }
    match (code, parts.next()) {
        (Some("200"), _) => Ok(()),
        (_, Some(reason)) => Err(io::Error::other(reason.to_string())),
        _ => Err(io::Error::other("unknown status code")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a proxy that answers `answer` to CONNECT does to `connect_tunnel`, and what
    /// it was asked.
    async fn tunnel_with(answer: &'static [u8]) -> (io::Result<()>, String) {
        let (client, mut server) = tokio::io::duplex(4096);
        let proxy = HttpProxy::new("p", 3128, false, HeaderValue::from_str("Basic eDp5").ok());
        let asked = tokio::spawn(async move {
            let mut seen = Vec::new();
            while !seen.ends_with(b"\r\n\r\n") {
                seen.push(server.read_u8().await.unwrap());
            }
            server.write_all(answer).await.unwrap();
            server.write_all(b"tunnel bytes").await.unwrap();
            String::from_utf8(seen).unwrap()
        });
        let mut stream: PeerStream = Box::new(client);
        let result = connect_tunnel(&mut stream, &proxy, "target.example", 443).await;
        if result.is_ok() {
            let mut rest = [0u8; 12];
            stream.read_exact(&mut rest).await.unwrap();
            assert_eq!(
                &rest, b"tunnel bytes",
                "the tunnel's first bytes stay unread"
            );
        }
        (result, asked.await.unwrap())
    }

    #[tokio::test]
    async fn a_tunnel_is_asked_for_with_the_credentials_and_opens_on_200() {
        let (result, asked) = tunnel_with(b"HTTP/1.1 200 Connection established\r\n\r\n").await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(
            asked,
            "CONNECT target.example:443 HTTP/1.1\r\nHost: target.example:443\r\n\
             Proxy-Authorization: Basic eDp5\r\n\r\n"
        );
    }

    #[tokio::test]
    async fn a_refused_tunnel_is_told_by_its_status() {
        let (result, _) =
            tunnel_with(b"HTTP/1.1 407 Proxy Authentication Required\r\nX: y\r\n\r\n").await;
        assert_eq!(
            result.unwrap_err().to_string(),
            "Proxy Authentication Required"
        );
    }
}
