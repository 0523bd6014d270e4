//! One fan-out watcher: arms a watch, says so, waits for the event, says when it came,
//! and arms again from the event's index + 1, for a fixed number of rounds.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use tokio::sync::mpsc::UnboundedSender;

use crate::client::Conn;
use crate::watch::{arm, outcome, Outcome};

/// How long a watcher waits for a round's event before the run fails: generous, since
/// 10,000 watchers may be woken one after another on a busy machine.
const EVENT_TIMEOUT: Duration = Duration::from_secs(120);

/// What a watcher tells the coordinator.
pub enum Note {
    /// Its watch for this round is registered on the server.
    Armed,
    /// It received the round's event at this time.
    Arrived(Instant),
}

/// Runs `rounds` watch/event cycles on `dir`. The first watch has no `waitIndex` (a plain
/// watch, the common idle case); later ones continue from the previous event.
pub async fn run(
    mut conn: Conn,
    dir: String,
    rounds: usize,
    notes: UnboundedSender<Note>,
) -> Result<()> {
    let mut wait_index = None;
    for _ in 0..rounds {
        let head = tokio::time::timeout(EVENT_TIMEOUT, arm(&mut conn, &dir, wait_index)).await??;
        let _ = notes.send(Note::Armed);
        let event = match tokio::time::timeout(EVENT_TIMEOUT, outcome(&mut conn, head)).await?? {
            Outcome::Event(event) => event,
            Outcome::Cleared => bail!("fan-out watcher fell out of the event history"),
        };
        let _ = notes.send(Note::Arrived(Instant::now()));
        wait_index = Some(event.modified_index + 1);
    }
    Ok(())
}
