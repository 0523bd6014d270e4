//! A fault-injecting proxy for the peer traffic of a test cluster, on loopback.
//!
//! Member `i` listens for peers on its real port and advertises the proxy's port `i`
//! instead, so every Raft message and forwarded proposal *to* member `i` passes here.
//! The sender is named by the `X-Server-From` header every peer request carries (a
//! member id in hex, as etcd's rafthttp sends it); the target is the listener that took
//! the connection. A shared fault table decides, per request, whether to forward it
//! (after an optional random delay) or to black-hole it: never forwarded, never
//! answered, the connection held until the sender gives up or [`BLACK_HOLE_MAX`] passes.
//! That is how a partitioned link looks to the sender: silence, not a refusal.
//!
//! The proxy runs on its own thread and tokio runtime, so it serves whether or not the
//! test is async, and stops (dropping every held connection) when dropped.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use crate::rng::SeededRng;

/// The header naming a peer request's sender (a member id in lower-case hex).
pub const SERVER_FROM_HEADER: &str = "x-server-from";

/// How long a black-holed request's connection is held before it is closed unanswered;
/// longer than any peer timeout but a forwarded proposal's, so senders give up first.
pub const BLACK_HOLE_MAX: Duration = Duration::from_secs(5);

/// What the proxy did with the requests it received, since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyCounts {
    /// Requests passed on to their target.
    pub forwarded: u64,
    /// Requests forwarded after an added delay (also counted in `forwarded`).
    pub delayed: u64,
    /// Requests black-holed because their link was blocked.
    pub blocked: u64,
    /// Requests black-holed by the random drop probability.
    pub dropped: u64,
}

/// Which links are cut and how the others misbehave; members are indexes.
#[derive(Debug)]
struct FaultTable {
    /// Member id (from `X-Server-From`) to member index, once learnt.
    ids: HashMap<u64, usize>,
    /// Directed links (from, to) whose requests are black-holed.
    blocked: HashSet<(usize, usize)>,
    /// Added delay per forwarded request, a uniform range in milliseconds.
    delay_ms: Option<(u64, u64)>,
    /// Probability, in millionths, that a request on an open link is black-holed.
    drop_per_million: u64,
    rng: SeededRng,
    counts: ProxyCounts,
}

/// What to do with one request.
enum Verdict {
    Forward(Duration),
    BlackHole,
}

impl FaultTable {
    fn decide(&mut self, from: Option<u64>, to: usize) -> Verdict {
        let cut = match from.and_then(|id| self.ids.get(&id)) {
            Some(&from) => self.blocked.contains(&(from, to)),
            // A sender not yet learnt: cut if anything towards `to` is, to err on the
            // side of the partition.
            None => self.blocked.iter().any(|&(_, t)| t == to),
        };
        if cut {
            self.counts.blocked += 1;
            return Verdict::BlackHole;
        }
        if self.drop_per_million > 0 && self.rng.below(1_000_000) < self.drop_per_million {
            self.counts.dropped += 1;
            return Verdict::BlackHole;
        }
        self.counts.forwarded += 1;
        let delay = match self.delay_ms {
            Some((lo, hi)) => {
                self.counts.delayed += 1;
                lo + self.rng.below(hi - lo + 1)
            }
            None => 0,
        };
        Verdict::Forward(Duration::from_millis(delay))
    }
}

