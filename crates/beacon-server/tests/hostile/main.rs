//! The hostile-input suite: a real `beacon` process on loopback gets a fixed corpus and
//! then thousands of seeded mutations of well-formed requests, each on a fresh
//! connection, speaking to the socket directly: on its client port (`cases`), and on its
//! peer port (`peer_cases`) as anyone who can reach that port could. Afterwards the
//! process must still be the same process (no panic, no abort), answer `/health`, hold
//! the canary keys written before the attack exactly as they were, and have stayed
//! within a memory bound; the attacked peer port's member must still lead its cluster
//! in the same term and start again on its data directory. A failure prints the seed;
//! `BEACON_HOSTILE_SEED` replays it, and `BEACON_HOSTILE_MUTATIONS` and
//! `BEACON_HOSTILE_PEER_MUTATIONS` set how many mutations each port gets.

mod cases;
mod check;
mod mutate;
mod peer_cases;
mod raw;
#[path = "../support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use beacon_testkit::{rss_bytes, SeededRng, ServerKind, ServerProcess};

use cases::Case;
use check::{assert_alive, check_canaries, write_canaries};
use raw::{bare_request, body_text, header, send, send_then_close};

/// Mutated client requests sent by default: enough to reach every mutation of every
/// seed many times, few enough for CI (about 10 s on 2 cores).
const MUTATIONS_DEFAULT: usize = 10_000;

/// Mutated peer messages sent by default: as many as the client port gets, since each
/// is refused within a millisecond or two (about 5 s in all on 2 cores).
const PEER_MUTATIONS_DEFAULT: usize = 10_000;

/// How long one hostile request may take to be answered or dropped.
const ANSWER_WAIT: Duration = Duration::from_secs(2);

/// How much the server's resident memory may grow over the whole attack. The client
/// corpus sends ~25 MiB in all, the peer corpus ~20 MiB; a server that kept what it
/// was sent, or a copy per segment, would exceed this.
const RSS_GROWTH_BYTES_MAX: u64 = 96 << 20;

/// The attacked peer port's member snapshots after this many entries (`--snapshot-count`),
/// so that the suite has a real snapshot file to break and to mutate.
const PEER_SNAPSHOT_ENTRIES: usize = 16;

/// How long the member may take to write its first snapshot.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(20);

#[test]
fn hostile_requests_never_hurt_the_server_or_its_data() {
    let server = ServerProcess::beacon_at(env!("CARGO_BIN_EXE_beacon")).expect("beacon starts");
    let port = server.client_port();
    let pid = server.pid().expect("running");
    let canaries = write_canaries(port);
    let rss_before = rss_bytes(pid);

    let fixed = cases::client_cases();
    let attack = Attack {
        what: "hostile",
        port,
        fixed: &fixed,
        seeds: &cases::seeds(),
        count: from_env("BEACON_HOSTILE_MUTATIONS").unwrap_or(MUTATIONS_DEFAULT),
        seed: seed(),
    };
    let figures = attack.run(&server);

    check_canaries(port, &canaries);
    let growth = rss_bytes(pid).saturating_sub(rss_before);
    figures.print(&attack, growth);
    assert!(
        growth <= RSS_GROWTH_BYTES_MAX,
        "RSS grew by {growth} bytes (seed {})",
        attack.seed
    );
}

#[test]
fn hostile_peer_messages_never_hurt_the_member_or_its_data() {
    let snapshot_count = PEER_SNAPSHOT_ENTRIES.to_string();
    let mut server = ServerProcess::cluster_with(
        ServerKind::Beacon,
        env!("CARGO_BIN_EXE_beacon").into(),
        1,
        &["--snapshot-count", &snapshot_count],
    )
    .expect("beacon starts")
    .pop()
    .expect("one member");
    let port = server.client_port();
    let pid = server.pid().expect("running");
    let canaries = write_canaries(port);
    let snapshot = first_snapshot(&server);
    let ids = support::peer_identity(&server);
    let term = leader_term(&server);
    let rss_before = rss_bytes(pid);

    let fixed = peer_cases::peer_cases(ids, &snapshot);
    let attack = Attack {
        what: "hostile peer",
        port: server.peer_port(),
        fixed: &fixed,
        seeds: &peer_cases::peer_seeds(ids, &snapshot),
        count: from_env("BEACON_HOSTILE_PEER_MUTATIONS").unwrap_or(PEER_MUTATIONS_DEFAULT),
        seed: seed(),
    };
    let figures = attack.run(&server);

    check_canaries(port, &canaries);
    // No message reached Raft: a forged vote or append would have moved the term.
    assert_eq!(
        leader_term(&server),
        term,
        "the term moved (seed {})",
        attack.seed
    );
    let growth = rss_bytes(pid).saturating_sub(rss_before);
    figures.print(&attack, growth);
    assert!(
        growth <= RSS_GROWTH_BYTES_MAX,
        "RSS grew by {growth} bytes (seed {})",
        attack.seed
    );
    // Whatever reached the disk, the data directory still starts and holds the canaries.
    server
        .restart()
        .expect("the member restarts on its data directory");
    leader_term(&server);
    check_canaries(port, &canaries);
}

