//! One registered service instance: it refreshes its TTL key on a fixed period over its
//! own connection, re-registers if the key was lost, and (for the chosen few) stops
//! refreshing at a known time so that its key expires.

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::client::Conn;
use crate::histogram::Histogram;

/// etcd's "Key not found": the key expired before this refresh arrived.
const KEY_NOT_FOUND: u16 = 404;

/// The schedule and identity of one instance.
pub struct Plan {
    pub path: String,
    pub ttl_seconds: u64,
    pub refresh: Duration,
    /// First refresh time; instances are spread evenly over one period.
    pub first: Instant,
    /// Refreshes sent from here on are counted.
    pub start: Instant,
    pub end: Instant,
    /// When set, the instance sends no refresh at or after this time.
    pub stop_at: Option<Instant>,
    /// The registration form (value and TTL), resent if the key was lost.
    pub register_form: String,
}

/// What an instance did in the measured window.
#[derive(Default)]
pub struct Report {
    pub latencies: Histogram,
    /// Refreshes that found the key gone (it expired although the instance was alive).
    pub lost: u64,
    pub errors: u64,
    /// Send time of the last successful refresh (for an instance that stops).
    pub last_refresh_sent: Option<Instant>,
}

/// Registers the instance again after its key was lost.
async fn register(conn: &mut Conn, plan: &Plan) -> Result<()> {
    let reply = conn.put(&plan.path, &plan.register_form).await?;
    anyhow::ensure!(
        reply.status < 300,
        "register {} answered {}",
        plan.path,
        reply.status
    );
    Ok(())
}

/// Refreshes on schedule until `end` (or `stop_at`).
pub async fn run(mut conn: Conn, plan: Plan) -> Result<Report> {
    let refresh_form = format!("refresh=true&prevExist=true&ttl={}", plan.ttl_seconds);
    let mut report = Report::default();
    let mut next = plan.first;
    while next < plan.end {
        if plan.stop_at.is_some_and(|stop| next >= stop) {
            break;
        }
        tokio::time::sleep_until(next.into()).await;
        let sent = Instant::now();
        let reply = conn.put(&plan.path, &refresh_form).await;
        let answered = Instant::now();
        let counted = sent >= plan.start && answered <= plan.end;
        match reply {
            Ok(reply) if reply.status < 300 => {
                if counted {
                    report.latencies.record(answered - sent);
                }
                report.last_refresh_sent = Some(sent);
            }
            Ok(reply) if reply.status == KEY_NOT_FOUND => {
                report.lost += u64::from(counted);
                register(&mut conn, &plan).await?;
            }
            _ => report.errors += u64::from(counted),
        }
        // A late answer delays the next refresh but never triggers a burst to catch up:
        // one request at a time per instance, like a real client's timer.
        next = (next + plan.refresh).max(Instant::now());
    }
    Ok(report)
}
