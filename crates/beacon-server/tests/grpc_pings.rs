//! `--grpc-keepalive-min-time`: a client that pings more often than the server allows
//! is told GOAWAY ENHANCE_YOUR_CALM "too_many_pings" and closed, exactly when etcd
//! 3.4.23 does it. A raw HTTP/2 client (preface, literal HPACK, hand-built frames)
//! sends the same frames to both and records what comes back: each ping's
//! acknowledgement, each call's answer, the GOAWAY and the end of the connection. Every
//! wait is for a frame, with a deadline; the only sleeps space pings out, since the
//! spacing is what the policy judges.
//!
//! Over TLS etcd serves gRPC through Go's HTTP/2 server, which holds clients to no
//! such policy, and neither does Beacon: pings at any rate are answered.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use beacon_proto::etcdserverpb::watch_request::RequestUnion;
use beacon_proto::etcdserverpb::{RangeRequest, WatchCreateRequest, WatchRequest};
use beacon_testkit::{beacon_bin, etcd_bin, etcd_or_skip, Https, Pki, ServerKind, ServerProcess};
use prost::Message as _;

const MIN_TIME: &str = "--grpc-keepalive-min-time=1s";
/// Comfortably more than MIN_TIME, so a loaded machine cannot bring pings closer.
const SPACED: Duration = Duration::from_millis(1200);
const FRAME_DEADLINE: Duration = Duration::from_secs(10);

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;

/// One connection, as a client that acknowledges SETTINGS and nothing else.
struct Client<S> {
    sock: S,
    port: u16,
    pings: u64,
    /// What the server sent that the script asked to hear about, in order.
    heard: Vec<String>,
}

fn tcp(port: u16) -> TcpStream {
    let sock = TcpStream::connect(("127.0.0.1", port)).expect("connecting");
    sock.set_read_timeout(Some(FRAME_DEADLINE)).unwrap();
    sock
}

impl Client<TcpStream> {
    fn connect(port: u16) -> Self {
        Client::over(tcp(port), port)
    }
}

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

impl Client<TlsStream> {
    /// HTTP/2 over TLS, chosen by ALPN as Go's server wants it.
    fn connect_tls(port: u16, pki: &Pki) -> Self {
        let info = beacon_tls::TlsInfo {
            trusted_ca_file: Some(pki.ca.clone()),
            ..beacon_tls::TlsInfo::default()
        };
        let config = info.client_config(&[b"h2"]).expect("a client config");
        let name = "127.0.0.1".try_into().unwrap();
        let conn = rustls::ClientConnection::new(Arc::clone(&config), name).unwrap();
        Client::over(rustls::StreamOwned::new(conn, tcp(port)), port)
    }
}

impl<S: Read + Write> Client<S> {
    fn over(sock: S, port: u16) -> Self {
        let mut client = Client {
            sock,
            port,
            pings: 0,
            heard: Vec::new(),
        };
        client.send_raw(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        client.send(SETTINGS, 0, 0, &[]);
        client
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        // A server that closed already: what it said before is in `heard`.
        let _ = self.sock.write_all(bytes);
    }

    fn send(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
        let mut frame = vec![len[1], len[2], len[3], kind, flags];
        frame.extend_from_slice(&stream.to_be_bytes());
        frame.extend_from_slice(payload);
        self.send_raw(&frame);
    }

    /// The next frame: type, flags, stream and payload; `None` once the server closed.
    fn frame(&mut self) -> Option<(u8, u8, u32, Vec<u8>)> {
        let mut head = [0u8; 9];
        match self.sock.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                panic!("no frame within {FRAME_DEADLINE:?}; heard {:?}", self.heard)
            }
            Err(_) => return None,
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; len];
        self.sock.read_exact(&mut payload).ok()?;
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]);
        Some((head[3], head[4], stream, payload))
    }

    /// Reads until `done` says so or the server closes, noting acknowledgements of
    /// our pings, GOAWAYs and the close; `false` when it closed.
    fn hear_until(&mut self, mut done: impl FnMut(u8, u8, u32) -> bool) -> bool {
        loop {
            let Some((kind, flags, stream, payload)) = self.frame() else {
                self.heard.push("closed".into());
                return false;
            };
            match (kind, flags & ACK) {
                (SETTINGS, 0) => self.send(SETTINGS, ACK, 0, &[]),
                (PING, ACK) if payload.starts_with(b"pg") => {
                    let n = u64::from_be_bytes(payload.try_into().unwrap()) & 0xffff;
                    self.heard.push(format!("ack {n}"));
                }
                (GOAWAY, _) => {
                    let last = u32::from_be_bytes(payload[0..4].try_into().unwrap());
                    let code = u32::from_be_bytes(payload[4..8].try_into().unwrap());
                    let debug = String::from_utf8_lossy(&payload[8..]);
                    self.heard
                        .push(format!("goaway last={last} code={code:#x} {debug:?}"));
                }
                _ => {}
            }
            if done(kind, flags, stream) {
                return true;
            }
        }
    }

    /// Pings and waits for the acknowledgement; `false` when the server closed.
    fn ping(&mut self) -> bool {
        self.pings += 1;
        let mut payload = *b"pg\0\0\0\0\0\0";
        payload[6..].copy_from_slice(&u16::try_from(self.pings).unwrap().to_be_bytes());
        self.send(PING, 0, 0, &payload);
        self.hear_until(|kind, flags, _| kind == PING && flags & ACK != 0)
    }

    /// Opens stream `stream` with a call of `path` carrying `message`; `end` closes
    /// the client's side (a unary call).
    fn call(&mut self, stream: u32, path: &str, message: &[u8], end: bool) {
        let authority = format!("127.0.0.1:{}", self.port);
        let fields = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", authority.as_str()),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ];
        // HPACK literals without indexing, every length under 127.
        let mut block = Vec::new();
        for (name, value) in fields {
            block.push(0);
            block.push(u8::try_from(name.len()).unwrap());
            block.extend_from_slice(name.as_bytes());
            block.push(u8::try_from(value.len()).unwrap());
            block.extend_from_slice(value.as_bytes());
        }
        self.send(HEADERS, END_HEADERS, stream, &block);
        let mut body = vec![0];
        body.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
        body.extend_from_slice(message);
        self.send(DATA, if end { END_STREAM } else { 0 }, stream, &body);
    }

    /// Waits for the first answer on `stream` (a DATA frame), or its end.
    fn answered(&mut self, stream: u32, to_the_end: bool) {
        let open = self.hear_until(|kind, flags, on| {
            on == stream
                && match to_the_end {
                    true => kind == HEADERS && flags & END_STREAM != 0,
                    false => kind == DATA,
                }
        });
        assert!(open, "closed before answering: {:?}", self.heard);
        self.heard.push(format!("answer on {stream}"));
    }

    /// Everything up to the end of the connection.
    fn until_closed(mut self) -> Vec<String> {
        if self.heard.last().map(String::as_str) != Some("closed") {
            while self.hear_until(|_, _, _| false) {}
        }
        self.heard
    }
}

