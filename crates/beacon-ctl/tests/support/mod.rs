//! Running `beaconctl` (and the real `etcdctl`) as processes with bounded waits, and
//! starting the servers they talk to.

#![allow(dead_code)] // Each test file uses a different part of this module.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use beacon_testkit::ServerProcess;

pub mod v3;

/// Bound on one command that is expected to finish.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(20);
/// Bound on waiting for a line from a long-running command.
pub const LINE_DEADLINE: Duration = Duration::from_secs(15);

/// The `beaconctl` under test.
pub fn beaconctl() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_beaconctl"))
}

/// The reference client.
pub fn etcdctl() -> PathBuf {
    std::env::var_os("ETCDCTL_BIN").map_or_else(|| PathBuf::from("/usr/bin/etcdctl"), PathBuf::from)
}

/// A fresh `beacon` from the workspace's target dir (it must have been built).
pub fn beacon() -> ServerProcess {
    let bin = beacon_testkit::beacon_bin();
    assert!(
        bin.is_file(),
        "{} not found: build it first (cargo build -p beacon-server --bin beacon) or set BEACON_BIN",
        bin.display()
    );
    ServerProcess::beacon_at(bin).expect("beacon starts")
}

/// Whether the etcd comparison can run; prints why not, and fails instead when
/// `BEACON_REQUIRE_ETCD=1`.
pub fn etcd_comparison_possible() -> bool {
    let missing: Vec<String> = [beacon_testkit::etcd_bin(), etcdctl()]
        .into_iter()
        .filter(|p| !p.is_file())
        .map(|p| p.display().to_string())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let required = std::env::var("BEACON_REQUIRE_ETCD").is_ok_and(|v| v == "1");
    assert!(!required, "BEACON_REQUIRE_ETCD=1 but missing: {missing:?}");
    eprintln!("skipping the etcdctl comparison: missing {missing:?}");
    false
}

/// What a finished command did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// Everything on stdout.
    pub stdout: String,
    /// Everything on stderr.
    pub stderr: String,
    /// The exit code (-1 if killed by a signal).
    pub code: i32,
}

/// A command line for `bin` against `endpoint`, with no stray `ETCDCTL_*` settings.
pub fn command(bin: &Path, endpoint: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin);
    for var in [
        "ETCDCTL_ENDPOINT",
        "ETCDCTL_PEERS",
        "ETCDCTL_USERNAME",
        "ETCDCTL_CA_FILE",
        "ETCDCTL_CERT_FILE",
        "ETCDCTL_KEY_FILE",
        "ETCDCTL_DISCOVERY_SRV",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("ETCDCTL_API", "2")
        .env("ETCDCTL_ENDPOINTS", endpoint)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs `bin args...` against `endpoint` to completion, within [`COMMAND_DEADLINE`].
pub fn run(bin: &Path, endpoint: &str, args: &[&str]) -> Output {
    finish(command(bin, endpoint, args), args)
}

/// `etcdctl` (API 3) against `server`, whatever the environment says.
pub fn etcdctl_v3(server: &ServerProcess, args: &[&str]) -> Output {
    let mut cmd = command(&etcdctl(), &server.client_url(), args);
    cmd.env("ETCDCTL_API", "3")
        .env_remove("ETCDCTL_ENDPOINTS")
        .arg(format!("--endpoints={}", server.client_url()));
    finish(cmd, args)
}

/// Runs `beaconctl args...` against `endpoint`.
pub fn ctl(endpoint: &str, args: &[&str]) -> Output {
    run(&beaconctl(), endpoint, args)
}

/// Runs a prepared command to completion within [`COMMAND_DEADLINE`].
pub fn finish(cmd: Command, what: &[&str]) -> Output {
    finish_fed(cmd, what, None)
}

/// [`finish`], with `input` (if any) written to the command's stdin, which is then
/// closed: what `etcdctl txn` reads, for one.
pub fn finish_fed(mut cmd: Command, what: &[&str], input: Option<&str>) -> Output {
    if input.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().expect("spawn command");
    let feeder = input.map(|text| {
        let mut pipe = child.stdin.take().expect("piped stdin");
        let text = text.to_string();
        // A command that exits without reading it all closes the pipe: not an error.
        std::thread::spawn(move || drop(pipe.write_all(text.as_bytes())))
    });
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + COMMAND_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what:?} did not finish within {COMMAND_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if let Some(feeder) = feeder {
        feeder.join().expect("stdin writer");
    }
    Output {
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
        code: status.code().unwrap_or(-1),
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_string(&mut text);
        }
        text
    })
}

/// A long-running `beaconctl` whose stdout is read line by line; killed on drop.
pub struct Background {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Background {
    /// Starts `beaconctl args...` against `endpoint`.
    pub fn start(endpoint: &str, args: &[&str]) -> Background {
        let mut child = command(&beaconctl(), endpoint, args)
            .spawn()
            .expect("spawn beaconctl");
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Some(drain(child.stderr.take()));
        Background {
            child,
            lines: rx,
            stderr,
        }
    }

    /// The next stdout line, within [`LINE_DEADLINE`].
    pub fn next_line(&mut self) -> String {
        match self.lines.recv_timeout(LINE_DEADLINE) {
            Ok(line) => line,
            Err(e) => panic!("no line from beaconctl within {LINE_DEADLINE:?}: {e}"),
        }
    }

    /// The next `n` stdout lines.
    pub fn lines(&mut self, n: usize) -> Vec<String> {
        (0..n).map(|_| self.next_line()).collect()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. "INT", "TERM") and waits for the exit code and stderr.
    pub fn stop(mut self, signal: &str) -> (i32, String) {
        let sent = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{signal} failed");
        let deadline = Instant::now() + COMMAND_DEADLINE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "beaconctl ignored SIG{signal}");
            std::thread::sleep(Duration::from_millis(10));
        };
        let stderr = self
            .stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        (status.code().unwrap_or(-1), stderr)
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `Index: N` line of an `-o extended` answer.
pub fn extended_index(out: &Output) -> u64 {
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("Index: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Index line in {out:?}"))
}
