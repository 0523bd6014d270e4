//! A `beaconctl proxy` process: started on a free port, killed on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use beacon_testkit::workspace_bin;

/// A running `beaconctl proxy`.
pub struct Proxy {
    child: Child,
    /// `127.0.0.1:<port>`, from its first line on stdout.
    pub addr: String,
}

impl Proxy {
    /// Starts `beaconctl --endpoints ENDPOINT proxy SERVICE --listen 127.0.0.1:0 EXTRA...`
    /// and returns once it said where it listens.
    pub fn start(endpoint: &str, service: &str, extra: &[&str]) -> Proxy {
        let mut child = Command::new(workspace_bin("beaconctl"))
            .args([
                "--endpoints",
                endpoint,
                "proxy",
                service,
                "--listen",
                "127.0.0.1:0",
            ])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("beaconctl runs");
        let stdout = child.stdout.take().expect("piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("first line");
        let addr = line
            .trim()
            .rsplit_once(" on ")
            .map(|(_, a)| a.to_string())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        Proxy { child, addr }
    }

    /// One request on a fresh connection: status and body.
    pub fn request(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let mut sock = TcpStream::connect(&self.addr).expect("proxy accepts");
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            sock,
            "{method} {path} HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        sock.read_to_string(&mut answer).expect("an answer");
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not HTTP: {answer:?}"));
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.trim().to_string())
            .unwrap_or_default();
        (status, body)
    }

    /// SIGTERM, then how long the proxy took to exit and its status (killed after 10 s).
    pub fn terminate(&mut self) -> (Duration, std::process::ExitStatus) {
        let start = Instant::now();
        // kill(1) rather than libc: the tests need no unsafe code for one signal.
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM delivered");
        while start.elapsed() < Duration::from_secs(10) {
            if let Some(status) = self.child.try_wait().expect("child") {
                return (start.elapsed(), status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the proxy did not exit within 10 s of SIGTERM");
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
