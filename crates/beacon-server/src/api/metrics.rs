//! `/metrics`: what etcd 3.4 exposes there for what Beacon has, under etcd's names,
//! types and help texts, in Prometheus' text format 0.0.4 as etcd serves it, so that
//! dashboards and alerts written for etcd read Beacon unchanged.
//!
//! Written here rather than with a metrics library: the values are read at scrape time
//! from state the server keeps anyway (consensus status, the keyspace's sizes, the
//! proposal counters, `/proc`), and the Rust client (`prometheus-client`) writes
//! OpenMetrics, whose counter families drop the `_total` that etcd's `# TYPE` lines
//! carry.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use axum::response::Response;
use beacon_raft::disk_metrics;
use http::StatusCode;

use super::version::{ETCD_CLUSTER_VERSION, ETCD_SERVER_VERSION};
use crate::consensus::{PROPOSALS_FAILED, PROPOSALS_PENDING};
use crate::http::full;
use crate::state::AppState;

/// etcd's content type for the text format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Any method, as etcd's handler.
pub fn serve(state: &AppState) -> Response {
    full(StatusCode::OK, Some(CONTENT_TYPE), render(state))
}

/// One family: name, help text, type, and its samples (what follows the name: a
/// suffix and labels; value).
struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    samples: Vec<(String, f64)>,
}

fn one(name: &'static str, help: &'static str, kind: &'static str, value: f64) -> Family {
    Family {
        name,
        help,
        kind,
        samples: vec![(String::new(), value)],
    }
}

fn labelled(name: &'static str, help: &'static str, label: &str, value: &str) -> Family {
    Family {
        name,
        help,
        kind: "gauge",
        samples: vec![(format!("{{{label}=\"{value}\"}}"), 1.0)],
    }
}

/// A histogram family: its cumulative buckets, `+Inf`, sum and count, as Go's client
/// writes them.
fn histogram(
    name: &'static str,
    help: &'static str,
    h: &disk_metrics::DurationHistogram,
) -> Family {
    Family {
        name,
        help,
        kind: "histogram",
        samples: histogram_samples("", &h.read()),
    }
}

/// One histogram's samples, `labels` (`name="value",` each, or nothing) before `le`.
fn histogram_samples(labels: &str, reading: &disk_metrics::HistogramReading) -> Vec<(String, f64)> {
    let mut samples: Vec<(String, f64)> = reading
        .cumulative
        .iter()
        .map(|(bound, n)| {
            let le = go_float(*bound);
            (format!("_bucket{{{labels}le=\"{le}\"}}"), *n as f64)
        })
        .collect();
    samples.push((
        format!("_bucket{{{labels}le=\"+Inf\"}}"),
        reading.count as f64,
    ));
    let labels = labels.trim_end_matches(',');
    let braced = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    samples.push((format!("_sum{braced}"), reading.sum_seconds));
    samples.push((format!("_count{braced}"), reading.count as f64));
    samples
}

/// Each peer's round trips (`beacon_raft::peer::probe`), labelled with its id as etcd
/// labels them; no series before a peer's first record, and so no family at all on a
/// member alone, as etcd's.
fn peer_round_trips() -> Family {
    let samples = beacon_raft::peer::round_trips()
        .into_iter()
        .flat_map(|(id, reading)| {
            let labels = format!("To=\"{}\",", crate::cluster::id_hex(id));
            histogram_samples(&labels, &reading)
        })
        .collect();
    Family {
        name: "etcd_network_peer_round_trip_time_seconds",
        help: "Round-Trip-Time histogram between peers",
        kind: "histogram",
        samples,
    }
}

