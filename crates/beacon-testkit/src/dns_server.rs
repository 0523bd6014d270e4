//! A DNS server for the `--discovery-srv` tests: it answers SRV and A questions for
//! the names a test gives it, on port 53 (UDP and TCP) of an address of its own in
//! 127.0.0.0/8, since a resolver reads only port 53 from `resolv.conf`. A process sees
//! it through [`DnsServer::wrapper`], which bind-mounts a `resolv.conf` naming it over
//! `/etc/resolv.conf` in a mount namespace of that process alone (`unshare -m`, root).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, UdpSocket};

use crate::temp_dir::TempDir;

/// One SRV answer: priority, weight, port and target host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvAnswer {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: String,
}

impl SrvAnswer {
    /// Priority 0, weight 0: answered in the order given.
    pub fn new(target: &str, port: u16) -> SrvAnswer {
        SrvAnswer {
            priority: 0,
            weight: 0,
            port,
            target: target.to_string(),
        }
    }
}

/// What the server knows: names (lower case, no final dot) and their records.
#[derive(Default)]
struct Zone {
    srv: HashMap<String, Vec<SrvAnswer>>,
    a: HashMap<String, Ipv4Addr>,
}

/// How many addresses in 127.53.0.0/16 a server tries before it gives up on port 53.
const BIND_ATTEMPTS_MAX: u32 = 32;
/// The largest DNS message over TCP (its length prefix is 16 bits).
const TCP_MESSAGE_BYTES_MAX: usize = 65_535;

