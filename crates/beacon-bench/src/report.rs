//! Turns the collected results (one JSON line per workload and server) into the Markdown
//! of bench/RESULTS.md: a table per workload with both servers' figures and the ratio
//! Beacon/etcd, and a summary of issue 3's targets. Issue 15's targets, which span
//! bench/run's and bench/cluster's results, have their own table (`issue15`).

mod issue15;
mod workload_id;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{Context, Result};
use serde_json::Value;

pub use issue15::render as render_issue15;
use workload_id::PutPoint;

/// A target of the issue: the Beacon/etcd ratio must be at least / at most this.
#[derive(Clone, Copy)]
enum Target {
    AtLeast(f64),
    AtMost(f64),
}

impl Target {
    fn met(self, ratio: f64) -> bool {
        match self {
            Target::AtLeast(x) => ratio >= x,
            Target::AtMost(x) => ratio <= x,
        }
    }

    fn text(self) -> String {
        match self {
            Target::AtLeast(x) => format!("≥ {x}×"),
            Target::AtMost(x) => format!("≤ {x}×"),
        }
    }
}

/// One row of a workload's table.
struct Metric {
    /// Where the figure is in a result: a key, or keys joined by dots for a nested one.
    key: &'static str,
    label: &'static str,
    target: Option<Target>,
    /// Whether Beacon/etcd means something for this row (not for counts of events).
    ratio: bool,
}

const fn m(key: &'static str, label: &'static str, target: Option<Target>) -> Metric {
    Metric {
        key,
        label,
        target,
        ratio: true,
    }
}

/// A row of counted events, shown side by side without a ratio.
const fn count(key: &'static str, label: &'static str) -> Metric {
    Metric {
        key,
        label,
        target: None,
        ratio: false,
    }
}

/// The figure at `key` (dots go down nested objects), if it is a number.
pub(crate) fn figure(result: Option<&Value>, key: &str) -> Option<f64> {
    key.split('.')
        .try_fold(result?, |v, k| v.get(k))
        .and_then(Value::as_f64)
}

const THROUGHPUT: Option<Target> = Some(Target::AtLeast(2.0));
const HALF: Option<Target> = Some(Target::AtMost(0.5));

/// The PUT loads issue 3 set its targets for: 1, 16 and 64 connections to one member at
/// the default snapshot count. The points issue 15 added have only issue 15's targets.
fn has_issue3_targets(workload: &str) -> bool {
    match PutPoint::parse(workload) {
        Some(put) => {
            put.members == 1
                && put.snapshot_count == workload_id::DEFAULT_SNAPSHOT_COUNT
                && [1, 16, 64].contains(&put.connections)
        }
        None => workload.starts_with("get"),
    }
}