/// A proxy in front of each member's peer listener, with a shared fault table.
#[derive(Debug)]
pub struct FaultProxy {
    ports: Vec<u16>,
    table: Arc<Mutex<FaultTable>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Binds one loopback listener per target peer port (member `i` is `targets[i]`)
    /// and starts forwarding; `seed` drives the random delays and drops.
    pub fn start(targets: &[u16], seed: u64) -> std::io::Result<FaultProxy> {
        let listeners = targets
            .iter()
            .map(|_| {
                let l = std::net::TcpListener::bind("127.0.0.1:0")?;
                l.set_nonblocking(true)?;
                Ok(l)
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        let ports = listeners
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect::<std::io::Result<Vec<_>>>()?;
        let table = Arc::new(Mutex::new(FaultTable {
            ids: HashMap::new(),
            blocked: HashSet::new(),
            delay_ms: None,
            drop_per_million: 0,
            rng: SeededRng::new(seed),
            counts: ProxyCounts::default(),
        }));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let targets = targets.to_vec();
        let shared = Arc::clone(&table);
        let thread = std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || {
                runtime.block_on(async move {
                    // No overall timeout: a forwarded proposal may wait long for its commit.
                    // Idle pooled connections go well before a member closes them
                    // (10 s, as etcd), so no request is sent on one being closed.
                    let http = reqwest::Client::builder()
                        .connect_timeout(Duration::from_secs(1))
                        .pool_idle_timeout(Duration::from_secs(5))
                        .build()
                        .expect("a plain HTTP client builds");
                    for (to, (listener, target)) in listeners.into_iter().zip(targets).enumerate() {
                        let listener = tokio::net::TcpListener::from_std(listener)
                            .expect("a non-blocking std listener converts");
                        let link = Link {
                            to,
                            upstream: format!("http://127.0.0.1:{target}"),
                            table: Arc::clone(&shared),
                            http: http.clone(),
                        };
                        tokio::spawn(accept_loop(listener, link));
                    }
                    let _ = stopped.await;
                });
                // Dropping the runtime here cancels every connection task.
            })?;
        Ok(FaultProxy {
            ports,
            table,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The proxy's port in front of member `i`.
    pub fn port(&self, i: usize) -> u16 {
        self.ports[i]
    }

    /// `http://127.0.0.1:<proxy port of member i>`: the peer URL member `i` advertises.
    pub fn peer_url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[i])
    }

    /// Records that requests with `X-Server-From: <id in hex>` come from member `i`.
    pub fn learn_member_id(&self, i: usize, id: u64) {
        self.table().ids.insert(id, i);
    }

    /// Black-holes requests from member `from` to member `to` (one direction).
    pub fn block(&self, from: usize, to: usize) {
        self.table().blocked.insert((from, to));
    }

    /// Cuts member `i` off from every other member, both ways.
    pub fn isolate(&self, i: usize) {
        let n = self.ports.len();
        let mut t = self.table();
        for j in (0..n).filter(|&j| j != i) {
            t.blocked.insert((i, j));
            t.blocked.insert((j, i));
        }
    }

    /// Cuts every link between a member of `a` and a member of `b`, both ways.
    pub fn partition(&self, a: &[usize], b: &[usize]) {
        let mut t = self.table();
        for &x in a {
            for &y in b {
                t.blocked.insert((x, y));
                t.blocked.insert((y, x));
            }
        }
    }

    /// Adds a delay drawn uniformly from `min_ms..=max_ms` to every forwarded request.
    pub fn set_delay_ms(&self, min_ms: u64, max_ms: u64) {
        assert!(min_ms <= max_ms, "delay range {min_ms}..={max_ms}");
        self.table().delay_ms = Some((min_ms, max_ms));
    }

    /// Black-holes each request on an open link with `probability` (0.0 to 1.0).
    pub fn set_drop_probability(&self, probability: f64) {
        assert!((0.0..=1.0).contains(&probability), "{probability}");
        self.table().drop_per_million = (probability * 1_000_000.0) as u64;
    }

    /// Removes every fault: all links open, no delay, no drops.
    pub fn heal(&self) {
        let mut t = self.table();
        t.blocked.clear();
        t.delay_ms = None;
        t.drop_per_million = 0;
    }

    /// What the proxy did so far.
    pub fn counts(&self) -> ProxyCounts {
        self.table().counts
    }

    fn table(&self) -> MutexGuard<'_, FaultTable> {
        // A panicking test thread must not hide the table from the proxy's.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Everything a connection to the listener in front of member `to` needs.
#[derive(Clone)]
struct Link {
    to: usize,
    upstream: String,
    table: Arc<Mutex<FaultTable>>,
    http: reqwest::Client,
}

async fn accept_loop(listener: tokio::net::TcpListener, link: Link) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let link = link.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(link.clone(), req));
            // A black-holed request ends its connection with an error; nothing to report.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Why a connection is closed without an answer.
#[derive(Debug)]
struct Unanswered;

impl std::fmt::Display for Unanswered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request black-holed or its target unreachable")
    }
}

impl std::error::Error for Unanswered {}

async fn handle(link: Link, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Unanswered> {
    let from = req
        .headers()
        .get(SERVER_FROM_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| u64::from_str_radix(v, 16).ok());
    let verdict = link
        .table
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .decide(from, link.to);
    let delay = match verdict {
        Verdict::BlackHole => {
            tokio::time::sleep(BLACK_HOLE_MAX).await;
            return Err(Unanswered);
        }
        Verdict::Forward(delay) => delay,
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    forward(&link, req).await.map_err(|_| Unanswered)
}

/// Sends `req` on to the target and relays its answer; any failure closes the sender's
/// connection unanswered, which is what the sender would see without the proxy.
async fn forward(
    link: &Link,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Box<dyn std::error::Error + Send + Sync>> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut headers = parts.headers;
    for hop in ["host", "content-length", "connection", "transfer-encoding"] {
        headers.remove(hop);
    }
    let answer = link
        .http
        .request(parts.method, format!("{}{path}", link.upstream))
        .headers(headers)
        .body(body)
        .send()
        .await?;
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if !matches!(
            name.as_str(),
            "content-length" | "connection" | "transfer-encoding"
        ) {
            response = response.header(name, value);
        }
    }
    let bytes = answer.bytes().await?;
    Ok(response.body(Full::new(bytes))?)
}