/// A running DNS server, stopped when dropped.
pub struct DnsServer {
    ip: Ipv4Addr,
    zone: Arc<Mutex<Zone>>,
    resolv_conf: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: TempDir,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl DnsServer {
    /// Starts a server on port 53 of a free address in 127.53.0.0/16.
    pub fn start() -> std::io::Result<DnsServer> {
        // Tests run in parallel: each server starts its search somewhere else.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let mut rng = crate::rng::SeededRng::new(u64::from(std::process::id() ^ nanos));
        let mut last_error = None;
        for _ in 0..BIND_ATTEMPTS_MAX {
            let pick = rng.below(0xfe00) + 0x100;
            let ip = Ipv4Addr::new(127, 53, (pick >> 8) as u8, (pick & 0xff).max(1) as u8);
            let bound = std::net::UdpSocket::bind((ip, 53))
                .and_then(|udp| Ok((udp, std::net::TcpListener::bind((ip, 53))?)));
            match bound {
                Ok((udp, tcp)) => return DnsServer::serve(ip, udp, tcp),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| std::io::Error::other("no address to bind")))
    }

    /// Serves on its own thread and runtime, so that a test may start and drop it
    /// inside its own runtime or outside any.
    fn serve(
        ip: Ipv4Addr,
        udp: std::net::UdpSocket,
        tcp: std::net::TcpListener,
    ) -> std::io::Result<DnsServer> {
        udp.set_nonblocking(true)?;
        tcp.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let zone = Arc::new(Mutex::new(Zone::default()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = Arc::clone(&zone);
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let (Ok(udp), Ok(tcp)) = (UdpSocket::from_std(udp), TcpListener::from_std(tcp))
                else {
                    return;
                };
                tokio::select! {
                    () = serve_udp(udp, Arc::clone(&served)) => {}
                    () = serve_tcp(tcp, served) => {}
                    _ = stopped => {}
                }
            });
        });
        let dir = TempDir::new("dns")?;
        let resolv_conf = dir.path().join("resolv.conf");
        std::fs::write(
            &resolv_conf,
            format!("nameserver {ip}\noptions attempts:2\n"),
        )?;
        Ok(DnsServer {
            ip,
            zone,
            resolv_conf,
            stop: Some(stop),
            thread: Some(thread),
            _dir: dir,
        })
    }

    /// The address it answers on (port 53).
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// A `resolv.conf` naming this server alone.
    pub fn resolv_conf(&self) -> &Path {
        &self.resolv_conf
    }

    /// Answers `name`'s SRV questions with `answers` (replacing what it had).
    pub fn set_srv(&self, name: &str, answers: Vec<SrvAnswer>) {
        self.zone_mut().srv.insert(key(name), answers);
    }

    /// Answers `name`'s A questions with `ip`.
    pub fn set_a(&self, name: &str, ip: Ipv4Addr) {
        self.zone_mut().a.insert(key(name), ip);
    }

    fn zone_mut(&self) -> std::sync::MutexGuard<'_, Zone> {
        self.zone.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The command a server process starts under so that it resolves names through
    /// this server: its program and arguments go after these.
    pub fn wrapper(&self) -> Vec<String> {
        let mount = format!(
            "mount --bind '{}' /etc/resolv.conf && exec \"$@\"",
            self.resolv_conf.display()
        );
        ["unshare", "-m", "sh", "-c", &mount, "sh"]
            .map(str::to_string)
            .to_vec()
    }

    /// Whether this machine lets a test do what [`DnsServer::wrapper`] does (a private
    /// mount namespace needs root).
    pub fn wrapper_works(&self) -> bool {
        std::process::Command::new(&self.wrapper()[0])
            .args(&self.wrapper()[1..])
            .args(["grep", "-q", &self.ip.to_string(), "/etc/resolv.conf"])
            .status()
            .is_ok_and(|s| s.success())
    }
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The answer to one question, as an authoritative server with recursion gives it
/// (Go's resolver takes a bare answer from a server without either for a lame
/// referral).
fn answer(zone: &Mutex<Zone>, query: &[u8]) -> Option<Vec<u8>> {
    let request = Message::from_vec(query).ok()?;
    let mut response = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
    response.metadata.authoritative = true;
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    let question = request.queries.first()?.clone();
    let name = question.name().clone();
    let wanted = key(&name.to_ascii());
    let zone = zone.lock().unwrap_or_else(|e| e.into_inner());
    let known = zone.srv.contains_key(&wanted) || zone.a.contains_key(&wanted);
    match question.query_type() {
        RecordType::SRV => {
            for s in zone.srv.get(&wanted).into_iter().flatten() {
                let target = Name::from_ascii(format!("{}.", key(&s.target))).ok()?;
                let srv = SRV::new(s.priority, s.weight, s.port, target);
                response.add_answer(Record::from_rdata(name.clone(), 30, RData::SRV(srv)));
            }
        }
        RecordType::A => {
            if let Some(ip) = zone.a.get(&wanted) {
                response.add_answer(Record::from_rdata(name.clone(), 30, RData::A(A(*ip))));
            }
        }
        _ => {}
    }
    if !known {
        response.metadata.response_code = ResponseCode::NXDomain;
    }
    response.add_query(question);
    response.to_vec().ok()
}

async fn serve_udp(socket: UdpSocket, zone: Arc<Mutex<Zone>>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        if let Some(reply) = answer(&zone, &buf[..n]) {
            let _ = socket.send_to(&reply, from).await;
        }
    }
}

async fn serve_tcp(listener: TcpListener, zone: Arc<Mutex<Zone>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(serve_tcp_connection(stream, Arc::clone(&zone)));
    }
}

/// Length-prefixed messages, one answer each, until the client closes.
async fn serve_tcp_connection(mut stream: tokio::net::TcpStream, zone: Arc<Mutex<Zone>>) {
    let mut buf = vec![0u8; TCP_MESSAGE_BYTES_MAX];
    loop {
        let Ok(len) = stream.read_u16().await else {
            return;
        };
        let message = &mut buf[..usize::from(len)];
        if stream.read_exact(message).await.is_err() {
            return;
        }
        let Some(reply) = answer(&zone, message) else {
            return;
        };
        let Ok(reply_len) = u16::try_from(reply.len()) else {
            return;
        };
        if stream.write_u16(reply_len).await.is_err() || stream.write_all(&reply).await.is_err() {
            return;
        }
    }
}
