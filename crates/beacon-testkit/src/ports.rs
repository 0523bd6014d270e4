//! Free loopback TCP ports, found by binding port 0 and asking the kernel which it chose.

use std::net::TcpListener;

/// One free port on 127.0.0.1.
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// `n` distinct free ports on 127.0.0.1.
///
/// All listeners are held open until every port is known, so the kernel cannot hand the
/// same port out twice; they are closed before returning, leaving a small race with other
/// processes that tests accept.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    listeners
        .iter()
        .map(|l| {
            l.local_addr()
                .expect("local_addr of a bound listener")
                .port()
        })
        .collect()
}
