//! A `beacon-instance` process: started on a free port, registered, killed on drop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running demo instance.
pub struct InstanceProcess {
    child: Child,
    /// Its id, which it answers every request with.
    pub id: String,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    /// Its registry key, when it registered.
    pub key: Option<String>,
}

/// How to start an instance.
#[derive(Clone, Debug, Default)]
pub struct InstanceOptions {
    /// Milliseconds added to every answer.
    pub delay_ms: u64,
    /// Every Nth request fails with 500 (0: none).
    pub fail_every: u64,
    /// Registration TTL in seconds (default 10).
    pub ttl: Option<u64>,
    /// Datacenter (default dc1).
    pub datacenter: Option<String>,
    /// Serve gRPC health instead of HTTP.
    pub grpc: bool,
    /// Register through etcd's v3 API (a lease) instead of v2 (a TTL).
    pub v3: bool,
}

impl InstanceProcess {
    /// Starts instance `id` of `service`, registered with `endpoints`; returns once it
    /// listens and is registered.
    pub fn start(service: &str, id: &str, endpoints: &str, opts: &InstanceOptions) -> Self {
        let bin = env!("CARGO_BIN_EXE_beacon-instance");
        let mut cmd = Command::new(bin);
        cmd.args(["--service", service, "--id", id, "--endpoints", endpoints])
            .args(["--delay-ms", &opts.delay_ms.to_string()])
            .args(["--fail-every", &opts.fail_every.to_string()])
            .args(["--ttl", &opts.ttl.unwrap_or(10).to_string()])
            .args(["--datacenter", opts.datacenter.as_deref().unwrap_or("dc1")])
            .args(opts.grpc.then_some("--grpc"))
            .args(["--api", if opts.v3 { "3" } else { "2" }])
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("beacon-instance starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut next = || {
            lines
                .next()
                .and_then(Result::ok)
                .unwrap_or_else(|| panic!("instance {id} exited before it was ready"))
        };
        let listening = next();
        let addr = listening
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {listening:?}"))
            .to_string();
        let registered = next();
        let key = registered.strip_prefix("registered ").map(str::to_string);
        assert!(key.is_some(), "unexpected second line {registered:?}");
        InstanceProcess {
            child,
            id: id.to_string(),
            addr,
            key,
        }
    }

    /// SIGKILL: the instance is gone, its key stays until its TTL runs out.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait (up to `timeout`) for the instance to deregister and exit.
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        let pid = self.child.id() as i32;
        // kill(1) rather than libc: the tests need no unsafe code for one signal.
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill9();
        false
    }
}

impl Drop for InstanceProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}
