//! A counting HTTP forward proxy for the `--discovery-proxy` tests: it takes requests
//! in absolute form (`GET http://host:port/path`) and `CONNECT host:port` tunnels, on a
//! loopback port, and records each request line. The names it connects to are its own
//! to resolve (`hosts`), so a test can give its clients a URL only the proxy can reach.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// The most a request head may take.
const HEAD_BYTES_MAX: usize = 64 * 1024;

/// A running proxy, stopped when dropped.
pub struct ForwardProxy {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ForwardProxy {
    /// A proxy on a free loopback port that reaches `hosts`' names at their addresses
    /// (any other host as its literal address).
    pub fn start(hosts: &[(&str, IpAddr)]) -> std::io::Result<ForwardProxy> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let hosts: Arc<HashMap<String, IpAddr>> = Arc::new(
            hosts
                .iter()
                .map(|(name, ip)| (name.to_ascii_lowercase(), *ip))
                .collect(),
        );
        let seen = Arc::new(Mutex::new(Vec::new()));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let recorded = Arc::clone(&seen);
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = TcpListener::from_std(listener) else {
                    return;
                };
                let accepting = async {
                    loop {
                        let Ok((client, _)) = listener.accept().await else {
                            continue;
                        };
                        let (hosts, seen) = (Arc::clone(&hosts), Arc::clone(&recorded));
                        tokio::spawn(async move {
                            let _ = relay(client, &hosts, &seen).await;
                        });
                    }
                };
                tokio::select! {
                    () = accepting => {}
                    _ = stopped => {}
                }
            });
        });
        Ok(ForwardProxy {
            port,
            seen,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The proxy's URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The request lines it took so far, in order (`CONNECT host:port HTTP/1.1`, `GET
    /// http://host:port/path HTTP/1.1`, ...).
    pub fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for ForwardProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads a request head (up to its blank line, nothing more).
async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::with_capacity(512);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= HEAD_BYTES_MAX {
            return Err(std::io::Error::other("request head too long"));
        }
        head.push(stream.read_u8().await?);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

fn address(
    authority: &str,
    default_port: u16,
    hosts: &HashMap<String, IpAddr>,
) -> Option<SocketAddr> {
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (authority, default_port),
    };
    let ip = match hosts.get(&host.to_ascii_lowercase()) {
        Some(ip) => *ip,
        None => host.parse().ok()?,
    };
    Some(SocketAddr::new(ip, port))
}

/// One client connection: a tunnel, or one plain request (sent upstream with
/// `Connection: close`, so that each request of the client comes on a connection of
/// its own and is seen here).
async fn relay(
    mut client: TcpStream,
    hosts: &HashMap<String, IpAddr>,
    seen: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let head = read_head(&mut client).await?;
    let request_line = head.lines().next().unwrap_or_default().to_string();
    seen.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(request_line.clone());
    let mut parts = request_line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method == "CONNECT" {
        let Some(to) = address(target, 443, hosts) else {
            client
                .write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
                .await?;
            return Ok(());
        };
        let mut upstream = TcpStream::connect(to).await?;
        client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await?;
        tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
        return Ok(());
    }
    let Some(rest) = target.strip_prefix("http://") else {
        client
            .write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            .await?;
        return Ok(());
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let Some(to) = address(authority, 80, hosts) else {
        client
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
            .await?;
        return Ok(());
    };
    let path = if path.is_empty() { "/" } else { path };
    let version = parts.next().unwrap_or("HTTP/1.1");
    let mut forwarded = format!("{method} {path} {version}\r\n");
    for line in head.lines().skip(1).filter(|l| !l.is_empty()) {
        let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
        if name != "connection" && name != "proxy-connection" && name != "proxy-authorization" {
            forwarded.push_str(line);
            forwarded.push_str("\r\n");
        }
    }
    forwarded.push_str("Connection: close\r\n\r\n");
    let mut upstream = TcpStream::connect(to).await?;
    upstream.write_all(forwarded.as_bytes()).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}
