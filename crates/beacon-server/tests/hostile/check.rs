//! What both halves of the suite check on the member they attack: that it is still the
//! process that was started and answers `/health`, and that the canary keys are exactly
//! as written (its memory comes from the testkit's `rss_bytes`).

use std::time::{Duration, Instant};

use beacon_testkit::{is_running, ServerProcess};

use super::raw::{bare_request, body_text, form_request, send};
use super::ANSWER_WAIT;

/// The keys written before the attack and checked after it.
const CANARIES: &[(&str, &str)] = &[
    ("canary/a", "alpha"),
    ("canary/dir/b", "beta"),
    ("canary/dir/deeper/c", "gamma"),
];

/// Each canary's key and its JSON node as written.
pub type Canaries = Vec<(String, serde_json::Value)>;

/// Writes the canaries through the client port and returns each one's node as written.
pub fn write_canaries(port: u16) -> Canaries {
    let mut written = Vec::new();
    for (key, value) in CANARIES {
        put(port, key, value);
        written.push((key.to_string(), node_of(port, key)));
    }
    written
}

/// A write through the client port that must succeed.
pub fn put(port: u16, key: &str, value: &str) {
    let answer = send(
        port,
        &form_request("PUT", &format!("/v2/keys/{key}"), &format!("value={value}")),
        ANSWER_WAIT,
    )
    .expect("write");
    assert!(
        matches!(answer.status, Some(200 | 201)),
        "write of {key}: {answer:?}"
    );
}

fn node_of(port: u16, key: &str) -> serde_json::Value {
    let answer = send(
        port,
        &bare_request("GET", &format!("/v2/keys/{key}")),
        ANSWER_WAIT,
    )
    .expect("canary read");
    let body: serde_json::Value = serde_json::from_str(&body_text(&answer))
        .unwrap_or_else(|e| panic!("canary {key}: {e}: {answer:?}"));
    body["node"].clone()
}

pub fn check_canaries(port: u16, written: &Canaries) {
    for (key, node) in written {
        assert_eq!(&node_of(port, key), node, "canary {key} changed");
    }
}

/// The liveness probe. It asks the server to close the connection after answering, so
/// that the answer ends at once instead of after the keep-alive lull `send` waits for.
const HEALTH_REQUEST: &[u8] =
    b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

/// The server is still the process we started, and it answers.
pub fn assert_alive(server: &ServerProcess, after: &str) {
    let pid = server.pid().expect("pid");
    assert!(
        is_running(pid),
        "beacon died after {after}:\n{}",
        server.log_tail(30)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(answer) = send(server.client_port(), HEALTH_REQUEST, ANSWER_WAIT) {
            if answer.status == Some(200) {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "/health failed after {after}:\n{}",
            server.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
