//! The "Targets of issue 15" table (writes at scale): Beacon against etcd in the same run, a
//! row per target and PUT load, from bench/run's results (one member, restart) and
//! bench/cluster's (three members, failover).
//!
//! Each PUT row also shows how many snapshots and log purges Beacon went through during
//! that measurement, because the issue is about writes stalling behind them: a p99 taken
//! in a window without either says nothing about the stall.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use anyhow::Result;
use serde_json::Value;

use super::workload_id::{PutPoint, Route, DEFAULT_SNAPSHOT_COUNT};
use super::{figure, num, read_pairs, Pair};

/// The connection counts the issue names for every PUT target.
const CONNECTIONS: [u64; 4] = [1, 16, 64, 256];

/// Throughput must reach this multiple of etcd's at the given connection count: at least
/// etcd's everywhere, and 1.5× where there is enough concurrency to batch (64 and 256).
fn throughput_target(connections: u64) -> f64 {
    if connections >= 64 {
        1.5
    } else {
        1.0
    }
}

/// Through a follower, Beacon must reach this share of its own throughput via the leader.
const FOLLOWER_SHARE_MIN: f64 = 0.9;
/// Beacon's maximum PUT latency may be at most this multiple of etcd's.
const MAX_LATENCY_RATIO_MAX: f64 = 2.0;

/// One row: a figure against what it is compared with.
struct Row {
    point: String,
    target: String,
    figure: Option<f64>,
    reference: Option<f64>,
    /// The ratio figure/reference must be at least (`true`) or at most (`false`) `bound`.
    at_least: bool,
    bound: f64,
    /// Beacon's snapshots and purges during the run the figure comes from.
    crossed: String,
}

impl Row {
    fn ratio(&self) -> Option<f64> {
        self.figure
            .zip(self.reference)
            .filter(|(_, r)| *r != 0.0)
            .map(|(f, r)| f / r)
    }

    fn met(&self) -> Option<bool> {
        self.ratio().map(|r| {
            if self.at_least {
                r >= self.bound
            } else {
                r <= self.bound
            }
        })
    }
}

/// Renders the section from one or more results files' contents (JSON lines).
pub fn render(results: &[String]) -> Result<String> {
    let (_, pairs) = read_pairs(&results.join("\n"))?;
    let points: Vec<PutPoint> = pairs.keys().filter_map(|w| PutPoint::parse(w)).collect();
    // Every snapshot count some PUT load ran with, the default first.
    let snapshot_counts: BTreeSet<(bool, u64)> = points
        .iter()
        .map(|p| (p.snapshot_count != DEFAULT_SNAPSHOT_COUNT, p.snapshot_count))
        .collect();
    let single = points.iter().any(|p| p.members == 1) || pairs.contains_key("restart");
    let cluster = points.iter().any(|p| p.members > 1) || pairs.contains_key("c3-failover");

    let mut rows = Vec::new();
    let mut routes = Vec::new();
    if single {
        routes.push((1, Route::Sole));
    }
    if cluster {
        routes.extend([(3, Route::Leader), (3, Route::Follower)]);
    }
    for &(members, route) in &routes {
        for &(_, snapshot_count) in &snapshot_counts {
            for connections in CONNECTIONS {
                let point = PutPoint {
                    members,
                    connections,
                    route,
                    snapshot_count,
                };
                put_rows(&mut rows, &pairs, point);
            }
        }
    }
    if single {
        let restart = pairs.get("restart");
        let keys = pairs
            .get("memory")
            .and_then(|p| figure(p.beacon.as_ref(), "keys"));
        rows.push(Row {
            point: format!("restart with {} keys (the memory workload's)", num(keys)),
            target: "start → GET of a known key (s) ≤ etcd's".into(),
            figure: restart.and_then(|p| figure(p.beacon.as_ref(), "seconds")),
            reference: restart.and_then(|p| figure(p.etcd.as_ref(), "seconds")),
            at_least: false,
            bound: 1.0,
            crossed: String::new(),
        });
    }
    if cluster {
        let failover = pairs.get("c3-failover");
        rows.push(Row {
            point: "3 members: leader SIGKILL under writes".into(),
            target: "kill → first write acked, median (ms) ≤ etcd's".into(),
            figure: failover.and_then(|p| figure(p.beacon.as_ref(), "failover_ms_median")),
            reference: failover.and_then(|p| figure(p.etcd.as_ref(), "failover_ms_median")),
            at_least: false,
            bound: 1.0,
            crossed: String::new(),
        });
    }
    Ok(table(&rows))
}

