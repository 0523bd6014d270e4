//! One prefix watcher of the churn workload: follows every change under the directory
//! and notes when it sees the `expire` event of an instance that stopped refreshing.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;

use crate::client::Conn;
use crate::watch::{arm, current_index, outcome, Outcome};

/// What a watcher saw before the deadline.
#[derive(Default)]
pub struct Report {
    pub events: u64,
    /// Times the watcher fell out of the 1000-event history and had to GET and restart.
    pub resyncs: u64,
    /// (key, arrival time) of each expire event of a stopped instance.
    pub expiries: Vec<(String, Instant)>,
}

/// Watches `dir` from `from_index` until `deadline`, then gives up its connection.
pub async fn run(
    mut conn: Conn,
    dir: String,
    from_index: u64,
    watched: Arc<HashSet<String>>,
    deadline: Instant,
) -> Result<Report> {
    let mut report = Report::default();
    let following = follow(&mut conn, &dir, from_index, &watched, &mut report);
    // `follow` ends only by an error; at the deadline its pending watch is abandoned.
    if let Ok(Err(e)) = tokio::time::timeout_at(deadline.into(), following).await {
        return Err(e);
    }
    Ok(report)
}

async fn follow(
    conn: &mut Conn,
    dir: &str,
    mut index: u64,
    watched: &HashSet<String>,
    report: &mut Report,
) -> Result<()> {
    loop {
        let head = arm(conn, dir, Some(index)).await?;
        match outcome(conn, head).await? {
            Outcome::Event(event) => {
                let at = Instant::now();
                report.events += 1;
                if event.action == "expire" && watched.contains(&event.key) {
                    report.expiries.push((event.key, at));
                }
                index = event.modified_index + 1;
            }
            Outcome::Cleared => {
                report.resyncs += 1;
                index = current_index(conn, dir).await? + 1;
            }
        }
    }
}
