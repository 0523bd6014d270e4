//! `beaconctl proxy` HTTP/1.1 conformance, byte for byte: raw TCP clients in front of
//! the proxy, and behind it a scripted raw TCP upstream registered in a real registry,
//! which records the exact bytes the proxy forwarded and answers with scripted bytes
//! chosen by the request path.
//!
//! Assertions marked `PIN:` pin behaviour that is a choice (RFC 9110/9112 allow more than
//! one), so that a change to it is a decision, not an accident.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use beacon_testkit::{ServerKind, ServerProcess};
use support::{registry, Proxy};

/// How long any single read may wait; a test that needs longer has failed.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request or response head either side accepts.
const HEAD_MAX: usize = 64 * 1024;
/// Most requests one upstream connection serves (a bound on its loop).
const REQUESTS_PER_CONN_MAX: usize = 10_000;
/// The `/big` answer's length.
const BIG: usize = 1 << 20;
/// Largest body either side reads (a bound on its loops).
const BODY_MAX: usize = 4 * BIG;
/// Most connections the upstream accepts (a bound on its loop).
const CONNS_MAX: usize = 10_000;
/// The service the upstream registers as.
const SERVICE: &str = "h1";

// ---------------------------------------------------------------------------------------
// Bytes on a socket.

/// Reads more bytes into `buf`; false on EOF, timeout or error.
fn fill(sock: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 64 * 1024];
    match sock.read(&mut chunk) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Takes a head (through its blank line) off the front of `buf`, reading as needed.
fn take_head(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    loop {
        if let Some(at) = find(buf, b"\r\n\r\n") {
            return Some(buf.drain(..at + 4).collect());
        }
        if buf.len() > HEAD_MAX || !fill(sock, buf) {
            return None;
        }
    }
}

/// Takes `n` bytes off the front of `buf`, reading as needed.
fn take_exact(sock: &mut TcpStream, buf: &mut Vec<u8>, n: usize) -> Option<Vec<u8>> {
    if n > BODY_MAX {
        return None;
    }
    while buf.len() < n {
        if !fill(sock, buf) {
            return None;
        }
    }
    Some(buf.drain(..n).collect())
}

/// Takes one CRLF-terminated line (without the CRLF) off the front of `buf`.
fn take_line(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    loop {
        if let Some(at) = find(buf, b"\r\n") {
            let line = buf.drain(..at + 2).take(at).collect();
            return Some(line);
        }
        if buf.len() > HEAD_MAX || !fill(sock, buf) {
            return None;
        }
    }
}

/// Decodes a chunked body off the front of `buf`: the payload, and the raw bytes
/// (chunk framing and trailer included).
fn take_chunked(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut payload = Vec::new();
    let mut raw = Vec::new();
    while raw.len() <= BODY_MAX {
        let line = take_line(sock, buf)?;
        raw.extend_from_slice(&line);
        raw.extend_from_slice(b"\r\n");
        let text = String::from_utf8_lossy(&line);
        let size = text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16).ok()?;
        if size == 0 {
            // Trailer fields, up to the blank line.
            while raw.len() <= BODY_MAX {
                let line = take_line(sock, buf)?;
                raw.extend_from_slice(&line);
                raw.extend_from_slice(b"\r\n");
                if line.is_empty() {
                    return Some((payload, raw));
                }
            }
            return None;
        }
        let data = take_exact(sock, buf, size.checked_add(2)?)?;
        raw.extend_from_slice(&data);
        payload.extend_from_slice(&data[..size]);
    }
    None
}

/// The header fields of a head, names as written.
fn parse_fields(head: &str) -> Vec<(String, String)> {
    head.split("\r\n")
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.to_string(), v.trim().to_string()))
        .collect()
}

/// Every value of header `name` (case-insensitive), in order.
fn values<'a>(fields: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

// ---------------------------------------------------------------------------------------
// The scripted upstream.

/// One request as the upstream received it.
#[derive(Clone, Debug)]
struct Seen {
    /// Which upstream connection it came on, in accept order.
    conn: usize,
    /// The head exactly as received, through the blank line.
    head: String,
    /// The body, de-chunked if it came chunked.
    body: Vec<u8>,
}

impl Seen {
    fn request_line(&self) -> &str {
        self.head.split("\r\n").next().unwrap_or("")
    }

    fn target(&self) -> &str {
        self.request_line().split(' ').nth(1).unwrap_or("")
    }

    fn fields(&self) -> Vec<(String, String)> {
        parse_fields(&self.head)
    }

    /// Lowercased header names, in order.
    fn names(&self) -> Vec<String> {
        self.fields()
            .into_iter()
            .map(|(n, _)| n.to_ascii_lowercase())
            .collect()
    }
}

/// Holds `/slow-body` answers half sent until the test opens it.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    changed: Condvar,
}

impl Gate {
    fn open(&self) {
        if let Ok(mut open) = self.open.lock() {
            *open = true;
            self.changed.notify_all();
        }
    }

    /// Waits until open, at most `IO_TIMEOUT`.
    fn wait(&self) {
        let Ok(open) = self.open.lock() else { return };
        let _ = self
            .changed
            .wait_timeout_while(open, IO_TIMEOUT, |open| !*open);
    }
}