/// The bytes of Raft messages exchanged with each peer (`beacon_raft::peer`'s
/// traffic), labelled with its id (`To` or `From`) as etcd's rafthttp labels them; no
/// series before a peer's first message, as etcd's.
fn peer_bytes() -> [Family; 2] {
    let samples = |counts: Vec<(u64, u64)>, label: &str| {
        counts
            .into_iter()
            .map(|(id, n)| {
                let id = crate::cluster::id_hex(id);
                (format!("{{{label}=\"{id}\"}}"), n as f64)
            })
            .collect()
    };
    [
        Family {
            name: "etcd_network_peer_sent_bytes_total",
            help: "The total number of bytes sent to peers.",
            kind: "counter",
            samples: samples(beacon_raft::peer::sent_bytes(), "To"),
        },
        Family {
            name: "etcd_network_peer_received_bytes_total",
            help: "The total number of bytes received from peers.",
            kind: "counter",
            samples: samples(beacon_raft::peer::received_bytes(), "From"),
        },
    ]
}

fn render(state: &AppState) -> String {
    let status = state.status_noting_leader();
    let leader_changes = state
        .leader_seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .changes;
    let in_use = state
        .consensus
        .mvcc()
        .read()
        .map(|m| m.stored_bytes())
        .unwrap_or(0);
    let bool_value = |b: bool| if b { 1.0 } else { 0.0 };
    let mut families = vec![
        labelled(
            "etcd_cluster_version",
            "Which version is running. 1 for 'cluster_version' label with current cluster version",
            "cluster_version",
            // etcd labels it major.minor ("3.4"), where /version says "3.4.0".
            ETCD_CLUSTER_VERSION
                .rsplit_once('.')
                .map_or(ETCD_CLUSTER_VERSION, |(minor, _)| minor),
        ),
        one(
            "etcd_mvcc_db_total_size_in_bytes",
            "Total size of the underlying database physically allocated in bytes.",
            "gauge",
            state.consensus.disk_bytes() as f64,
        ),
        one(
            "etcd_mvcc_db_total_size_in_use_in_bytes",
            "Total size of the underlying database logically in use in bytes.",
            "gauge",
            in_use as f64,
        ),
        one(
            "etcd_server_has_leader",
            "Whether or not a leader exists. 1 is existence, 0 is not.",
            "gauge",
            bool_value(status.leader_id.is_some()),
        ),
        labelled(
            "etcd_server_id",
            "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
            "server_id",
            &crate::cluster::id_hex(status.id),
        ),
        one(
            "etcd_server_is_leader",
            "Whether or not this member is a leader. 1 if is, 0 otherwise.",
            "gauge",
            bool_value(status.is_leader()),
        ),
        one(
            "etcd_server_leader_changes_seen_total",
            "The number of leader changes seen.",
            "counter",
            leader_changes as f64,
        ),
        one(
            "etcd_server_proposals_applied_total",
            "The total number of consensus proposals applied.",
            "gauge",
            status.applied_index as f64,
        ),
        one(
            "etcd_server_proposals_committed_total",
            "The total number of consensus proposals committed.",
            "gauge",
            status.commit_index as f64,
        ),
        one(
            "etcd_server_proposals_failed_total",
            "The total number of failed proposals seen.",
            "counter",
            PROPOSALS_FAILED.load(Ordering::Relaxed) as f64,
        ),
        one(
            "etcd_server_proposals_pending",
            "The current number of pending proposals to commit.",
            "gauge",
            PROPOSALS_PENDING.load(Ordering::Relaxed).max(0) as f64,
        ),
        labelled(
            "etcd_server_version",
            "Which version is running. 1 for 'server_version' label with current version.",
            "server_version",
            ETCD_SERVER_VERSION,
        ),
    ];
    families.push(histogram(
        "etcd_disk_backend_commit_duration_seconds",
        "The latency distributions of commit called by backend.",
        &disk_metrics::BATCH_COMMIT,
    ));
    families.push(histogram(
        "etcd_disk_wal_fsync_duration_seconds",
        "The latency distributions of fsync called by WAL.",
        &disk_metrics::LOG_SYNC,
    ));
    families.push(peer_round_trips());
    families.extend(peer_bytes());
    families.extend(grpc_families());
    if state.metrics_extensive {
        families.push(grpc_handling());
    }
    families.extend(process_families());
    // In name order, as Go's client writes them.
    families.sort_by_key(|f| f.name);
    let mut out = String::with_capacity(4096);
    // Go's registry leaves out a family without a series.
    for f in families.iter().filter(|f| !f.samples.is_empty()) {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
        for (labels, value) in &f.samples {
            let _ = writeln!(out, "{}{labels} {}", f.name, go_float(*value));
        }
    }
    out
}

