//! A handle on one server process (`beacon` or reference `etcd`) with a fresh data dir
//! and loopback ports: it waits until the server is ready, can be SIGKILLed and
//! restarted on the same dir and ports, and is killed on drop. [`ServerProcess::cluster`]
//! starts the members of one cluster together.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::binaries::{beacon_bin, etcd_bin};
use crate::http_probe::http_get;
use crate::ports::free_ports;
use crate::temp_dir::TempDir;

/// What both servers log once they serve clients.
const READY_LINE: &str = "ready to serve client requests";

/// How long a server gets to become ready after spawning.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Which server a handle runs; decides extra flags and the readiness condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// Beacon, ready when `/health` says `{"health":"true"}`.
    Beacon,
    /// Reference etcd, additionally ready only once `/version` has a decided cluster version.
    Etcd,
}

impl ServerKind {
    /// The binary that runs a server of this kind ([`beacon_bin`], [`etcd_bin`]).
    pub fn bin(self) -> PathBuf {
        match self {
            ServerKind::Beacon => beacon_bin(),
            ServerKind::Etcd => etcd_bin(),
        }
    }
}

/// Which of a member's URLs are `https` (the TLS files come in the extra flags).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Https {
    /// `--listen-client-urls` and `--advertise-client-urls`.
    pub client: bool,
    /// The peer URLs.
    pub peer: bool,
}

impl Https {
    fn scheme(secure: bool) -> &'static str {
        if secure {
            "https"
        } else {
            "http"
        }
    }
}

/// The ports of one cluster member.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MemberPorts {
    pub client: u16,
    /// `--listen-peer-urls`.
    pub peer: u16,
    /// `--initial-advertise-peer-urls` and the member's `--initial-cluster` entry.
    pub advertise_peer: u16,
}

/// `n` members' ports, free now, each advertising its own peer port.
fn fresh_layout(n: usize) -> Vec<MemberPorts> {
    let ports = free_ports(2 * n);
    (0..n)
        .map(|i| MemberPorts {
            client: ports[2 * i],
            peer: ports[2 * i + 1],
            advertise_peer: ports[2 * i + 1],
        })
        .collect()
}

/// How a member finds its first cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Bootstrap {
    /// `--initial-cluster` (the member alone when none is known).
    InitialCluster,
    /// `--discovery URL`.
    Discovery(String),
    /// `--discovery-srv DOMAIN`.
    Srv(String),
}

/// A running server process, killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    kind: ServerKind,
    bin: PathBuf,
    client_port: u16,
    peer_port: u16,
    /// The peer port in `--initial-advertise-peer-urls`: `peer_port`, or a proxy's.
    advertise_peer_port: u16,
    /// `--name`.
    name: String,
    /// `--initial-cluster`; `None` for a single member.
    initial_cluster: Option<String>,
    /// `--discovery` or `--discovery-srv`, given instead of `--initial-cluster`.
    bootstrap: Bootstrap,
    /// A command the server runs under (e.g. [`crate::DnsServer::wrapper`]); empty: none.
    wrapper: Vec<String>,
    /// Flags added after the ones every member gets.
    extra_args: Vec<String>,
    /// Which URLs are `https`.
    https: Https,
    /// Ready once the log says so, whatever the URLs' scheme.
    ready_by_log: bool,
    /// How many "ready" lines the log held when the process was last spawned.
    ready_lines: usize,
    child: Option<Child>,
    // Declared last so the child is killed before its directory is removed.
    temp: TempDir,
}

impl ServerProcess {
    /// Starts `beacon` from [`beacon_bin`] and waits until it is ready.
    pub fn beacon() -> std::io::Result<ServerProcess> {
        ServerProcess::start(ServerKind::Beacon, beacon_bin())
    }

    /// Starts `beacon` from an explicit path (e.g. `env!("CARGO_BIN_EXE_beacon")`).
    pub fn beacon_at(bin: impl Into<PathBuf>) -> std::io::Result<ServerProcess> {
        ServerProcess::start(ServerKind::Beacon, bin.into())
    }

    /// Starts the reference etcd from [`etcd_bin`] with the v2 API enabled.
    pub fn etcd() -> std::io::Result<ServerProcess> {
        ServerProcess::start(ServerKind::Etcd, etcd_bin())
    }