/// A raw HTTP/1.1 server on loopback answering scripted bytes, a thread per connection.
struct Upstream {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    gate: Arc<Gate>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

/// What the connection does after an answer.
enum After {
    KeepOpen,
    Close,
}

impl Upstream {
    fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the upstream");
        let addr = listener.local_addr().expect("upstream address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new(Gate::default());
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let (seen, gate, stop) = (seen.clone(), gate.clone(), stop.clone());
            let conns = AtomicUsize::new(0);
            std::thread::spawn(move || {
                for sock in listener.incoming().take(CONNS_MAX) {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(sock) = sock else { continue };
                    let conn = conns.fetch_add(1, Ordering::SeqCst);
                    let (seen, gate) = (seen.clone(), gate.clone());
                    std::thread::spawn(move || serve(sock, conn, &seen, &gate));
                }
            })
        };
        Upstream {
            addr,
            seen,
            gate,
            stop,
            acceptor: Some(acceptor),
        }
    }

    /// The requests whose target starts with `prefix`, in arrival order.
    fn seen(&self, prefix: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .map(|s| {
                s.iter()
                    .filter(|r| r.target().starts_with(prefix))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every request received, in arrival order.
    fn all(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The one request whose target starts with `prefix`.
    fn one(&self, prefix: &str) -> Seen {
        let seen = self.seen(prefix);
        assert_eq!(seen.len(), 1, "requests to {prefix}: {seen:#?}");
        seen[0].clone()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.gate.open();
        // Wakes the acceptor, which then sees the stop; without that, it is left be.
        if TcpStream::connect(self.addr).is_ok() {
            if let Some(acceptor) = self.acceptor.take() {
                let _ = acceptor.join();
            }
        }
    }
}

/// Serves one upstream connection: read a request, record it, answer by its path.
fn serve(mut sock: TcpStream, conn: usize, seen: &Mutex<Vec<Seen>>, gate: &Gate) {
    let _ = sock.set_read_timeout(Some(IO_TIMEOUT));
    let mut buf = Vec::new();
    for _ in 0..REQUESTS_PER_CONN_MAX {
        let Some(head) = take_head(&mut sock, &mut buf) else {
            return;
        };
        let head = String::from_utf8_lossy(&head).into_owned();
        let fields = parse_fields(&head);
        let chunked = values(&fields, "transfer-encoding")
            .iter()
            .any(|v| v.eq_ignore_ascii_case("chunked"));
        let length = values(&fields, "content-length")
            .first()
            .and_then(|v| v.parse::<usize>().ok());
        let body = if chunked {
            take_chunked(&mut sock, &mut buf).map(|(payload, _)| payload)
        } else {
            take_exact(&mut sock, &mut buf, length.unwrap_or(0))
        };
        let Some(body) = body else { return };
        let request = Seen { conn, head, body };
        let target = request.target().to_string();
        if let Ok(mut seen) = seen.lock() {
            seen.push(request);
        }
        match answer(&mut sock, &target, gate) {
            After::KeepOpen => {}
            After::Close => {
                let _ = sock.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

/// Writes the scripted answer for `target`.
fn answer(sock: &mut TcpStream, target: &str, gate: &Gate) -> After {
    let path = target.split('?').next().unwrap_or("");
    let route = path.split('/').nth(1).unwrap_or("");
    let mut write = |bytes: &[u8]| {
        let _ = sock.write_all(bytes);
        let _ = sock.flush();
    };
    match route {
        "drop" => return After::Close,
        "chunked" => write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Route: chunked\r\n\r\n\
              5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n",
        ),
        "close-delimited" => {
            write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the upstream closes");
            return After::Close;
        }
        "continue" => {
            write(b"HTTP/1.1 100 Continue\r\n\r\n");
            write(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\ncontinued");
        }
        "trailer" => write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n\
              5\r\nhello\r\n0\r\nX-Sum: 5\r\n\r\n",
        ),
        "dated" => write(
            b"HTTP/1.1 200 OK\r\nDate: Mon, 01 Jan 2001 00:00:00 GMT\r\nServer: scripted\r\n\
              Content-Length: 0\r\n\r\n",
        ),
        "no-content" => write(b"HTTP/1.1 204 No Content\r\nX-Route: no-content\r\n\r\n"),
        "not-modified" => write(b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n"),
        "head" => write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Route: head\r\n\r\n"),
        "big" => {
            let mut bytes =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {BIG}\r\n\r\n").into_bytes();
            bytes.extend(big_body());
            write(&bytes);
        }
        "slow-body" => {
            write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nfirst");
            gate.wait();
            write(b"-last");
        }
        "headers" => write(
            b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\nConnection: x-foo\r\n\
              X-Foo: dropped\r\nProxy-Authenticate: Basic\r\nX-Kept: yes\r\n\
              Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 2\r\n\r\nok",
        ),
        "reason" => write(b"HTTP/1.1 299 Fine Thanks\r\nContent-Length: 0\r\n\r\n"),
        "teapot" => write(b"HTTP/1.1 418 I'm a teapot\r\nContent-Length: 3\r\n\r\ntea"),
        "unavailable" => {
            write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy")
        }
        "malformed" => {
            write(b"HTTP/1.1 abc\r\n\r\n");
            return After::Close;
        }
        _ => write(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Route: echo\r\n\r\n{target}",
                target.len()
            )
            .as_bytes(),
        ),
    }
    After::KeepOpen
}

/// The `/big` answer's body: a pattern, so a lost or repeated piece shows.
fn big_body() -> Vec<u8> {
    (0..BIG).map(|i| (i % 251) as u8).collect()
}

// ---------------------------------------------------------------------------------------
// The raw client.

/// How a response's body was delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// No body by the rules (HEAD, 1xx, 204, 304).
    None,
    Length(usize),
    Chunked,
    /// Read until the connection closed.
    Close,
}

/// One response as the client received it.
#[derive(Clone, Debug)]
struct Answer {
    head: String,
    body: Vec<u8>,
    framing: Framing,
    /// The body's bytes on the wire (chunk framing included).
    raw_body: Vec<u8>,
}

impl Answer {
    fn status_line(&self) -> &str {
        self.head.split("\r\n").next().unwrap_or("")
    }

    fn status(&self) -> u16 {
        self.status_line()
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    fn fields(&self) -> Vec<(String, String)> {
        parse_fields(&self.head)
    }

    fn values(&self, name: &str) -> Vec<String> {
        values(&self.fields(), name)
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    fn names(&self) -> Vec<String> {
        self.fields()
            .into_iter()
            .map(|(n, _)| n.to_ascii_lowercase())
            .collect()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A raw client connection to the proxy.
struct Client {
    sock: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn connect(addr: &str) -> Client {
        let sock = TcpStream::connect(addr).expect("the proxy accepts");
        sock.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        Client {
            sock,
            buf: Vec::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.sock
            .write_all(bytes)
            .expect("the proxy takes the bytes");
    }

    /// The next response head, or `None` if the connection ended first.
    fn head(&mut self) -> Option<String> {
        take_head(&mut self.sock, &mut self.buf).map(|h| String::from_utf8_lossy(&h).into_owned())
    }

    /// Reads the next response; `head_request` when it answers a HEAD.
    fn answer(&mut self, head_request: bool) -> Answer {
        let head = self.head().unwrap_or_else(|| {
            panic!(
                "no response head; got {:?}",
                String::from_utf8_lossy(&self.buf)
            )
        });
        let fields = parse_fields(&head);
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not a status line: {head:?}"));
        let chunked = values(&fields, "transfer-encoding")
            .iter()
            .any(|v| v.eq_ignore_ascii_case("chunked"));
        let length = values(&fields, "content-length")
            .first()
            .and_then(|v| v.parse::<usize>().ok());
        let (framing, body, raw_body) =
            if head_request || status < 200 || status == 204 || status == 304 {
                (Framing::None, Vec::new(), Vec::new())
            } else if chunked {
                let (body, raw) = take_chunked(&mut self.sock, &mut self.buf)
                    .unwrap_or_else(|| panic!("a chunked body after {head:?}"));
                (Framing::Chunked, body, raw)
            } else if let Some(n) = length {
                let body = take_exact(&mut self.sock, &mut self.buf, n)
                    .unwrap_or_else(|| panic!("{n} body bytes after {head:?}"));
                (Framing::Length(n), body.clone(), body)
            } else {
                let mut body = std::mem::take(&mut self.buf);
                let mut chunk = [0u8; 64 * 1024];
                while body.len() <= BODY_MAX {
                    match self.sock.read(&mut chunk) {
                        Ok(0) => break,
                        Ok(n) => body.extend_from_slice(&chunk[..n]),
                        Err(e) => panic!("close-delimited body after {head:?}: {e}"),
                    }
                }
                (Framing::Close, body.clone(), body)
            };
        Answer {
            head,
            body,
            framing,
            raw_body,
        }
    }

    /// Sends `GET target` (HTTP/1.1, keep-alive) and reads its answer.
    fn get(&mut self, target: &str) -> Answer {
        self.send(format!("GET {target} HTTP/1.1\r\nHost: proxy\r\n\r\n").as_bytes());
        self.answer(false)
    }

    /// Asserts the connection still serves a request, framed right after the last one.
    fn assert_usable(&mut self, after: &str) {
        let target = format!("/next/after-{}", after.replace(' ', "-"));
        let answer = self.get(&target);
        assert_eq!(
            (answer.status(), answer.text()),
            (200, target),
            "the connection after {after}: {answer:?}"
        );
    }

    /// Reads exactly `n` more bytes.
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        take_exact(&mut self.sock, &mut self.buf, n)
            .unwrap_or_else(|| panic!("{n} bytes; got {:?}", String::from_utf8_lossy(&self.buf)))
    }

    /// Whether the proxy closes the connection (EOF or reset) within `IO_TIMEOUT`
    /// without sending anything more.
    fn closes(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut byte = [0u8; 1];
        match self.sock.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        }
    }
}

/// One GET on a fresh `Connection: close` connection.
fn get_once(addr: &str, target: &str) -> Answer {
    let mut client = Client::connect(addr);
    client.send(
        format!("GET {target} HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    client.answer(false)
}

// ---------------------------------------------------------------------------------------
// The rig: registry, upstream registered in it, proxy over it.

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Registers `addr` as instance `id` of `service` with a plain v2 PUT, in the shape
/// `beacon-instance` writes: `/services/<service>/dc1/<id>` = `{"hostname":..,"port":".."}`.
fn register(registry: &ServerProcess, service: &str, id: &str, addr: SocketAddr) {
    let value = format!(r#"{{"hostname":"{}","port":"{}"}}"#, addr.ip(), addr.port());
    let form = format!("value={}", percent_encode(&value));
    let mut sock = TcpStream::connect(("127.0.0.1", registry.client_port())).expect("registry");
    sock.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    write!(
        sock,
        "PUT /v2/keys/services/{service}/dc1/{id} HTTP/1.1\r\nHost: registry\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{form}",
        form.len()
    )
    .expect("write the registration");
    let mut answer = String::new();
    let _ = sock.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.1 201"),
        "registering: {answer}"
    );
}

/// A registry, the scripted upstream registered in it, and a proxy answering through it.
struct Rig {
    // Dropped in this order: the proxy, then the upstream, then the registry.
    proxy: Proxy,
    upstream: Upstream,
    _registry: ServerProcess,
}

impl Rig {
    fn start(extra: &[&str]) -> Rig {
        let registry = registry(ServerKind::Beacon);
        let upstream = Upstream::start();
        register(&registry, SERVICE, "up", upstream.addr);
        let proxy = Proxy::start(&registry.client_url(), SERVICE, extra);
        // Discovery is asynchronous: poll until a request goes through.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let answer = get_once(&proxy.addr, "/ready");
            if answer.status() == 200 && answer.body == b"/ready" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the proxy never answered through the upstream: {answer:?}"
            );
        }
        Rig {
            proxy,
            upstream,
            _registry: registry,
        }
    }

    fn client(&self) -> Client {
        Client::connect(&self.proxy.addr)
    }
}

/// Asserts `answer` has none of the headers `names` (lowercase).
fn assert_no_headers(answer: &Answer, names: &[&str], what: &str) {
    let present = answer.names();
    for name in names {
        assert!(
            !present.iter().any(|n| n == name),
            "{what}: {name} must not be there: {answer:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 1. Connections.

#[test]
fn keep_alive_and_pipelining() {
    let rig = Rig::start(&[]);
    // Three requests, one after the other, on one client connection.
    let mut client = rig.client();
    for i in 1..=3 {
        let target = format!("/ka/{i}");
        let answer = client.get(&target);
        assert_eq!(answer.status_line(), "HTTP/1.1 200 OK", "{answer:?}");
        assert_eq!(answer.framing, Framing::Length(target.len()));
        assert_eq!(answer.text(), target);
        assert_eq!(answer.values("x-route"), ["echo"]);
    }
    let lines: Vec<String> = rig
        .upstream
        .seen("/ka/")
        .iter()
        .map(|r| r.request_line().to_string())
        .collect();
    assert_eq!(
        lines,
        [
            "GET /ka/1 HTTP/1.1",
            "GET /ka/2 HTTP/1.1",
            "GET /ka/3 HTTP/1.1"
        ]
    );

    // Two requests in one write: two answers, in order.
    client.send(
        b"GET /pipe/1 HTTP/1.1\r\nHost: proxy\r\n\r\nGET /pipe/2 HTTP/1.1\r\nHost: proxy\r\n\r\n",
    );
    assert_eq!(client.answer(false).text(), "/pipe/1");
    assert_eq!(client.answer(false).text(), "/pipe/2");
    assert_eq!(rig.upstream.seen("/pipe/").len(), 2);
    client.assert_usable("pipelining");

    // A pipelined GET then HEAD then GET: the HEAD answer has no body in between.
    client.send(
        b"GET /pipe/3 HTTP/1.1\r\nHost: proxy\r\n\r\nHEAD /head HTTP/1.1\r\nHost: proxy\r\n\r\n\
          GET /pipe/4 HTTP/1.1\r\nHost: proxy\r\n\r\n",
    );
    assert_eq!(client.answer(false).text(), "/pipe/3");
    let head = client.answer(true);
    assert_eq!(head.values("content-length"), ["5"]);
    assert_eq!(client.answer(false).text(), "/pipe/4");

    // The client's `Connection: close` is honoured: the answer says so, then the
    // connection closes.
    client.send(b"GET /ka/close HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n");
    let answer = client.answer(false);
    assert_eq!(answer.text(), "/ka/close");
    assert_eq!(answer.values("connection"), ["close"]);
    assert!(client.closes(), "the proxy closes after Connection: close");
}

// ---------------------------------------------------------------------------------------
// 2. What the upstream receives.

#[test]
fn what_the_upstream_receives() {
    let rig = Rig::start(&[]);
    let host = rig.upstream.addr.to_string();
    let mut client = rig.client();

    // Absolute form becomes origin form; Host names the instance, not the client's.
    client.send(b"GET http://x/p?q=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(client.answer(false).text(), "/p?q=1");
    let seen = rig.upstream.one("/p");
    assert_eq!(seen.request_line(), "GET /p?q=1 HTTP/1.1");
    assert_eq!(values(&seen.fields(), "host"), [host.as_str()]);

    // Hop-by-hop headers, and those Connection names, stay behind; the others go,
    // duplicates included and in order.
    client.send(
        b"GET /hop?a=b HTTP/1.1\r\nHost: client.example\r\nConnection: keep-alive, x-drop\r\n\
          Keep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: x-t\r\nUpgrade: websocket\r\n\
          Proxy-Authorization: Basic eA==\r\nX-Drop: 1\r\nX-A: 1\r\nX-A: 2\r\n\
          X-Keep: k\r\nAccept: */*\r\n\r\n",
    );
    let answer = client.answer(false);
    assert_eq!(answer.text(), "/hop?a=b");
    let seen = rig.upstream.one("/hop");
    assert_eq!(seen.request_line(), "GET /hop?a=b HTTP/1.1");
    let fields = seen.fields();
    assert_eq!(values(&fields, "host"), [host.as_str()]);
    assert_eq!(values(&fields, "x-a"), ["1", "2"]);
    assert_eq!(values(&fields, "x-keep"), ["k"]);
    assert_eq!(values(&fields, "accept"), ["*/*"]);
    for gone in [
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "x-drop",
    ] {
        assert!(!seen.names().iter().any(|n| n == gone), "{gone}: {seen:?}");
    }
    // Nothing else: a GET without a body goes without Content-Length or
    // Transfer-Encoding.
    let mut names = seen.names();
    names.sort();
    assert_eq!(
        names,
        ["accept", "host", "x-a", "x-a", "x-keep"],
        "{seen:?}"
    );
    assert!(seen.body.is_empty());

    // The target goes as it came: no decoding, no normalization.
    let odd = "/a%20b/..//c?x=%41&y=&z";
    assert_eq!(client.get(odd).text(), odd);
    assert_eq!(
        rig.upstream.one("/a%20b").request_line(),
        format!("GET {odd} HTTP/1.1")
    );
    // Values go without the whitespace around them; an empty value goes too.
    client.send(b"GET /space HTTP/1.1\r\nHost: c\r\nX-Space:   padded value  \r\nX-Empty:\r\n\r\n");
    assert_eq!(client.answer(false).status(), 200);
    let seen = rig.upstream.one("/space");
    let line = |name: &str| {
        seen.head
            .split("\r\n")
            .find(|l| {
                l.split(':')
                    .next()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .map(|l| l[name.len() + 1..].to_string())
    };
    assert_eq!(
        line("x-space").as_deref().map(str::trim_start),
        Some("padded value")
    );
    assert_eq!(line("x-empty").as_deref().map(str::trim), Some(""));

    // A body arrives with its length.
    client.send(b"POST /post HTTP/1.1\r\nHost: c\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(client.answer(false).status(), 200);
    let seen = rig.upstream.one("/post");
    assert_eq!(seen.request_line(), "POST /post HTTP/1.1");
    assert_eq!(values(&seen.fields(), "content-length"), ["5"]);
    assert_eq!(seen.body, b"hello");
    // An explicit empty body keeps its `Content-Length: 0`.
    client.send(b"POST /empty HTTP/1.1\r\nHost: c\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(client.answer(false).status(), 200);
    assert_eq!(
        values(&rig.upstream.one("/empty").fields(), "content-length"),
        ["0"]
    );

    // OPTIONS * is forwarded as is.
    client.send(b"OPTIONS * HTTP/1.1\r\nHost: c\r\n\r\n");
    assert_eq!(client.answer(false).text(), "*");
    assert_eq!(rig.upstream.one("*").request_line(), "OPTIONS * HTTP/1.1");

    // An upgrade request is an ordinary request once Upgrade is dropped.
    client
        .send(b"GET /ws HTTP/1.1\r\nHost: c\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
    assert_eq!(client.answer(false).status(), 200);
    assert!(!rig
        .upstream
        .one("/ws")
        .names()
        .iter()
        .any(|n| n == "upgrade"));
    client.assert_usable("an upgrade request");

    // PIN: an HTTP/1.1 request without Host is served (RFC 9112 3.2 says answer 400).
    client.send(b"GET /no-host HTTP/1.1\r\n\r\n");
    assert_eq!(client.answer(false).status(), 200);
    assert_eq!(
        values(&rig.upstream.one("/no-host").fields(), "host"),
        [host.as_str()]
    );
    // PIN: bare LF line ends are accepted (RFC 9112 2.2 allows it).
    client.send(b"GET /bare-lf HTTP/1.1\nHost: c\n\n");
    assert_eq!(client.answer(false).text(), "/bare-lf");
    client.assert_usable("bare LF line ends");

    // PIN: the proxy speaks its own version upstream (RFC 9110 6.2), HTTP/1.1 on a
    // keep-alive connection whatever the client spoke, as nginx with
    // `proxy_http_version 1.1` does.
    let mut old = rig.client();
    old.send(b"GET /v10 HTTP/1.0\r\nHost: c\r\n\r\n");
    assert_eq!(old.answer(false).text(), "/v10");
    let seen = rig.upstream.one("/v10");
    assert_eq!(seen.request_line(), "GET /v10 HTTP/1.1");
    assert_eq!(seen.names(), ["host"]);
    assert_eq!(client.get("/v11").text(), "/v11");
    assert_eq!(rig.upstream.one("/v11").request_line(), "GET /v11 HTTP/1.1");

    // CONNECT asks for a tunnel, which a reverse proxy does not open: 501, and close.
    let mut tunnel = rig.client();
    tunnel.send(b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n");
    let answer = tunnel.answer(false);
    assert_eq!(answer.status_line(), "HTTP/1.1 501 Not Implemented");
    assert!(tunnel.closes(), "the connection closes after 501");
    let connects = rig
        .upstream
        .all()
        .into_iter()
        .filter(|r| r.request_line().starts_with("CONNECT"))
        .count();
    assert_eq!(connects, 0, "CONNECT never reaches an instance");
}

// ---------------------------------------------------------------------------------------
// 3. Request bodies, and requests the proxy refuses.

#[test]
fn request_bodies_and_refused_requests() {
    let rig = Rig::start(&["--max-body-bytes", "1024"]);
    let mut client = rig.client();

    // A body at the limit passes.
    let mut req = b"PUT /at-limit HTTP/1.1\r\nHost: c\r\nContent-Length: 1024\r\n\r\n".to_vec();
    req.extend([b'a'; 1024]);
    client.send(&req);
    assert_eq!(client.answer(false).status(), 200);
    assert_eq!(rig.upstream.one("/at-limit").body, [b'a'; 1024]);

    // A chunked body (a chunk extension, a trailer) arrives de-chunked, with a length,
    // and the trailer is not forwarded.
    client.send(
        b"POST /chunked-in HTTP/1.1\r\nHost: c\r\nTransfer-Encoding: chunked\r\n\r\n\
          3\r\nabc\r\n4;name=v\r\ndefg\r\n1\r\nh\r\n0\r\nX-Trailer: t\r\n\r\n",
    );
    assert_eq!(client.answer(false).status(), 200);
    let seen = rig.upstream.one("/chunked-in");
    assert_eq!(seen.body, b"abcdefgh");
    assert_eq!(values(&seen.fields(), "content-length"), ["8"]);
    assert_no_transfer_encoding(&seen);
    assert!(!seen.names().iter().any(|n| n == "x-trailer"), "{seen:?}");
    client.assert_usable("a chunked request body");

    // Expect: 100-continue; the body is sent only after the interim answer.
    client.send(
        b"POST /expect HTTP/1.1\r\nHost: c\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
    );
    let interim = client.head().expect("an interim answer");
    assert_eq!(interim, "HTTP/1.1 100 Continue\r\n\r\n");
    client.send(b"body");
    let answer = client.answer(false);
    assert_eq!(
        (answer.status(), answer.text()),
        (200, "/expect".to_string())
    );
    let seen = rig.upstream.one("/expect");
    assert_eq!(seen.body, b"body");
    // The proxy answered the expectation and sends the body at once: no Expect.
    assert!(values(&seen.fields(), "expect").is_empty());
    // An upstream's own 100 Continue is not relayed: the client sees the proxy's one,
    // then the final answer.
    client.send(
        b"POST /continue HTTP/1.1\r\nHost: c\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
    );
    assert_eq!(
        client.head().as_deref(),
        Some("HTTP/1.1 100 Continue\r\n\r\n")
    );
    client.send(b"hi");
    let answer = client.answer(false);
    assert_eq!(
        (answer.status(), answer.text()),
        (200, "continued".to_string())
    );
    client.assert_usable("an upstream's 100 Continue");

    // One byte over the limit: 413, in the proxy's own words.
    let mut req = b"PUT /too-big HTTP/1.1\r\nHost: c\r\nContent-Length: 1025\r\n\r\n".to_vec();
    req.extend([b'a'; 1025]);
    client.send(&req);
    let answer = client.answer(false);
    assert_eq!(answer.status_line(), "HTTP/1.1 413 Payload Too Large");
    assert_eq!(answer.values("content-type"), ["text/plain; charset=utf-8"]);
    assert!(rig.upstream.seen("/too-big").is_empty());
    // PIN: the rest of the body may still be on its way, so the connection closes
    // after the 413 rather than reading a body it refused.
    assert_eq!(answer.values("connection"), ["close"]);
    assert!(client.closes(), "the connection closes after 413");
    let mut client = rig.client();
    // A too-large chunked body too.
    let mut req =
        b"POST /too-big-chunked HTTP/1.1\r\nHost: c\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        req.extend(b"200\r\n");
        req.extend([b'z'; 0x200]);
        req.extend(b"\r\n");
    }
    req.extend(b"0\r\n\r\n");
    client.send(&req);
    assert_eq!(client.answer(false).status(), 413);
    assert!(rig.upstream.seen("/too-big-chunked").is_empty());

    // Malformed heads: 400 (505 for a version the proxy does not speak), in the
    // proxy's own words, and the connection closes.
    for (what, bytes) in [
        ("a header line without a colon", &b"GET /bad HTTP/1.1\r\nBad Header\r\n\r\n"[..]),
        (
            "two different lengths",
            b"POST /two-lengths HTTP/1.1\r\nHost: c\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        ),
        (
            "a transfer coding other than chunked",
            b"POST /gzip HTTP/1.1\r\nHost: c\r\nTransfer-Encoding: gzip\r\n\r\n",
        ),
    ] {
        let mut bad = rig.client();
        bad.send(bytes);
        let answer = bad.answer(false);
        assert_eq!(answer.status_line(), "HTTP/1.1 400 Bad Request", "{what}");
        assert_eq!(answer.values("content-type"), ["text/plain; charset=utf-8"], "{what}");
        assert_eq!(answer.values("connection"), ["close"], "{what}");
        assert!(bad.closes(), "{what}: the connection closes");
    }
    let mut bad = rig.client();
    bad.send(b"GET /v2 HTTP/2.0\r\nHost: c\r\n\r\n");
    let answer = bad.answer(false);
    assert_eq!(
        answer.status_line(),
        "HTTP/1.1 505 HTTP Version Not Supported"
    );
    assert!(bad.closes(), "the connection closes after 505");
    // PIN: at most 100 header fields (hyper's default, kept): one more gets 431, and
    // close.
    let many = |n: usize| {
        let mut head = String::from("GET /many HTTP/1.1\r\nHost: c\r\n");
        for i in 1..n {
            head.push_str(&format!("X-H{i}: v\r\n"));
        }
        head + "\r\n"
    };
    let mut fields = rig.client();
    fields.send(many(100).as_bytes());
    assert_eq!(fields.answer(false).status(), 200);
    fields.send(many(101).as_bytes());
    let answer = fields.answer(false);
    assert_eq!(
        answer.status_line(),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    assert!(fields.closes(), "the connection closes after 431");
    assert_eq!(rig.upstream.seen("/many").len(), 1);

    // A broken chunked body: the proxy's own 400, then the connection closes.
    let mut bad = rig.client();
    bad.send(
        b"POST /bad-chunk HTTP/1.1\r\nHost: c\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n",
    );
    let answer = bad.answer(false);
    assert_eq!(answer.status(), 400);
    assert_eq!(answer.values("content-type"), ["text/plain; charset=utf-8"]);
    assert!(bad.closes(), "a broken chunked body closes the connection");
    assert!(rig.upstream.seen("/bad-chunk").is_empty());

    // Both Content-Length and chunked: chunked wins (RFC 9112 6.3), the upstream gets
    // the de-chunked body, and the connection closes after the answer.
    let mut both = rig.client();
    both.send(
        b"POST /both HTTP/1.1\r\nHost: c\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n\
          3\r\nabc\r\n0\r\n\r\n",
    );
    let answer = both.answer(false);
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.values("connection"), ["close"]);
    assert!(
        both.closes(),
        "the proxy closes after a request with both framings"
    );
    assert_eq!(rig.upstream.one("/both").body, b"abc");
}

fn assert_no_transfer_encoding(seen: &Seen) {
    assert!(
        !seen.names().iter().any(|n| n == "transfer-encoding"),
        "{seen:?}"
    );
}

// ---------------------------------------------------------------------------------------
// 4. Response framing.

#[test]
fn response_framing() {
    let rig = Rig::start(&[]);
    let mut client = rig.client();

    // Content-Length.
    let answer = client.get("/len");
    assert_eq!(answer.framing, Framing::Length(4));
    assert_eq!(answer.text(), "/len");

    // Chunked, re-chunked to an HTTP/1.1 client: same payload, connection kept.
    let answer = client.get("/chunked");
    assert_eq!(answer.framing, Framing::Chunked);
    assert_eq!(answer.text(), "hello, world");
    assert_eq!(answer.values("x-route"), ["chunked"]);
    assert_no_headers(&answer, &["content-length"], "a chunked answer");
    client.assert_usable("a chunked answer");
    // PIN: a chunked answer passes to an HTTP/1.1 client as it came, trailer fields
    // and the `Trailer` header that names them included (RFC 9110 6.5 lets a recipient
    // that did not ask for trailers discard them).
    client.send(b"GET /trailer HTTP/1.1\r\nHost: c\r\nTE: trailers\r\n\r\n");
    let answer = client.answer(false);
    assert_eq!(answer.text(), "hello");
    assert!(
        answer.raw_body.ends_with(b"0\r\nX-Sum: 5\r\n\r\n"),
        "{answer:?}"
    );
    assert_eq!(answer.values("trailer"), ["X-Sum"]);

    // PIN: a close-delimited answer (no length, `Connection: close`) reaches the client
    // whole and close-delimited as it came: the client connection closes after it.
    let answer = client.get("/close-delimited");
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text(), "until the upstream closes");
    assert_eq!(answer.framing, Framing::Close);
    assert_eq!(answer.values("connection"), ["close"]);
    assert!(
        client.closes(),
        "a close-delimited answer ends the connection"
    );
    let mut client = rig.client();

    // 204 and 304: no body, no length, connection kept.
    let answer = client.get("/no-content");
    assert_eq!(answer.status_line(), "HTTP/1.1 204 No Content");
    assert_eq!(answer.values("x-route"), ["no-content"]);
    assert_no_headers(&answer, &["content-length", "transfer-encoding"], "204");
    client.assert_usable("204");
    let answer = client.get("/not-modified");
    assert_eq!(answer.status_line(), "HTTP/1.1 304 Not Modified");
    assert_eq!(answer.values("etag"), ["\"v1\""]);
    assert_no_headers(&answer, &["content-length", "transfer-encoding"], "304");
    client.assert_usable("304");

    // HEAD: the upstream's Content-Length, no body, connection kept.
    client.send(b"HEAD /head HTTP/1.1\r\nHost: c\r\n\r\n");
    let answer = client.answer(true);
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.values("content-length"), ["5"]);
    assert_eq!(
        rig.upstream.one("/head").request_line(),
        "HEAD /head HTTP/1.1"
    );
    client.assert_usable("HEAD");

    // 1 MiB, whole.
    let answer = client.get("/big");
    assert_eq!(answer.framing, Framing::Length(BIG));
    assert!(answer.body == big_body(), "the 1 MiB body arrived intact");
    client.assert_usable("1 MiB");

    // The body streams: the first part reaches the client before the upstream sends
    // the rest.
    client.send(b"GET /slow-body HTTP/1.1\r\nHost: c\r\n\r\n");
    let head = client.head().expect("the head before the body is complete");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head:?}");
    assert_eq!(values(&parse_fields(&head), "content-length"), ["10"]);
    assert_eq!(client.bytes(5), b"first");
    rig.upstream.gate.open();
    assert_eq!(client.bytes(5), b"-last");
    client.assert_usable("a streamed body");

    // HTTP/1.0 without keep-alive: the whole body, then the connection closes.
    // PIN: the status line says HTTP/1.1, the proxy's version (RFC 9110 6.2), as nginx's.
    let mut old = rig.client();
    old.send(b"GET /old HTTP/1.0\r\nHost: c\r\n\r\n");
    let answer = old.answer(false);
    assert_eq!(answer.status_line(), "HTTP/1.1 200 OK");
    assert_eq!(answer.framing, Framing::Length(4));
    assert_eq!(answer.text(), "/old");
    assert!(
        old.closes(),
        "an HTTP/1.0 connection closes after its answer"
    );
    // HTTP/1.0 and an upstream chunked answer: the payload, close-delimited (neither
    // Transfer-Encoding nor Content-Length).
    let mut old = rig.client();
    old.send(b"GET /chunked/old HTTP/1.0\r\nHost: c\r\n\r\n");
    let answer = old.answer(false);
    assert_eq!(answer.status_line(), "HTTP/1.1 200 OK");
    assert_eq!(answer.framing, Framing::Close);
    assert_eq!(answer.text(), "hello, world");
    // HTTP/1.0 asking for keep-alive gets it.
    let mut old = rig.client();
    old.send(b"GET /old-ka HTTP/1.0\r\nHost: c\r\nConnection: keep-alive\r\n\r\n");
    let answer = old.answer(false);
    assert_eq!(answer.status_line(), "HTTP/1.1 200 OK");
    assert_eq!(answer.values("connection"), ["keep-alive"]);
    assert_eq!(answer.text(), "/old-ka");
    old.send(b"GET /old-ka/2 HTTP/1.0\r\nHost: c\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(old.answer(false).text(), "/old-ka/2");
}

// ---------------------------------------------------------------------------------------
// 5. Response headers and status.

#[test]
fn response_headers_and_status() {
    let rig = Rig::start(&[]);
    let mut client = rig.client();

    let answer = client.get("/headers");
    assert_eq!(answer.status_line(), "HTTP/1.1 200 OK");
    assert_eq!(answer.text(), "ok");
    assert_eq!(answer.values("set-cookie"), ["a=1", "b=2"]);
    assert_eq!(answer.values("x-kept"), ["yes"]);
    // Proxy-Authenticate goes too: it concerns the next client only (RFC 9110 11.7.1;
    // RFC 2616 listed it as hop-by-hop, as the proxy does).
    assert_no_headers(
        &answer,
        &["keep-alive", "connection", "x-foo", "proxy-authenticate"],
        "upstream hop-by-hop headers",
    );
    // The proxy adds a Date the upstream did not send...
    assert_eq!(answer.values("date").len(), 1, "{answer:?}");
    // ...and keeps one it did send.
    let answer = client.get("/dated");
    assert_eq!(answer.values("date"), ["Mon, 01 Jan 2001 00:00:00 GMT"]);
    assert_eq!(answer.values("server"), ["scripted"]);

    // Status and reason phrase, custom ones included.
    let answer = client.get("/reason");
    assert_eq!(answer.status_line(), "HTTP/1.1 299 Fine Thanks");
    let answer = client.get("/teapot");
    assert_eq!(answer.status_line(), "HTTP/1.1 418 I'm a teapot");
    assert_eq!(answer.text(), "tea");
    client.assert_usable("custom statuses");
}

// ---------------------------------------------------------------------------------------
// 6. Upstream failures, with one instance.

#[test]
fn upstream_failures_with_one_instance() {
    let rig = Rig::start(&[]);
    let mut client = rig.client();

    // The upstream closes without answering a GET: tried again, then 502.
    // PIN: three attempts in all (--max-attempts defaults to 3), each on a new
    // upstream connection.
    let answer = client.get("/drop");
    assert_eq!(answer.status_line(), "HTTP/1.1 502 Bad Gateway");
    assert_eq!(answer.values("content-type"), ["text/plain; charset=utf-8"]);
    assert!(answer.text().starts_with("h1: "), "{answer:?}");
    let seen = rig.upstream.seen("/drop");
    assert_eq!(seen.len(), 3, "{seen:?}");
    let mut conns: Vec<usize> = seen.iter().map(|r| r.conn).collect();
    conns.sort_unstable();
    conns.dedup();
    assert_eq!(
        conns.len(),
        3,
        "each attempt on its own connection: {seen:?}"
    );
    client.assert_usable("a 502");
    // A POST is not tried again.
    client.send(b"POST /drop/post HTTP/1.1\r\nHost: c\r\nContent-Length: 1\r\n\r\nx");
    assert_eq!(client.answer(false).status(), 502);
    assert_eq!(rig.upstream.seen("/drop/post").len(), 1);

    // 503 to a GET: tried again; when every attempt gets 503, the client gets the
    // upstream's last 503 as it was.
    let answer = client.get("/unavailable");
    assert_eq!(answer.status_line(), "HTTP/1.1 503 Service Unavailable");
    assert_eq!(answer.text(), "busy");
    assert_no_headers(&answer, &["content-type"], "the upstream's 503");
    assert_eq!(rig.upstream.seen("/unavailable").len(), 3);
    // A POST that gets 503 is not tried again.
    client.send(b"POST /unavailable/post HTTP/1.1\r\nHost: c\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(client.answer(false).text(), "busy");
    assert_eq!(rig.upstream.seen("/unavailable/post").len(), 1);

    // A malformed answer head: 502.
    // PIN: also tried three times, as a broken connection is.
    let answer = client.get("/malformed");
    assert_eq!(answer.status(), 502);
    assert_eq!(answer.values("content-type"), ["text/plain; charset=utf-8"]);
    assert_eq!(rig.upstream.seen("/malformed").len(), 3);
    client.assert_usable("failures");
}

// ---------------------------------------------------------------------------------------
// 7. The proxy's own answers.

#[test]
fn the_proxys_own_answers() {
    let registry = registry(ServerKind::Beacon);
    let proxy = Proxy::start(&registry.client_url(), "nobody", &[]);
    let mut client = Client::connect(&proxy.addr);
    let answer = client.get("/");
    assert_eq!(answer.status_line(), "HTTP/1.1 503 Service Unavailable");
    assert_eq!(answer.text(), "no instance of nobody is available\n");
    assert_eq!(answer.values("content-type"), ["text/plain; charset=utf-8"]);
    assert_eq!(
        answer.values("content-length"),
        [answer.body.len().to_string()]
    );
    assert_eq!(answer.values("date").len(), 1, "{answer:?}");
    // Exactly these: no Connection header on a kept-alive HTTP/1.1 connection.
    let mut names = answer.names();
    names.sort();
    assert_eq!(names, ["content-length", "content-type", "date"]);
    // The connection stays open after the proxy's own answer.
    let again = client.get("/again");
    assert_eq!(again.status(), 503);
    // A HEAD gets the same head without the body.
    client.send(b"HEAD / HTTP/1.1\r\nHost: c\r\n\r\n");
    let head = client.answer(true);
    assert_eq!(head.status(), 503);
    assert_eq!(
        head.values("content-length"),
        answer.values("content-length")
    );
    assert_eq!(client.get("/last").status(), 503);
}