/// go-grpc-prometheus' call and message counters, every method etcd registers
/// (`grpc::calls`), series in its order: by label values, the labels in name order; and
/// etcd's own byte counts of the messages.
fn grpc_families() -> [Family; 6] {
    use crate::grpc::calls::{handled, started, CODES, LISTED_ONCE_CALLED, METHODS};
    use crate::grpc::messages::{received, received_bytes, sent, sent_bytes};
    let labels = |m: usize| {
        let (service, method, kind) = METHODS[m];
        format!("grpc_method=\"{method}\",grpc_service=\"{service}\",grpc_type=\"{kind}\"")
    };
    // etcd's Election and Lock series appear with their first call, each code with
    // its first call that ends so.
    let listed = |m: usize| m < LISTED_ONCE_CALLED || started(m) > 0;
    let mut methods: Vec<usize> = (0..METHODS.len()).filter(|m| listed(*m)).collect();
    methods.sort_by_key(|m| (METHODS[*m].1, METHODS[*m].0));
    let mut codes: Vec<usize> = (0..CODES.len()).collect();
    codes.sort_by_key(|c| CODES[*c]);
    let mut handled_samples = Vec::with_capacity(METHODS.len() * CODES.len());
    for c in &codes {
        for m in methods
            .iter()
            .filter(|m| **m < LISTED_ONCE_CALLED || handled(**m, *c) > 0)
        {
            let series = format!("{{grpc_code=\"{}\",{}}}", CODES[*c], labels(*m));
            handled_samples.push((series, handled(*m, *c) as f64));
        }
    }
    // A method etcd lists once called gets each message series with the first message
    // counted that way (a unary call that fails sends none).
    let per_method = |count: fn(usize) -> u64| -> Vec<(String, f64)> {
        methods
            .iter()
            .filter(|m| **m < LISTED_ONCE_CALLED || count(**m) > 0)
            .map(|m| (format!("{{{}}}", labels(*m)), count(*m) as f64))
            .collect()
    };
    [
        one(
            "etcd_network_client_grpc_received_bytes_total",
            "The total number of bytes received from grpc clients.",
            "counter",
            received_bytes() as f64,
        ),
        one(
            "etcd_network_client_grpc_sent_bytes_total",
            "The total number of bytes sent to grpc clients.",
            "counter",
            sent_bytes() as f64,
        ),
        Family {
            name: "grpc_server_msg_received_total",
            help: "Total number of RPC stream messages received on the server.",
            kind: "counter",
            samples: per_method(received),
        },
        Family {
            name: "grpc_server_msg_sent_total",
            help: "Total number of gRPC stream messages sent by the server.",
            kind: "counter",
            samples: per_method(sent),
        },
        Family {
            name: "grpc_server_handled_total",
            help: "Total number of RPCs completed on the server, regardless of success or failure.",
            kind: "counter",
            samples: handled_samples,
        },
        Family {
            name: "grpc_server_started_total",
            help: "Total number of RPCs started on the server.",
            kind: "counter",
            samples: per_method(started),
        },
    ]
}

