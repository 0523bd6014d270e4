//! A test cluster whose peer traffic all passes through a [`FaultProxy`]: member `i`
//! listens for peers on its own port and advertises the proxy's port `i` (in
//! `--initial-advertise-peer-urls` and in everyone's `--initial-cluster`), as etcd
//! allows, so partitions, delays and drops can be injected between real processes.

use std::path::PathBuf;

use crate::fault_proxy::FaultProxy;
use crate::http_probe::http_get;
use crate::ports::free_ports;
use crate::process::{MemberPorts, ServerKind, ServerProcess};

impl ServerProcess {
    /// Starts a proxy and the `n` members of a new cluster behind it, waits until each
    /// member is ready, and teaches the proxy their member ids. `seed` drives the proxy's
    /// random delays and drops.
    pub fn cluster_behind_proxies(
        kind: ServerKind,
        bin: PathBuf,
        n: usize,
        extra_args: &[&str],
        seed: u64,
    ) -> std::io::Result<(FaultProxy, Vec<ServerProcess>)> {
        let ports = free_ports(2 * n);
        let peer_ports: Vec<u16> = (0..n).map(|i| ports[2 * i + 1]).collect();
        let proxy = FaultProxy::start(&peer_ports, seed)?;
        let layout: Vec<MemberPorts> = (0..n)
            .map(|i| MemberPorts {
                client: ports[2 * i],
                peer: peer_ports[i],
                advertise_peer: proxy.port(i),
            })
            .collect();
        let members = ServerProcess::cluster_on(
            kind,
            bin,
            &layout,
            crate::process::Https::default(),
            extra_args,
            crate::process::Bootstrap::InitialCluster,
            &[],
        )?;
        for (i, member) in members.iter().enumerate() {
            proxy.learn_member_id(i, member_id(member)?);
        }
        Ok((proxy, members))
    }
}

/// The member's id, as its `/v2/stats/self` reports it.
fn member_id(member: &ServerProcess) -> std::io::Result<u64> {
    let answer = http_get(member.client_port(), "/v2/stats/self")?;
    answer
        .json()
        .and_then(|j| j["id"].as_str().map(str::to_string))
        .and_then(|id| u64::from_str_radix(&id, 16).ok())
        .ok_or_else(|| {
            std::io::Error::other(format!(
                "{} has no id in /v2/stats/self: {}",
                member.name(),
                answer.body
            ))
        })
}