/// The rows shown for a workload id (as bench/run names them).
fn metrics_of(workload: &str) -> Vec<Metric> {
    let (put_or_get, throughput, p99) = if has_issue3_targets(workload) {
        (true, THROUGHPUT, HALF)
    } else {
        let single = workload.starts_with("put") || workload.starts_with("get");
        (single, None, None)
    };
    // Issue 15: a PUT figure means little unless the reader sees whether the window crossed
    // a snapshot and a log purge, the two things writes used to stall behind.
    let log_counts = |members: &str| {
        [
            count(
                "log_counts.snapshots",
                match members {
                    "" => "snapshots written during the measurement",
                    _ => "snapshots written during the measurement, 3 members together",
                },
            ),
            count(
                "log_counts.purges",
                match members {
                    "" => "log purges during the measurement (etcd: raft log compactions)",
                    _ => "log purges during the measurement, 3 members together",
                },
            ),
        ]
    };
    if put_or_get || workload.starts_with("qget") {
        let mut rows = vec![
            m("ops_per_sec", "throughput (req/s)", throughput),
            m("p50_ms", "p50 latency (ms)", None),
            m("p99_ms", "p99 latency (ms)", p99),
            m("max_ms", "max latency (ms)", None),
        ];
        if workload.starts_with("put") {
            rows.extend(log_counts(""));
        }
        rows.extend([
            m("ops", "requests counted", None),
            m("errors", "errors", None),
            m("server_cpu_us_per_op", "server CPU per request (µs)", None),
            m("server_cpu_s", "server CPU (s)", None),
            m("client_cpu_s", "load generator CPU (s)", None),
        ]);
        return rows;
    }
    if workload.starts_with("c3-put") {
        let mut rows = vec![
            m("ops_per_sec", "throughput (req/s)", None),
            m("p50_ms", "p50 latency (ms)", None),
            m("p99_ms", "p99 latency (ms)", None),
            m("max_ms", "max latency (ms)", None),
        ];
        rows.extend(log_counts("3"));
        rows.push(m("errors", "errors", None));
        return rows;
    }
    match workload {
        "c3-failover" => vec![
            m(
                "failover_ms_median",
                "leader SIGKILL → first write acked, median of rounds (ms)",
                None,
            ),
            m("failover_ms_max", "the same, worst round (ms)", None),
            m("rounds", "rounds", None),
        ],
        "churn" => vec![
            m("refresh_per_sec", "refreshes sustained (/s)", None),
            m("refresh_p50_ms", "refresh p50 (ms)", None),
            m("refresh_p99_ms", "refresh p99 (ms)", None),
            m("lost_keys", "live instances whose key expired", None),
            m("errors", "refresh errors", None),
            m("server_cpu_s", "server CPU (s)", None),
            m("server_cpu_percent", "server CPU (% of one core)", None),
            m("watch_events", "events delivered to watchers", None),
            m("watch_resyncs", "watcher resyncs (index cleared)", None),
            m(
                "expiries_seen",
                "stopped instances whose expire was seen",
                None,
            ),
            m(
                "expire_watchers_fraction",
                "share of watchers that saw each expire",
                None,
            ),
            m(
                "expire_excess_p50_ms",
                "expire seen, excess over TTL, median (ms)",
                None,
            ),
            m(
                "expire_excess_max_ms",
                "expire seen, excess over TTL, max (ms)",
                None,
            ),
            m("client_cpu_s", "load generator CPU (s)", None),
        ],
        "fanout" => vec![
            m(
                "fanout_last_ms_median",
                "write sent → last watcher has event, median of rounds (ms)",
                HALF,
            ),
            m(
                "fanout_median_watcher_ms",
                "write sent → median watcher has event (ms)",
                None,
            ),
            m("write_ack_ms_median", "the write's own latency (ms)", None),
            m(
                "server_cpu_s_per_round",
                "server CPU per round, re-arming included (s)",
                None,
            ),
            m(
                "client_cpu_s_per_round",
                "load generator CPU per round (s)",
                None,
            ),
            m(
                "register_s",
                "time to connect and arm all watchers (s)",
                None,
            ),
            m(
                "register_listen_overflows",
                "SYNs dropped meanwhile (accept queue full)",
                None,
            ),
            m("rss_idle_kib", "RSS idle (KiB)", None),
            m("rss_watching_kib", "RSS with the idle watchers (KiB)", None),
            m("rss_per_watcher_kib", "RSS per idle watcher (KiB)", None),
        ],
        "memory" => vec![
            m("keys", "keys loaded", None),
            m("load_per_sec", "load rate, 128 connections (PUT/s)", None),
            m("rss_idle_kib", "RSS idle (KiB)", None),
            m("rss_loaded_kib", "RSS with the keys (KiB)", None),
            m("bytes_per_key", "RSS per key (bytes)", HALF),
        ],
        "restart" => vec![
            m(
                "seconds",
                "SIGTERM'd, restarted: start → GET of a known key (s)",
                None,
            ),
            m(
                "data_dir_kib",
                "data dir size before the restart (KiB)",
                None,
            ),
            // Rebuilt state without the load's garbage: steadier than the memory
            // workload's figure for a garbage-collected server.
            m(
                "rss_after_restart_kib",
                "RSS right after the restart (KiB)",
                None,
            ),
        ],
        _ => vec![],
    }
}

fn title_of(workload: &str) -> String {
    if let Some(put) = PutPoint::parse(workload) {
        return put.title();
    }
    let conns = |w: &str| match w.rsplit_once("-c") {
        Some((_, "1")) => "1 connection".to_string(),
        Some((_, n)) => format!("{n} connections"),
        None => String::new(),
    };
    match workload {
        w if w.starts_with("get-") => format!("v2 GET, {}", conns(w)),
        w if w.starts_with("qget-") => format!("v2 quorum GET, {}", conns(w)),
        "churn" => "Service-discovery churn".to_string(),
        "c3-failover" => "3 members: failover after SIGKILL of the leader".to_string(),
        "fanout" => "Watch fan-out".to_string(),
        "memory" => "Memory with many keys".to_string(),
        "restart" => "Restart with the memory workload's data dir".to_string(),
        other => other.to_string(),
    }
}

