//! A seeded generator over the server's gRPC request decoding and its checks before
//! and in the log, with auth on: a real `beacon` process on loopback gets thousands of
//! calls to every unary method of KV, Lease, Cluster, Maintenance, Auth, Election and
//! Lock, and Watch create requests, each from a random caller (root, a user holding
//! some permissions, a token the server never gave, no token). A message is a
//! well-formed random request (`requests`), another method's, or one mutated at the
//! byte level (`mutate`), sent as it is (`raw`).
//!
//! The server must answer every call in time, never panic or stop, and accept nothing
//! the plain auth model (`model`) forbids: whatever it accepted from a caller other
//! than root, decoded here as the server decoded it, touches only ranges that caller's
//! permissions cover, and admin calls are root's alone. At the end every key holds a
//! value some accepted request wrote. A failure prints the seed:
//! `BEACON_GRPC_FUZZ_SEED` replays it (the same calls, in the same order; only answers
//! that depend on time, a lease's expiry or a lock's wait, may differ), and
//! `BEACON_GRPC_FUZZ_CALLS` sets how many calls.

mod judge;
mod model;
mod mutate;
mod raw;
mod requests;
mod run;

use std::time::{Duration, Instant};

use beacon_testkit::{is_running, Https, ServerKind, ServerProcess};

/// Calls made by default: each method is reached a few hundred times, KV's thousands,
/// in about 20 s of a debug build on 2 cores.
const CALLS_DEFAULT: usize = 20_000;

/// How long an ordinary call may take.
const CALL_DEADLINE: Duration = Duration::from_secs(5);

/// The deadline of a call that may wait for another holder, and of a watch's first
/// answer (a watch request that creates nothing may get none).
const SHORT_DEADLINE: Duration = Duration::from_millis(300);

#[tokio::test]
async fn fuzzed_grpc_calls_never_crash_the_server_or_pass_the_auth_model() {
    let seed = from_env("BEACON_GRPC_FUZZ_SEED").unwrap_or(0x6772_7063_667a);
    let count = from_env("BEACON_GRPC_FUZZ_CALLS").unwrap_or(CALLS_DEFAULT);
    println!("grpc fuzz: seed {seed} (BEACON_GRPC_FUZZ_SEED={seed} replays), {count} calls");
    // bcrypt's cheapest cost: the users log in, and fuzzed logins check passwords.
    let server = ServerProcess::start_https(
        ServerKind::Beacon,
        env!("CARGO_BIN_EXE_beacon").into(),
        Https::default(),
        &["--bcrypt-cost=4"],
    )
    .expect("beacon starts");
    let pid = server.pid().expect("running");
    let channel = beacon_testkit::grpc_channel(&server.client_url()).await;
    let mut run = run::Run::set_up(channel, seed).await;

    let started = Instant::now();
    for i in 0..count {
        run.one(i).await;
        if i % 500 == 0 {
            assert!(is_running(pid), "seed {seed}, call {i}: the server stopped");
        }
    }
    let elapsed = started.elapsed();

    assert!(is_running(pid), "seed {seed}: the server stopped");
    let log = std::fs::read_to_string(server.log_path()).unwrap_or_default();
    assert!(
        !log.contains("panicked"),
        "seed {seed}: the server panicked:\n{}",
        server.log_tail(60)
    );
    run.check_after(seed).await;
    let health = beacon_testkit::http_get(server.client_port(), "/health").expect("/health");
    assert_eq!(health.status, 200, "seed {seed}: /health after the run");
    run.figures.print(count, elapsed);
    assert!(
        run.violations.is_empty(),
        "seed {seed} (BEACON_GRPC_FUZZ_SEED={seed} replays): {} violations:\n{}",
        run.violations.len(),
        run.violations.join("\n")
    );
}

fn from_env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}