    /// Starts `bin` as a server of `kind` on fresh ports and a fresh data dir.
    pub fn start(kind: ServerKind, bin: PathBuf) -> std::io::Result<ServerProcess> {
        ServerProcess::start_https(kind, bin, Https::default(), &[])
    }

    /// [`ServerProcess::start`] with `https` URLs where `https` says, and `extra_args`
    /// (the TLS flags). An `https` client port is ready once the log says "ready to
    /// serve client requests", which both servers write.
    pub fn start_https(
        kind: ServerKind,
        bin: PathBuf,
        https: Https,
        extra_args: &[&str],
    ) -> std::io::Result<ServerProcess> {
        ServerProcess::start_one(kind, bin, https, extra_args, false)
    }

    /// [`ServerProcess::start`] with `extra_args`, ready once the log says so: for a
    /// server whose `/health` does not answer (etcd's `--experimental-enable-v2v3`
    /// drops every `/health` and `/version` request).
    pub fn start_ready_by_log(
        kind: ServerKind,
        bin: PathBuf,
        extra_args: &[&str],
    ) -> std::io::Result<ServerProcess> {
        ServerProcess::start_one(kind, bin, Https::default(), extra_args, true)
    }

    fn start_one(
        kind: ServerKind,
        bin: PathBuf,
        https: Https,
        extra_args: &[&str],
        ready_by_log: bool,
    ) -> std::io::Result<ServerProcess> {
        if !bin.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("server binary {} not found", bin.display()),
            ));
        }
        let prefix = match kind {
            ServerKind::Beacon => "beacon-test",
            ServerKind::Etcd => "etcd-test",
        };
        let ports = free_ports(2);
        let mut process = ServerProcess {
            kind,
            bin,
            client_port: ports[0],
            peer_port: ports[1],
            advertise_peer_port: ports[1],
            name: "default".to_string(),
            initial_cluster: None,
            bootstrap: Bootstrap::InitialCluster,
            wrapper: Vec::new(),
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
            https,
            ready_by_log,
            ready_lines: 0,
            child: None,
            temp: TempDir::new(prefix)?,
        };
        process.spawn_and_wait()?;
        Ok(process)
    }

    /// Starts the `n` members (named `m0`, `m1`, ...) of a new cluster of `kind`, all at
    /// once (none can be ready before a quorum is up), and waits until each is ready.
    pub fn cluster(
        kind: ServerKind,
        bin: PathBuf,
        n: usize,
    ) -> std::io::Result<Vec<ServerProcess>> {
        ServerProcess::cluster_with(kind, bin, n, &[])
    }

    /// [`ServerProcess::cluster`], with `extra_args` given to every member.
    pub fn cluster_with(
        kind: ServerKind,
        bin: PathBuf,
        n: usize,
        extra_args: &[&str],
    ) -> std::io::Result<Vec<ServerProcess>> {
        ServerProcess::cluster_https(kind, bin, n, Https::default(), extra_args)
    }

    /// [`ServerProcess::cluster_with`] with `https` URLs where `https` says.
    pub fn cluster_https(
        kind: ServerKind,
        bin: PathBuf,
        n: usize,
        https: Https,
        extra_args: &[&str],
    ) -> std::io::Result<Vec<ServerProcess>> {
        let layout = fresh_layout(n);
        let bootstrap = Bootstrap::InitialCluster;
        ServerProcess::cluster_on(kind, bin, &layout, https, extra_args, bootstrap, &[])
    }

    /// `n` members of a new cluster that find each other through etcd's discovery
    /// service at `url` (`--discovery`, no `--initial-cluster`), each started under
    /// `wrapper` (e.g. `env SSL_CERT_FILE=...`; empty: none); waits until each is ready,
    /// which it is once all `n` registered.
    pub fn cluster_discovered(
        kind: ServerKind,
        bin: PathBuf,
        n: usize,
        url: &str,
        extra_args: &[&str],
        wrapper: &[String],
    ) -> std::io::Result<Vec<ServerProcess>> {
        let layout = fresh_layout(n);
        let bootstrap = Bootstrap::Discovery(url.to_string());
        let https = Https::default();
        ServerProcess::cluster_on(kind, bin, &layout, https, extra_args, bootstrap, wrapper)
    }

    /// Members `m0`, `m1`, ... of a new cluster, one per `(client port, peer port)`,
    /// that find each other in the DNS SRV records of `domain` (`--discovery-srv`, no
    /// `--initial-cluster`), each started under `wrapper`; waits until each is ready.
    /// etcd 3.4 bootstraps from `_etcd-server-ssl` records alone: its peers are `https`.
    pub fn cluster_by_srv(
        kind: ServerKind,
        bin: PathBuf,
        ports: &[(u16, u16)],
        https: Https,
        domain: &str,
        extra_args: &[&str],
        wrapper: &[String],
    ) -> std::io::Result<Vec<ServerProcess>> {
        let layout: Vec<MemberPorts> = ports
            .iter()
            .map(|&(client, peer)| MemberPorts {
                client,
                peer,
                advertise_peer: peer,
            })
            .collect();
        let bootstrap = Bootstrap::Srv(domain.to_string());
        ServerProcess::cluster_on(kind, bin, &layout, https, extra_args, bootstrap, wrapper)
    }

    /// Starts one member per entry of `layout` (member `i` named `m{i}`), each listening
    /// on its own ports and known to the others by its `advertise_peer` port, under
    /// `wrapper` (empty: none).
    pub(crate) fn cluster_on(
        kind: ServerKind,
        bin: PathBuf,
        layout: &[MemberPorts],
        https: Https,
        extra_args: &[&str],
        bootstrap: Bootstrap,
        wrapper: &[String],
    ) -> std::io::Result<Vec<ServerProcess>> {
        if !bin.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("server binary {} not found", bin.display()),
            ));
        }
        let initial_cluster = layout
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let scheme = Https::scheme(https.peer);
                format!("m{i}={scheme}://127.0.0.1:{}", p.advertise_peer)
            })
            .collect::<Vec<_>>()
            .join(",");
        let mut members = Vec::with_capacity(layout.len());
        for (i, ports) in layout.iter().enumerate() {
            let mut member = ServerProcess {
                kind,
                bin: bin.clone(),
                client_port: ports.client,
                peer_port: ports.peer,
                advertise_peer_port: ports.advertise_peer,
                name: format!("m{i}"),
                initial_cluster: Some(initial_cluster.clone()),
                bootstrap: bootstrap.clone(),
                wrapper: wrapper.to_vec(),
                extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
                https,
                ready_by_log: false,
                ready_lines: 0,
                child: None,
                temp: TempDir::new(&format!("cluster-m{i}"))?,
            };
            member.spawn()?;
            members.push(member);
        }
        for member in &mut members {
            member.wait_ready()?;
        }
        Ok(members)
    }

    /// Starts a member that was added to a running cluster (`POST /v2/members`) on the
    /// ports it was added with, with `--initial-cluster-state existing`; waits until it
    /// is ready (it has heard from the leader).
    pub fn join(
        kind: ServerKind,
        bin: PathBuf,
        name: &str,
        ports: (u16, u16),
        cluster: &[&ServerProcess],
        extra_args: &[&str],
    ) -> std::io::Result<ServerProcess> {
        let (client_port, peer_port) = ports;
        let mut initial_cluster: Vec<String> = cluster
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect();
        // The newcomer's URLs are as secure as the cluster's.
        let https = cluster.first().map_or(Https::default(), |m| m.https);
        let scheme = Https::scheme(https.peer);
        initial_cluster.push(format!("{name}={scheme}://127.0.0.1:{peer_port}"));
        let mut args = vec![
            "--initial-cluster-state".to_string(),
            "existing".to_string(),
        ];
        args.extend(extra_args.iter().map(|a| a.to_string()));
        let mut member = ServerProcess {
            kind,
            bin,
            client_port,
            peer_port,
            advertise_peer_port: peer_port,
            name: name.to_string(),
            initial_cluster: Some(initial_cluster.join(",")),
            bootstrap: Bootstrap::InitialCluster,
            wrapper: Vec::new(),
            extra_args: args,
            https,
            ready_by_log: false,
            ready_lines: 0,
            child: None,
            temp: TempDir::new(&format!("cluster-{name}"))?,
        };
        member.spawn_and_wait()?;
        Ok(member)
    }

    /// The peer URL it advertises (its own, or its fault proxy's).
    pub fn peer_url(&self) -> String {
        let scheme = Https::scheme(self.https.peer);
        format!("{scheme}://127.0.0.1:{}", self.advertise_peer_port)
    }

    /// Waits up to `timeout` for the process to exit on its own; its status if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `--name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Which server this is.
    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    /// `http://127.0.0.1:<client port>` (`https` for a TLS client port), without a
    /// trailing slash.
    pub fn client_url(&self) -> String {
        let scheme = Https::scheme(self.https.client);
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// The client port.
    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    /// The peer port.
    pub fn peer_port(&self) -> u16 {
        self.peer_port
    }

    /// The server's data dir.
    pub fn data_dir(&self) -> PathBuf {
        self.temp.path().join("data")
    }

    /// The file that receives the child's stdout and stderr.
    pub fn log_path(&self) -> PathBuf {
        self.temp.path().join("server.log")
    }

    /// The last `lines` lines of the server log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The child's process id, if running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends SIGKILL and reaps the child.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM (a graceful stop) and waits up to `timeout` for the process to exit;
    /// returns whether it did (it is SIGKILLed otherwise).
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        // std has no SIGTERM; `kill` is in every base system the tests run on.
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Kills the server if it runs, then starts it again on the same data dir and ports.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.kill9();
        self.spawn_and_wait()
    }

    /// Kills the server if it runs and starts it again on the same data dir and ports,
    /// without waiting until it is ready (it may not be: a member without a quorum).
    pub fn restart_unready(&mut self) -> std::io::Result<()> {
        self.kill9();
        self.spawn()
    }

    fn args(&self) -> Vec<String> {
        let client = self.client_url();
        let peer_scheme = Https::scheme(self.https.peer);
        let peer = format!("{peer_scheme}://127.0.0.1:{}", self.peer_port);
        let advertised_peer = self.peer_url();
        let mut args = Vec::new();
        if self.kind == ServerKind::Etcd {
            args.push("--enable-v2=true".to_string());
        }
        let peer_of_one = format!("{}={advertised_peer}", self.name);
        let bootstrap = match &self.bootstrap {
            Bootstrap::Discovery(url) => ("--discovery", url.clone()),
            Bootstrap::Srv(domain) => ("--discovery-srv", domain.clone()),
            Bootstrap::InitialCluster => (
                "--initial-cluster",
                self.initial_cluster.clone().unwrap_or(peer_of_one),
            ),
        };
        for (flag, value) in [
            ("--name", self.name.clone()),
            ("--data-dir", self.data_dir().display().to_string()),
            ("--listen-client-urls", client.clone()),
            ("--advertise-client-urls", client),
            ("--listen-peer-urls", peer),
            ("--initial-advertise-peer-urls", advertised_peer),
            bootstrap,
        ] {
            args.push(flag.to_string());
            args.push(value);
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }

    fn spawn_and_wait(&mut self) -> std::io::Result<()> {
        self.spawn()?;
        self.wait_ready()
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        self.ready_lines = self.logged_ready_lines();
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let mut command = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        let child = command
            .args(self.args())
            .current_dir(self.temp.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    fn wait_ready(&mut self) -> std::io::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    return Err(self.startup_error(&format!("exited early with {status}")));
                }
            }
            if self.is_ready() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill9();
                return Err(self.startup_error(&format!("not ready within {READY_TIMEOUT:?}")));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn is_ready(&self) -> bool {
        if self.https.client || self.ready_by_log {
            return self.logged_ready_lines() > self.ready_lines;
        }
        let healthy = http_get(self.client_port, "/health")
            .is_ok_and(|r| r.status == 200 && r.json().is_some_and(|j| j["health"] == "true"));
        if !healthy || self.kind == ServerKind::Beacon {
            return healthy;
        }
        // etcd records its cluster version in the v2 store shortly after start; waiting for it
        // keeps the index values seen by a test stable.
        http_get(self.client_port, "/version").is_ok_and(|r| {
            r.json()
                .and_then(|j| j["etcdcluster"].as_str().map(|v| v != "not_decided"))
                .unwrap_or(false)
        })
    }

    /// How many times the log says the server is ready.
    fn logged_ready_lines(&self) -> usize {
        std::fs::read_to_string(self.log_path()).map_or(0, |log| log.matches(READY_LINE).count())
    }

    fn startup_error(&self, what: &str) -> std::io::Error {
        std::io::Error::other(format!(
            "{} ({}) {what}; log {}:\n{}",
            self.bin.display(),
            self.args().join(" "),
            self.log_path().display(),
            self.log_tail(40)
        ))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "--- last lines of {} ({}) ---\n{}",
                self.bin.display(),
                self.log_path().display(),
                self.log_tail(30)
            );
        }
    }
}