/// Both servers' results of one workload, in the order they ran.
#[derive(Default)]
pub(crate) struct Pair {
    pub(crate) beacon: Option<Value>,
    pub(crate) etcd: Option<Value>,
    /// The same load against `beacon-bench null-server`, where it was run.
    floor: Option<Value>,
    first: Option<String>,
    /// 1-minute load average just before each server's run, as (server, load).
    loads: Vec<(String, f64)>,
    /// Servers whose run overlapped someone else's build (cargo or rustc running).
    pub(crate) busy: Vec<String>,
}

/// Reads the JSON lines and renders the tables (the caller prepends the machine header).
pub fn render(results_jsonl: &str) -> Result<String> {
    let (order, pairs) = read_pairs(results_jsonl)?;

    let mut summary = String::from(
        "| workload | target | Beacon | etcd | Beacon/etcd | met? |\n|---|---|---:|---:|---:|---|\n",
    );
    let mut tables = String::new();
    for workload in &order {
        let pair = &pairs[workload];
        let first = pair.first.as_deref().unwrap_or("?");
        let loads: Vec<String> = pair
            .loads
            .iter()
            .map(|(s, l)| format!("{s} {l:.2}"))
            .collect();
        let busy = if pair.busy.is_empty() {
            String::new()
        } else {
            format!(
                " ⚠ Someone else's cargo/rustc ran during the run of: {}.",
                pair.busy.join(", ")
            )
        };
        writeln!(
            tables,
            "### {}\n\n`{workload}`, {first} ran first; load average before: {}.{busy}\n",
            title_of(workload),
            loads.join(", ")
        )?;
        tables.push_str(
            "| metric | Beacon | etcd | Beacon/etcd | target |\n|---|---:|---:|---:|---|\n",
        );
        for metric in metrics_of(workload) {
            let b = figure(pair.beacon.as_ref(), metric.key);
            let e = figure(pair.etcd.as_ref(), metric.key);
            let ratio = b
                .zip(e)
                .filter(|(_, e)| metric.ratio && *e != 0.0)
                .map(|(b, e)| b / e);
            let verdict = match (metric.target, ratio) {
                (Some(t), Some(r)) => format!(
                    "{} {}",
                    t.text(),
                    if t.met(r) { "met" } else { "**not met**" }
                ),
                (Some(t), None) => format!("{} (no data)", t.text()),
                (None, _) => String::new(),
            };
            writeln!(
                tables,
                "| {} | {} | {} | {} | {verdict} |",
                metric.label,
                num(b),
                num(e),
                ratio.map_or("–".into(), |r| format!("{r:.2}")),
            )?;
            if let Some(t) = metric.target {
                writeln!(
                    summary,
                    "| {}{} | {} {} | {} | {} | {} | {} |",
                    title_of(workload),
                    if pair.busy.is_empty() { "" } else { " ⚠" },
                    metric.label,
                    t.text(),
                    num(b),
                    num(e),
                    ratio.map_or("–".into(), |r| format!("{r:.2}")),
                    match ratio {
                        Some(r) if t.met(r) => "yes",
                        Some(_) => "**no**",
                        None => "no data",
                    }
                )?;
            }
        }
        if let Some(floor) = &pair.floor {
            floor_note(&mut tables, floor, pair.etcd.as_ref())?;
        }
        for (name, result) in [("Beacon", &pair.beacon), ("etcd", &pair.etcd)] {
            if let Some(rounds) = result
                .as_ref()
                .and_then(|v| v["failover_ms_rounds"].as_array())
            {
                let list: Vec<String> = rounds.iter().map(|r| num(r.as_f64())).collect();
                writeln!(tables, "\n{name}'s rounds (ms): {}", list.join(", "))?;
            }
            if let Some(rounds) = result
                .as_ref()
                .and_then(|v| v["fanout_last_ms_rounds"].as_array())
            {
                let list: Vec<String> = rounds.iter().map(|r| num(r.as_f64())).collect();
                writeln!(
                    tables,
                    "\n{name}'s rounds (last watcher, ms): {}",
                    list.join(", ")
                )?;
            }
        }
        tables.push('\n');
    }
    let footnote = if pairs.values().any(|p| !p.busy.is_empty()) {
        "\n⚠: someone else's cargo or rustc ran on this machine during one of the two \
         runs of that workload; its figures are less trustworthy.\n"
    } else {
        ""
    };
    if !summary.contains("| yes |")
        && !summary.contains("| **no** |")
        && !summary.contains("no data |")
    {
        // Only workloads without targets (the cluster runs): the tables alone.
        return Ok(format!("{tables}{footnote}"));
    }
    Ok(format!(
        "## Targets of issue 3\n\n{summary}{footnote}\n## Workloads\n\n{tables}"
    ))
}