/// The rows of one PUT load: p99, max latency and throughput against etcd's, and through a
/// follower, throughput against Beacon's own via the leader.
fn put_rows(rows: &mut Vec<Row>, pairs: &BTreeMap<String, Pair>, point: PutPoint) {
    let pair = pairs.get(&point.id());
    let beacon = pair.and_then(|p| p.beacon.as_ref());
    let etcd = pair.and_then(|p| p.etcd.as_ref());
    let busy = if pair.is_some_and(|p| !p.busy.is_empty()) {
        " ⚠"
    } else {
        ""
    };
    let name = format!("{}{busy}", short_title(point));
    let crossed = crossed(beacon);
    let row = |target: String, key: &str, at_least: bool, bound: f64| Row {
        point: name.clone(),
        target,
        figure: figure(beacon, key),
        reference: figure(etcd, key),
        at_least,
        bound,
        crossed: crossed.clone(),
    };
    rows.push(row("p99 (ms) ≤ etcd's".into(), "p99_ms", false, 1.0));
    rows.push(row(
        format!("max latency (ms) ≤ {MAX_LATENCY_RATIO_MAX}× etcd's"),
        "max_ms",
        false,
        MAX_LATENCY_RATIO_MAX,
    ));
    let share = throughput_target(point.connections);
    let share_text = if share == 1.0 {
        "etcd's".to_string()
    } else {
        format!("{share}× etcd's")
    };
    rows.push(row(
        format!("throughput (req/s) ≥ {share_text}"),
        "ops_per_sec",
        true,
        share,
    ));
    if point.route == Route::Follower {
        let leader = PutPoint {
            route: Route::Leader,
            ..point
        };
        let via_leader = pairs.get(&leader.id()).and_then(|p| p.beacon.as_ref());
        rows.push(Row {
            point: name,
            target: format!("throughput (req/s) ≥ {FOLLOWER_SHARE_MIN}× Beacon's via the leader"),
            figure: figure(beacon, "ops_per_sec"),
            reference: figure(via_leader, "ops_per_sec"),
            at_least: true,
            bound: FOLLOWER_SHARE_MIN,
            crossed,
        });
    }
}

/// A PUT load in a few words: "1 member, 64 conn." and the snapshot count if not default.
fn short_title(point: PutPoint) -> String {
    let members = match point.route {
        Route::Sole => "1 member".to_string(),
        Route::Leader => format!("{} members, leader", point.members),
        Route::Follower => format!("{} members, via a follower", point.members),
    };
    format!(
        "PUT, {members}, {}{}",
        point.connections_text(),
        point.snapshot_text()
    )
}

/// "snapshots · purges" Beacon logged during the measurement, or "–" when not counted.
fn crossed(beacon: Option<&Value>) -> String {
    match (
        figure(beacon, "log_counts.snapshots"),
        figure(beacon, "log_counts.purges"),
    ) {
        (None, None) => "–".to_string(),
        (s, p) => format!("{} · {}", num(s), num(p)),
    }
}

