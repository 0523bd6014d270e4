//! The v3 client's connector: TCP to an endpoint, with a TLS handshake on it for an
//! `https` one, as tonic's channel wants its connections (hyper's I/O traits).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A byte stream to an endpoint: TCP, or TLS over it.
pub(crate) trait EndpointIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> EndpointIo for T {}

/// Opens connections for a tonic channel; cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct TlsConnect {
    pub(crate) tls: beacon_tls::Connector,
}

type Connecting =
    Pin<Box<dyn Future<Output = std::io::Result<TokioIo<Box<dyn EndpointIo>>>> + Send>>;

impl tower::Service<http::Uri> for TlsConnect {
    type Response = TokioIo<Box<dyn EndpointIo>>;
    type Error = std::io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Connecting {
        let tls = self.tls.clone();
        Box::pin(async move {
            let secure = uri.scheme_str() == Some("https");
            let host = uri
                .host()
                .ok_or_else(|| std::io::Error::other(format!("no host in {uri}")))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            let _ = tcp.set_nodelay(true);
            let io: Box<dyn EndpointIo> = if secure {
                Box::new(tls.connect(&host, tcp).await?)
            } else {
                Box::new(tcp)
            };
            Ok(TokioIo::new(io))
        })
    }
}