/// The records of a results file (JSON lines) by workload, and the workloads in the order
/// they first appear.
pub(crate) fn read_pairs(results_jsonl: &str) -> Result<(Vec<String>, BTreeMap<String, Pair>)> {
    let mut order: Vec<String> = Vec::new();
    let mut pairs: BTreeMap<String, Pair> = BTreeMap::new();
    for (n, line) in results_jsonl
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let record: Value =
            serde_json::from_str(line).with_context(|| format!("results line {}", n + 1))?;
        let workload = record["workload"]
            .as_str()
            .context("no workload")?
            .to_string();
        let server = record["server"].as_str().context("no server")?.to_string();
        if !pairs.contains_key(&workload) {
            order.push(workload.clone());
        }
        let pair = pairs.entry(workload).or_default();
        if server == "floor" {
            pair.floor = Some(record["result"].clone());
            continue;
        }
        pair.first.get_or_insert(server.clone());
        if record["busy"].as_bool() == Some(true) {
            pair.busy.push(server.clone());
        }
        if let Some(load) = record["load1"].as_f64() {
            pair.loads.push((server.clone(), load));
        }
        match server.as_str() {
            "beacon" => pair.beacon = Some(record["result"].clone()),
            _ => pair.etcd = Some(record["result"].clone()),
        }
    }
    Ok((order, pairs))
}

/// What the same load gave against a server that does nothing, and so about the best
/// ratio to etcd that a server could reach on this machine.
fn floor_note(out: &mut String, floor: &Value, etcd: Option<&Value>) -> Result<()> {
    let figure = |v: Option<&Value>, key: &str| v.and_then(|v| v[key].as_f64());
    let throughput = figure(Some(floor), "ops_per_sec");
    let best = throughput
        .zip(figure(etcd, "ops_per_sec"))
        .filter(|(_, e)| *e > 0.0)
        .map(|(f, e)| f / e);
    let best_p99 = figure(Some(floor), "p99_ms")
        .zip(figure(etcd, "p99_ms"))
        .filter(|(_, e)| *e > 0.0)
        .map(|(f, e)| f / e);
    writeln!(
        out,
        "\nFloor: the same load against `beacon-bench null-server`, which does no work at \
         all (it answers each request at once and stores nothing, so it never syncs a \
         write): {} req/s, p50 {} ms, p99 {} ms, load generator CPU {} s. A server doing \
         real work can hardly beat it (runs vary by ±15%), so on this machine Beacon/etcd \
         can reach about {} for throughput and {} for p99 at best.",
        num(throughput),
        num(figure(Some(floor), "p50_ms")),
        num(figure(Some(floor), "p99_ms")),
        num(figure(Some(floor), "client_cpu_s")),
        best.map_or("–".into(), |r| format!("{r:.2}")),
        best_p99.map_or("–".into(), |r| format!("{r:.2}")),
    )?;
    Ok(())
}

/// A figure with sensible precision for a table.
pub(crate) fn num(value: Option<f64>) -> String {
    match value {
        None => "–".to_string(),
        Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{}", v as i64),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.3}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_tables_show_the_snapshots_and_purges_without_a_ratio() {
        let results = [
            r#"{"workload":"put-c256-s10000","server":"beacon","load1":1.0,"busy":false,"result":{"ops_per_sec":30000,"max_ms":12.5,"log_counts":{"snapshots":30,"purges":29}}}"#,
            r#"{"workload":"put-c256-s10000","server":"etcd","load1":1.0,"busy":false,"result":{"ops_per_sec":20000,"max_ms":25,"log_counts":{"snapshots":20,"purges":20}}}"#,
        ]
        .join("\n");
        let text = render(&results).unwrap();
        assert!(
            text.contains("### v2 PUT, 256 connections, --snapshot-count 10000\n"),
            "{text}"
        );
        assert!(
            text.contains("| max latency (ms) | 12.5 | 25 | 0.50 |  |"),
            "{text}"
        );
        assert!(
            text.contains("| snapshots written during the measurement | 30 | 20 | – |  |"),
            "{text}"
        );
        // Issue 3 set no target for this load: no summary table, no verdict.
        assert!(!text.contains("Targets of issue 3"), "{text}");
        assert!(
            text.contains("| throughput (req/s) | 30000 | 20000 | 1.50 |  |"),
            "{text}"
        );
    }
}