/// One port's attack: its fixed corpus, then `count` seeded mutations of its seeds.
struct Attack<'a> {
    /// How its lines start.
    what: &'static str,
    port: u16,
    fixed: &'a [Case],
    seeds: &'a [Vec<u8>],
    count: usize,
    seed: u64,
}

/// What an attack measured.
struct Figures {
    answered: usize,
    fixed_time: Duration,
    mutated_time: Duration,
}

impl Attack<'_> {
    /// Sends everything, checking after each fixed case (and every 250 mutations) that
    /// the server lives.
    fn run(&self, server: &ServerProcess) -> Figures {
        let Attack { what, seed, .. } = self;
        let started = Instant::now();
        let mut answered = 0usize;
        for case in self.fixed {
            let answer = send_then_close(self.port, &case.bytes, ANSWER_WAIT)
                .unwrap_or_else(|e| panic!("case {:?}: could not connect: {e}", case.name));
            answered += usize::from(answer.status.is_some());
            if case.refused {
                assert!(
                    matches!(answer.status, None | Some(400..=499)),
                    "case {:?} was not refused: {}",
                    case.name,
                    String::from_utf8_lossy(&answer.bytes)
                );
            }
            assert_alive(server, &format!("case {:?}", case.name));
        }
        let fixed_time = started.elapsed();

        println!(
            "{what}: seed {seed} (BEACON_HOSTILE_SEED={seed} replays), {} mutations",
            self.count
        );
        let mut rng = SeededRng::new(*seed);
        let mutated_started = Instant::now();
        for i in 0..self.count {
            let base = &self.seeds[rng.below(self.seeds.len() as u64) as usize];
            let request = mutate::mutate(&mut rng, base);
            let answer = send_then_close(self.port, &request, ANSWER_WAIT).unwrap_or_else(|e| {
                panic!(
                    "seed {seed}, mutation {i}: could not connect: {e}: {:?}\n{}",
                    String::from_utf8_lossy(&request),
                    server.log_tail(40)
                )
            });
            answered += usize::from(answer.status.is_some());
            if i % 250 == 0 {
                assert_alive(server, &format!("seed {seed}, mutation {i}"));
            }
        }
        assert_alive(server, &format!("seed {seed}, after every mutation"));
        Figures {
            answered,
            fixed_time,
            mutated_time: mutated_started.elapsed(),
        }
    }
}

impl Figures {
    fn print(&self, attack: &Attack, rss_growth: u64) {
        println!(
            "{}: {} fixed cases in {:?}, {} mutations in {:?}, {} answered, RSS grew {} KiB",
            attack.what,
            attack.fixed.len(),
            self.fixed_time,
            attack.count,
            self.mutated_time,
            self.answered,
            rss_growth >> 10
        );
    }
}

fn seed() -> u64 {
    from_env("BEACON_HOSTILE_SEED").unwrap_or(0x0068_6f73_7469_6c65)
}

fn from_env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

/// Writes keys until the member has a snapshot file, and returns that file's bytes.
fn first_snapshot(server: &ServerProcess) -> Vec<u8> {
    let dir = server.data_dir().join("member/snap");
    let deadline = Instant::now() + SNAPSHOT_WAIT;
    for i in 0.. {
        let found = std::fs::read_dir(&dir).ok().and_then(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|e| e == "snap"))
        });
        if let Some(path) = found {
            return std::fs::read(path).expect("the snapshot file");
        }
        assert!(
            Instant::now() < deadline,
            "no snapshot in {}",
            dir.display()
        );
        if i < 4 * PEER_SNAPSHOT_ENTRIES {
            check::put(server.client_port(), &format!("filler/{i}"), "f");
        } else {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    unreachable!("the loop returns or panics")
}

/// The member's term, once it reports that it leads (a one-member cluster always does,
/// soon after it starts).
fn leader_term(server: &ServerProcess) -> u64 {
    let port = server.client_port();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = send(port, &bare_request("GET", "/v2/stats/self"), ANSWER_WAIT)
            .ok()
            .and_then(|a| serde_json::from_str::<serde_json::Value>(&body_text(&a)).ok());
        if let Some(s) = stats {
            if s["state"] == "StateLeader" && s["leaderInfo"]["leader"] == s["id"] {
                let read =
                    send(port, &bare_request("GET", "/v2/keys/"), ANSWER_WAIT).expect("a read");
                if let Some(term) = header(&read, "x-raft-term").and_then(|t| t.parse().ok()) {
                    return term;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "the member does not lead:\n{}",
            server.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
