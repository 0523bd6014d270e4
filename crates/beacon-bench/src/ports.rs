//! Free loopback ports for bench/run, found by binding port 0 and asking the kernel.

use std::net::TcpListener;

use anyhow::Result;

/// `n` distinct free ports on 127.0.0.1, space-separated. All listeners stay open until
/// every port is known, so the kernel cannot hand out the same one twice.
pub fn free(n: usize) -> Result<String> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    let ports = listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port().to_string()))
        .collect::<std::io::Result<Vec<_>>>()?;
    Ok(ports.join(" "))
}