fn watch_create() -> Vec<u8> {
    WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: b"k".to_vec(),
            ..WatchCreateRequest::default()
        })),
    }
    .encode_to_vec()
}

fn range() -> Vec<u8> {
    RangeRequest {
        key: b"k".to_vec(),
        ..RangeRequest::default()
    }
    .encode_to_vec()
}

/// Ten pings in a row on an idle connection, each acknowledged before the next: a
/// policy would have closed it after the fourth.
fn over_tls(port: u16, pki: &Pki) -> Vec<String> {
    let mut client = Client::connect_tls(port, pki);
    for _ in 0..10 {
        assert!(client.ping(), "closed: {:?}", client.heard);
    }
    client.heard
}

/// Pings with no call open: the minimum is two hours, so the fourth ping in a row
/// is the third strike; answering a call forgives the strikes so far.
fn without_a_call(port: u16) -> Vec<String> {
    let mut client = Client::connect(port);
    for _ in 0..3 {
        assert!(client.ping());
    }
    client.call(1, "/etcdserverpb.KV/Range", &range(), true);
    client.answered(1, true);
    while client.ping() {
        assert!(client.pings < 20, "never told to calm down");
    }
    client.until_closed()
}

/// Pings during a watch: spaced by the minimum they are welcome, however many; three
/// sooner in a row are not.
fn during_a_watch(port: u16) -> Vec<String> {
    let mut client = Client::connect(port);
    client.call(1, "/etcdserverpb.Watch/Watch", &watch_create(), false);
    client.answered(1, false);
    for i in 0..4 {
        if i > 0 {
            std::thread::sleep(SPACED);
        }
        assert!(
            client.ping(),
            "a spaced ping was refused: {:?}",
            client.heard
        );
    }
    while client.ping() {
        assert!(client.pings < 20, "never told to calm down");
    }
    client.until_closed()
}

#[test]
fn pings_sooner_than_the_minimum_time_are_refused_as_etcd_refuses_them() {
    if !etcd_or_skip() {
        return;
    }
    let heard = |kind: ServerKind| {
        let bin = kind.bin();
        std::thread::spawn(move || {
            let member = ServerProcess::cluster_with(kind, bin, 1, &[MIN_TIME])
                .expect("a member")
                .remove(0);
            let port = member.client_port();
            (without_a_call(port), during_a_watch(port))
        })
    };
    let (etcd, beacon) = (heard(ServerKind::Etcd), heard(ServerKind::Beacon));
    let (etcd, beacon) = (etcd.join().unwrap(), beacon.join().unwrap());
    let acks = |n: std::ops::RangeInclusive<u32>| n.map(|n| format!("ack {n}"));
    let answer = || std::iter::once("answer on 1".to_string());
    let calm = ["goaway last=1 code=0xb \"too_many_pings\"", "closed"].map(String::from);
    let want_idle: Vec<String> = (acks(1..=3).chain(answer()))
        .chain(acks(4..=7))
        .chain(calm.clone())
        .collect();
    assert_eq!(etcd.0, want_idle, "etcd, without a call");
    let want_watch: Vec<String> = answer().chain(acks(1..=7)).chain(calm).collect();
    assert_eq!(etcd.1, want_watch, "etcd, during a watch");
    assert_eq!(beacon, etcd);
}

#[test]
fn over_tls_pings_are_answered_at_any_rate_as_by_etcd() {
    if !etcd_or_skip() {
        return;
    }
    let pki = Pki::new().expect("test certificates");
    let flags = [
        "--cert-file",
        pki.server.cert.to_str().unwrap(),
        "--key-file",
        pki.server.key.to_str().unwrap(),
        MIN_TIME,
    ];
    let https = Https {
        client: true,
        peer: false,
    };
    let mut heard = Vec::new();
    for (kind, bin) in [
        (ServerKind::Etcd, etcd_bin()),
        (ServerKind::Beacon, beacon_bin()),
    ] {
        let member = ServerProcess::start_https(kind, bin, https, &flags).expect("a member");
        heard.push(over_tls(member.client_port(), &pki));
    }
    let want: Vec<String> = (1..=10).map(|n| format!("ack {n}")).collect();
    assert_eq!(heard[0], want, "etcd");
    assert_eq!(heard[1], want, "beacon");
}