/// go-grpc-prometheus' handling-time histogram (`--metrics extensive`), its series as
/// the call counters' (Election and Lock once a call of theirs ended).
fn grpc_handling() -> Family {
    use crate::grpc::calls::{handling, LISTED_ONCE_CALLED, METHODS};
    let mut methods: Vec<usize> = (0..METHODS.len()).collect();
    methods.sort_by_key(|m| (METHODS[*m].1, METHODS[*m].0));
    let samples = methods
        .into_iter()
        .map(|m| (m, handling(m)))
        .filter(|(m, reading)| *m < LISTED_ONCE_CALLED || reading.count > 0)
        .flat_map(|(m, reading)| {
            let (service, method, kind) = METHODS[m];
            let labels = format!(
                "grpc_method=\"{method}\",grpc_service=\"{service}\",grpc_type=\"{kind}\","
            );
            histogram_samples(&labels, &reading)
        })
        .collect();
    Family {
        name: "grpc_server_handling_seconds",
        help: "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
        kind: "histogram",
        samples,
    }
}

/// Linux's unit for `/proc` CPU times (`USER_HZ`), fixed at 100 by its ABI whatever
/// the kernel's own tick.
const USER_HZ: f64 = 100.0;

/// Go's process collector's families, from `/proc/self`; each one left out where it
/// cannot be read.
fn process_families() -> Vec<Family> {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let stat = read("/proc/self/stat");
    // The fields after the command name, which is in parentheses and may hold spaces;
    // proc(5) numbers them from 1, the command being 2 and the state 3.
    let fields: Vec<String> = stat
        .as_deref()
        .and_then(|s| s.rsplit_once(')'))
        .map(|(_, rest)| rest.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
    let status = read("/proc/self/status").unwrap_or_default();
    let kib = |name: &str| {
        status.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(':')?;
            let kib = rest.trim().strip_suffix("kB")?.trim().parse::<f64>().ok()?;
            Some(kib * 1024.0)
        })
    };
    let max_fds = read("/proc/self/limits").and_then(|limits| {
        let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
        line.split_whitespace().nth(3)?.parse::<f64>().ok()
    });
    let boot_time = read("/proc/stat").and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<f64>().ok())
    });
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as f64)
        .ok();
    let mut families = Vec::new();
    let mut add = |name, help, kind, value: Option<f64>| {
        if let Some(value) = value {
            families.push(one(name, help, kind, value));
        }
    };
    // utime is field 14, stime 15, starttime 22 (clock ticks since boot).
    add(
        "process_cpu_seconds_total",
        "Total user and system CPU time spent in seconds.",
        "counter",
        field(14).zip(field(15)).map(|(u, s)| (u + s) / USER_HZ),
    );
    add(
        "process_max_fds",
        "Maximum number of open file descriptors.",
        "gauge",
        max_fds,
    );
    add(
        "process_open_fds",
        "Number of open file descriptors.",
        "gauge",
        open_fds,
    );
    add(
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
        "gauge",
        kib("VmRSS"),
    );
    add(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        "gauge",
        field(22)
            .zip(boot_time)
            .map(|(start, boot)| boot + start / USER_HZ),
    );
    add(
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes.",
        "gauge",
        kib("VmSize"),
    );
    families
}

/// A value as Go's `strconv.FormatFloat(v, 'g', -1, 64)` writes it, which is how
/// etcd's exposition writes every sample: shortest digits, exponent form from 1e6 and
/// below 1e-4, as in `2.4563712e+07`.
fn go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if v == 0.0 {
        return "0".to_string();
    }
    // Rust's `{:e}` gives the shortest digits too ("2.4563712e7").
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("{:e}'s exponent is an integer");
    // In shortest mode Go decides by a precision of 6, whatever the digit count.
    let eprec = 6;
    if exp < -4 || exp >= eprec {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::go_float;

    #[test]
    fn floats_are_written_as_go_writes_them() {
        for (v, go) in [
            (0.0, "0"),
            (4.0, "4"),
            (20480.0, "20480"),
            (0.03, "0.03"),
            (24563712.0, "2.4563712e+07"),
            (1796547761.38, "1.79654776138e+09"),
            (11943866368.0, "1.1943866368e+10"),
            (1e6, "1e+06"),
            (123456.0, "123456"),
            (0.00001, "1e-05"),
        ] {
            assert_eq!(go_float(v), go, "{v}");
        }
    }
}
