//! Free loopback TCP ports for the servers a test starts.
//!
//! A port found by binding port 0 comes from the kernel's ephemeral range, and is free
//! again the moment the probe closes: until the server binds it, the kernel may give it
//! to anyone else's port-0 bind (a test's proxy) or to an outgoing connection's source
//! port (any HTTP client), and the server then fails with "address in use". So ports
//! are handed out from below the ephemeral range, which the kernel never picks on its
//! own, each at most once per process, and only after a probe bind succeeded.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::Mutex;

/// Where the search starts when the ephemeral range leaves no room below it.
const LOW: u16 = 10_000;

/// Ports this process already handed out.
static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// One free port on 127.0.0.1.
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// `n` distinct free ports on 127.0.0.1, never handed out before by this process.
pub fn free_ports(n: usize) -> Vec<u16> {
    let Some((lo, hi)) = quiet_range() else {
        return kernel_ports(n);
    };
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    // Start somewhere different in every process, so that test binaries or benchmark
    // runs side by side rarely probe the same ports first.
    let span = u32::from(hi - lo);
    let seed = std::process::id().wrapping_mul(2_654_435_761) ^ nanos();
    let mut out = Vec::with_capacity(n);
    for step in 0..span {
        if out.len() == n {
            break;
        }
        let port = lo + ((seed.wrapping_add(step)) % span) as u16;
        if given.contains(&port) || TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        given.insert(port);
        out.push(port);
    }
    assert_eq!(out.len(), n, "no {n} free ports left in {lo}..{hi}");
    out
}

/// The ports below the kernel's ephemeral range (from `ip_local_port_range`), if there
/// are enough of them to be worth it.
fn quiet_range() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let first: u16 = text.split_whitespace().next()?.parse().ok()?;
    (first > LOW + 1000).then_some((LOW, first))
}

fn nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}

/// The old way, where the kernel's range leaves no room: port 0, all probes held open
/// until every port is known so that none repeats.
fn kernel_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("a bound listener's address").port())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_bindable_and_outside_the_ephemeral_range() {
        let ports = free_ports(50);
        let unique: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(unique.len(), 50);
        assert!(free_ports(5).iter().all(|p| !unique.contains(p)));
        if let Some((lo, hi)) = quiet_range() {
            assert!(ports.iter().all(|p| (lo..hi).contains(p)), "{ports:?}");
        }
        for p in ports {
            TcpListener::bind(("127.0.0.1", p)).expect("a free port binds");
        }
    }
}
