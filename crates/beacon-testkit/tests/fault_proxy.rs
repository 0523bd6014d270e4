//! The fault proxy in front of a stand-in peer listener: it forwards requests and
//! their answers, black-holes the links it is told to cut (by `X-Server-From` and the
//! listener a request came to), drops with a probability, delays, and heals.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use beacon_testkit::FaultProxy;

/// A peer listener that answers every request `200 ok`, on a thread of its own.
fn stand_in_peer() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    port
}

/// POSTs through the proxy's `port` as member `from`; the answer, or `None` when none
/// came within `wait`.
fn post(port: u16, from: &str, wait: Duration) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    write!(
        stream,
        "POST /raft/append HTTP/1.1\r\nHost: peer\r\nX-Server-From: {from}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    match stream.read_to_string(&mut answer) {
        Ok(_) if !answer.is_empty() => Some(answer),
        _ => None,
    }
}

#[test]
fn forwards_blocks_drops_delays_and_heals() {
    let peer = stand_in_peer();
    let proxy = FaultProxy::start(&[peer, peer], 7).unwrap();
    proxy.learn_member_id(0, 0xa);
    proxy.learn_member_id(1, 0xb);
    let wait = Duration::from_millis(500);
    // Member a's request to member b goes through the proxy's listener for b.
    let to_b = proxy.port(1);
    let to_a = proxy.port(0);

    let answer = post(to_b, "a", wait).expect("forwarded");
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok"),
        "{answer}"
    );

    proxy.block(0, 1);
    assert_eq!(post(to_b, "a", wait), None, "a -> b is cut");
    assert!(post(to_a, "b", wait).is_some(), "b -> a is not");
    proxy.heal();
    assert!(post(to_b, "a", wait).is_some(), "healed");

    proxy.isolate(1);
    assert_eq!(post(to_b, "a", wait), None);
    assert_eq!(post(to_a, "b", wait), None);
    proxy.heal();

    proxy.set_drop_probability(1.0);
    assert_eq!(post(to_b, "a", wait), None, "dropped");
    proxy.heal();

    proxy.set_delay_ms(300, 300);
    let sent = Instant::now();
    assert!(post(to_b, "a", Duration::from_secs(2)).is_some());
    assert!(sent.elapsed() >= Duration::from_millis(300), "delayed");
    proxy.heal();

    let counts = proxy.counts();
    assert_eq!((counts.blocked, counts.dropped), (3, 1), "{counts:?}");
    assert_eq!((counts.forwarded, counts.delayed), (4, 1), "{counts:?}");
}
