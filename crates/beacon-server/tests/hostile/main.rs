//! The hostile-input suite: a real `beacon` process on loopback gets the fixed corpus
//! (`cases`) and then thousands of seeded mutations of well-formed requests, each on a
//! fresh connection, speaking to the socket directly. Afterwards the process must still
//! be the same process (no panic, no abort), answer `/health`, hold the canary keys
//! written before the attack exactly as they were, and have stayed within a memory
//! bound. A failure prints the seed; `BEACON_HOSTILE_SEED` replays it, and
//! `BEACON_HOSTILE_MUTATIONS` sets how many mutations are sent.

mod cases;
mod mutate;
mod raw;

use std::time::{Duration, Instant};

use beacon_testkit::{SeededRng, ServerProcess};

use raw::{bare_request, body_text, form_request, send, send_then_close};

/// Mutated requests sent by default: enough to reach every mutation of every seed many
/// times, few enough for CI (about 10 s on 2 cores).
const MUTATIONS_DEFAULT: usize = 10_000;

/// How long one hostile request may take to be answered or dropped.
const ANSWER_WAIT: Duration = Duration::from_secs(2);

/// How much the server's resident memory may grow over the whole attack. The corpus
/// sends ~25 MiB in all; a server that kept what it was sent, or a copy per segment,
/// would exceed this.
const RSS_GROWTH_BYTES_MAX: u64 = 96 << 20;

/// The keys written before the attack and checked after it.
const CANARIES: &[(&str, &str)] = &[
    ("canary/a", "alpha"),
    ("canary/dir/b", "beta"),
    ("canary/dir/deeper/c", "gamma"),
];

#[test]
fn hostile_requests_never_hurt_the_server_or_its_data() {
    let server = ServerProcess::beacon_at(env!("CARGO_BIN_EXE_beacon")).expect("beacon starts");
    let port = server.client_port();
    let pid = server.pid().expect("running");
    let canaries = write_canaries(port);
    let rss_before = rss_bytes(pid);

    let started = Instant::now();
    let mut answered = 0usize;
    let fixed = cases::client_cases();
    for case in &fixed {
        let answer = send_then_close(port, &case.bytes, ANSWER_WAIT)
            .unwrap_or_else(|e| panic!("case {:?}: could not connect: {e}", case.name));
        answered += usize::from(answer.status.is_some());
        assert_alive(&server, &format!("case {:?}", case.name));
    }
    let fixed_time = started.elapsed();

    let seed = std::env::var("BEACON_HOSTILE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0068_6f73_7469_6c65);
    let count = std::env::var("BEACON_HOSTILE_MUTATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(MUTATIONS_DEFAULT);
    println!("hostile: seed {seed} (BEACON_HOSTILE_SEED={seed} replays), {count} mutations");
    let mut rng = SeededRng::new(seed);
    let seeds = cases::seeds();
    let mutated_started = Instant::now();
    for i in 0..count {
        let base = &seeds[rng.below(seeds.len() as u64) as usize];
        let request = mutate::mutate(&mut rng, base);
        let answer = send_then_close(port, &request, ANSWER_WAIT).unwrap_or_else(|e| {
            panic!("seed {seed}, mutation {i}: could not connect: {e}: {request:?}")
        });
        answered += usize::from(answer.status.is_some());
        if i % 250 == 0 {
            assert_alive(&server, &format!("seed {seed}, mutation {i}"));
        }
    }
    assert_alive(&server, &format!("seed {seed}, after every mutation"));

    check_canaries(port, &canaries);
    let growth = rss_bytes(pid).saturating_sub(rss_before);
    println!(
        "hostile: {} fixed cases in {fixed_time:?}, {count} mutations in {:?}, {answered} answered, RSS grew {} KiB",
        fixed.len(),
        mutated_started.elapsed(),
        growth >> 10
    );
    assert!(
        growth <= RSS_GROWTH_BYTES_MAX,
        "RSS grew by {growth} bytes (seed {seed})"
    );
}

/// Writes the canaries and returns each one's JSON node as written.
fn write_canaries(port: u16) -> Vec<(String, serde_json::Value)> {
    let mut written = Vec::new();
    for (key, value) in CANARIES {
        let answer = send(
            port,
            &form_request("PUT", &format!("/v2/keys/{key}"), &format!("value={value}")),
            ANSWER_WAIT,
        )
        .expect("canary write");
        assert!(
            matches!(answer.status, Some(200 | 201)),
            "canary write: {answer:?}"
        );
        written.push((key.to_string(), node_of(port, key)));
    }
    written
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

fn check_canaries(port: u16, written: &[(String, serde_json::Value)]) {
    for (key, node) in written {
        assert_eq!(&node_of(port, key), node, "canary {key} changed");
    }
}

/// The server is still the process we started, and it answers.
fn assert_alive(server: &ServerProcess, after: &str) {
    let pid = server.pid().expect("pid");
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists() && !proc_state(pid).starts_with('Z'),
        "beacon died after {after}:\n{}",
        server.log_tail(30)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(answer) = send(
            server.client_port(),
            &bare_request("GET", "/health"),
            ANSWER_WAIT,
        ) {
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

fn proc_state(pid: u32) -> String {
    status_field(pid, "State:").unwrap_or_default()
}

fn rss_bytes(pid: u32) -> u64 {
    let kib: u64 = status_field(pid, "VmRSS:")
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .expect("VmRSS in /proc/<pid>/status");
    kib << 10
}

fn status_field(pid: u32, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field).map(|v| v.trim().to_string()))
}
