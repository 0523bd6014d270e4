//! Test support for Beacon: free loopback ports, temporary directories, handles on
//! `beacon` and reference `etcd` processes that wait until ready and die on drop (v2
//! proxies too), and a fault-injecting proxy for the peer traffic of a test cluster.

mod binaries;
mod dns_server;
mod fault_proxy;
mod forward_proxy;
mod grpc;
mod http_probe;
mod pki;
mod ports;
mod proc_status;
mod process;
mod proxied_cluster;
mod rng;
mod temp_dir;
mod v2_proxy;

pub use binaries::{
    assert_same_answers, beacon_bin, etcd_available, etcd_bin, etcd_or_skip, workspace_bin,
};
pub use dns_server::{DnsServer, SrvAnswer};
pub use fault_proxy::{FaultProxy, ProxyCounts, BLACK_HOLE_MAX, SERVER_FROM_HEADER};
pub use forward_proxy::ForwardProxy;
pub use grpc::{grpc_channel, with_token};
pub use http_probe::{http_get, ProbeResponse};
pub use pki::{ca_and_pair, PemPair, Pki};
pub use ports::{free_port, free_ports};
pub use proc_status::{is_running, proc_status_field, rss_bytes};
pub use process::{Https, ServerKind, ServerProcess, READY_TIMEOUT};
pub use rng::SeededRng;
pub use temp_dir::TempDir;
pub use v2_proxy::V2ProxyProcess;

/// A running `beacon` process; see [`ServerProcess::beacon`].
pub type BeaconProcess = ServerProcess;
/// A running reference `etcd` process; see [`ServerProcess::etcd`].
pub type EtcdProcess = ServerProcess;
