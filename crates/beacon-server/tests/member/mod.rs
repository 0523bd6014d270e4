//! A single `beacon` member on a data directory the test chooses (a tmpfs, one it has
//! damaged), started with extra flags, that may refuse to start: what the damaged data
//! directory and full disk tests share. The testkit's `ServerProcess` owns its data dir
//! and expects every start to succeed, which is exactly what these tests must not assume.

// Each test file uses its own part of this module.
#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use beacon_testkit::{free_ports, http_get, READY_TIMEOUT};
use serde_json::Value;

/// How a start ended.
#[derive(Debug)]
pub enum Started {
    /// `/health` answered healthy.
    Ready,
    /// The process exited first, with this status.
    Exited(ExitStatus),
}

/// One member process; SIGKILLed on drop.
pub struct Member {
    data_dir: PathBuf,
    log: PathBuf,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

impl Member {
    /// A member on `data_dir` (created by beacon if missing), logging to `log`, on free ports.
    pub fn new(data_dir: &Path, log: &Path) -> Member {
        let ports = free_ports(2);
        Member {
            data_dir: data_dir.to_owned(),
            log: log.to_owned(),
            client_port: ports[0],
            peer_port: ports[1],
            child: None,
        }
    }

    /// A member on fixed ports: a data directory's member id derives from its peer URL,
    /// so a restart without `member/identity.json` needs the ports of the first start.
    pub fn with_ports(data_dir: &Path, log: &Path, client_port: u16, peer_port: u16) -> Member {
        let mut m = Member::new(data_dir, log);
        (m.client_port, m.peer_port) = (client_port, peer_port);
        m
    }

    /// The client and peer ports.
    pub fn ports(&self) -> (u16, u16) {
        (self.client_port, self.peer_port)
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `http://127.0.0.1:<client port>`.
    pub fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// Starts the member with `extra` flags and waits until it is ready or has exited.
    pub fn start(&mut self, extra: &[&str]) -> Started {
        assert!(self.child.is_none(), "already running");
        let client = self.client_url();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_beacon"))
            .args(["--name", "m", "--data-dir"])
            .arg(&self.data_dir)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("m={peer}")])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log clone"))
            .stderr(log)
            .spawn()
            .expect("beacon spawns");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return Started::Exited(status);
            }
            let healthy = http_get(self.client_port, "/health")
                .is_ok_and(|r| r.status == 200 && r.json().is_some_and(|j| j["health"] == "true"));
            if healthy {
                self.child = Some(child);
                return Started::Ready;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("not ready within {READY_TIMEOUT:?}:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts and insists that it becomes ready.
    pub fn start_ready(&mut self, extra: &[&str]) {
        match self.start(extra) {
            Started::Ready => {}
            Started::Exited(s) => panic!("exited with {s}:\n{}", self.log_text()),
        }
    }

    /// SIGTERM, and the exit status (SIGKILL and a panic after `timeout`).
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "no exit within {timeout:?} of SIGTERM:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the member logged so far (all starts).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `PUT key=value`; the response's status and JSON body.
pub async fn put(http: &reqwest::Client, base: &str, key: &str, value: &str) -> (u16, Value) {
    let resp = http
        .put(format!("{base}/v2/keys/{key}"))
        .form(&[("value", value)])
        .send()
        .await
        .expect("PUT sent");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The value at `key`, or `None` on 404.
pub async fn value(http: &reqwest::Client, base: &str, key: &str) -> Option<String> {
    let resp = http
        .get(format!("{base}/v2/keys/{key}"))
        .send()
        .await
        .expect("GET sent");
    if resp.status() == 404 {
        return None;
    }
    assert_eq!(resp.status(), 200, "GET {key}");
    let body: Value = resp.json().await.expect("json");
    body["node"]["value"].as_str().map(str::to_owned)
}