fn table(rows: &[Row]) -> String {
    let met = rows.iter().filter(|r| r.met() == Some(true)).count();
    let missing = rows.iter().filter(|r| r.met().is_none()).count();
    let mut out = format!(
        "## Targets of issue 15\n\n\
         Beacon against etcd 3.4 in the same run: {met} of {} targets met{}. \
         \"compared with\" is etcd's figure for the same load unless the target says \
         otherwise; \"snapshots · purges\" is how many snapshots Beacon wrote and how many \
         times it purged its raft log during that measurement (for 3 members, the sum over \
         them), so a reader sees whether the window crossed them.\n\n\
         | load | target | Beacon | compared with | ratio | met? | snapshots · purges |\n\
         |---|---|---:|---:|---:|---|---:|\n",
        rows.len(),
        if missing > 0 {
            format!(", {missing} without data")
        } else {
            String::new()
        }
    );
    for row in rows {
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            row.point,
            row.target,
            num(row.figure),
            num(row.reference),
            row.ratio().map_or("–".into(), |r| format!("{r:.2}")),
            match row.met() {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "no data",
            },
            row.crossed,
        );
    }
    if rows.iter().any(|r| r.point.contains('⚠')) {
        out.push_str(
            "\n⚠: someone else's cargo or rustc ran on this machine during one of the two \
             runs of that load; its figures are less trustworthy.\n",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(workload: &str, server: &str, result: &str) -> String {
        format!(
            r#"{{"workload":"{workload}","server":"{server}","load1":1.0,"busy":false,"result":{result}}}"#
        )
    }

    #[test]
    fn rows_compare_with_etcd_and_the_follower_with_the_leader() {
        let single = [
            line(
                "put-c64-s10000",
                "beacon",
                r#"{"ops_per_sec":30000,"p99_ms":5.0,"max_ms":50.0,"log_counts":{"snapshots":30,"purges":29}}"#,
            ),
            line(
                "put-c64-s10000",
                "etcd",
                r#"{"ops_per_sec":25000,"p99_ms":6.0,"max_ms":20.0,"log_counts":{"snapshots":25,"purges":20}}"#,
            ),
            line("memory", "beacon", r#"{"keys":1000000}"#),
            line("restart", "beacon", r#"{"seconds":3.0}"#),
            line("restart", "etcd", r#"{"seconds":4.0}"#),
        ]
        .join("\n");
        let cluster = [
            line("c3-put-c16-leader", "beacon", r#"{"ops_per_sec":10000}"#),
            line("c3-put-c16-follower", "beacon", r#"{"ops_per_sec":8000}"#),
            line("c3-failover", "beacon", r#"{"failover_ms_median":1100}"#),
            line("c3-failover", "etcd", r#"{"failover_ms_median":1200}"#),
        ]
        .join("\n");
        let text = render(&[single, cluster]).unwrap();
        let row = |start: &str| {
            text.lines()
                .find(|l| l.starts_with(start))
                .unwrap_or_else(|| panic!("no row {start:?} in\n{text}"))
                .to_string()
        };
        let p99 = row("| PUT, 1 member, 64 connections, --snapshot-count 10000 | p99");
        assert!(p99.ends_with("| 5 | 6 | 0.83 | yes | 30 · 29 |"), "{p99}");
        let max = row("| PUT, 1 member, 64 connections, --snapshot-count 10000 | max");
        assert!(max.contains("| 2.50 | **no** |"), "{max}");
        let throughput =
            row("| PUT, 1 member, 64 connections, --snapshot-count 10000 | throughput");
        assert!(
            throughput.contains("≥ 1.5× etcd's | 30000 | 25000 | 1.20 | **no** |"),
            "{throughput}"
        );
        let follower =
            row("| PUT, 3 members, via a follower, 16 connections | throughput (req/s) ≥ 0.9×");
        assert!(
            follower.contains("| 8000 | 10000 | 0.80 | **no** |"),
            "{follower}"
        );
        assert!(row("| restart with 1000000 keys").contains("| 0.75 | yes |"));
        assert!(row("| 3 members: leader SIGKILL").contains("| 0.92 | yes |"));
        // Loads that did not run are listed, not left out: the default snapshot count's.
        assert!(row("| PUT, 1 member, 1 connection | p99").contains("| no data |"));
        assert!(
            text.contains("3 of 82 targets met, 76 without data"),
            "{text}"
        );
    }

    #[test]
    fn a_family_without_results_has_no_rows() {
        let single = line("put-c16", "beacon", r#"{"ops_per_sec":1}"#);
        let text = render(&[single]).unwrap();
        assert!(!text.contains("| PUT, 3 members"), "{text}");
        assert!(
            text.contains("| PUT, 1 member, 256 connections | p99"),
            "{text}"
        );
    }
}
