//! Counts what a server logged during a measurement: how many snapshots it wrote and how
//! many times it purged its log while the load ran, so that a latency figure says whether
//! the window crossed them (issue 15: writes stalled behind both).
//!
//! The servers' logs are files that bench/run and bench/cluster capture; this module notes
//! each file's length when the measured window opens and counts the matching lines
//! appended until it closes. What to match comes from the scripts (`--log-count
//! NAME=TEXT`), which know what each server writes.

use std::collections::BTreeMap;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// A log read beyond this many bytes within one window is refused: both servers write a few
/// lines per snapshot at their default level, so this much means a debug log that would make
/// the count itself a load on the machine.
const WINDOW_BYTES_MAX: u64 = 64 << 20;

/// One thing to count: lines that contain `text` are counted under `name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogCount {
    pub name: String,
    pub text: String,
}

/// Parses `NAME=TEXT` (the text may contain `=` and spaces; the name may not be empty).
pub fn parse_log_count(arg: &str) -> Result<LogCount, String> {
    match arg.split_once('=') {
        Some((name, text)) if !name.is_empty() && !text.is_empty() => Ok(LogCount {
            name: name.to_string(),
            text: text.to_string(),
        }),
        _ => Err(format!("expected NAME=TEXT, got {arg:?}")),
    }
}

/// The logs' lengths when the window opened.
pub struct LogWindow {
    logs: Vec<(PathBuf, u64)>,
}

impl LogWindow {
    /// Opens the window: notes where each log ends now.
    pub fn open(paths: &[PathBuf]) -> Result<LogWindow> {
        let logs = paths
            .iter()
            .map(|path| {
                let len = std::fs::metadata(path)
                    .with_context(|| format!("reading {}", path.display()))?
                    .len();
                Ok((path.clone(), len))
            })
            .collect::<Result<_>>()?;
        Ok(LogWindow { logs })
    }

    /// Closes the window: the lines appended since it opened, counted per name (over every
    /// log, so for a cluster it is the sum over its members), as a JSON object.
    pub fn close(&self, counts: &[LogCount]) -> Result<Value> {
        let mut totals: BTreeMap<&str, u64> = counts.iter().map(|c| (&*c.name, 0)).collect();
        for (path, start) in &self.logs {
            let appended = read_from(path, *start)?;
            for line in appended.lines() {
                for count in counts {
                    if line.contains(&count.text) {
                        *totals.entry(&count.name).or_default() += 1;
                    }
                }
            }
        }
        Ok(json!(totals))
    }
}

/// What `path` holds from byte `start` to its current end (lossy: a log's bytes need not
/// all be UTF-8, the texts counted are).
fn read_from(path: &PathBuf, start: u64) -> Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let len = file
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if len < start {
        bail!("{} shrank during the measurement", path.display());
    }
    if len - start > WINDOW_BYTES_MAX {
        bail!(
            "{} grew by {} bytes during the measurement (more than {WINDOW_BYTES_MAX}); \
             is the server logging at debug level?",
            path.display(),
            len - start
        );
    }
    file.seek(SeekFrom::Start(start))
        .with_context(|| format!("reading {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(len - start)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn counts() -> Vec<LogCount> {
        ["snapshots=wrote snapshot", "purges=purged raft log"]
            .iter()
            .map(|a| parse_log_count(a).unwrap())
            .collect()
    }

    #[test]
    fn counts_only_what_was_appended_in_the_window() {
        let dir = std::env::temp_dir().join(format!("beacon-bench-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("server.log");
        std::fs::write(
            &path,
            "INFO wrote snapshot path=a\nINFO purged raft log upto=5\n",
        )
        .unwrap();
        let window = LogWindow::open(std::slice::from_ref(&path)).unwrap();
        let mut log = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        writeln!(log, "INFO wrote snapshot path=b").unwrap();
        writeln!(log, "INFO openraft: purge log, last_purged: None").unwrap();
        writeln!(log, "INFO purged raft log from=0 upto=9").unwrap();
        writeln!(log, "INFO wrote snapshot path=c").unwrap();
        let seen = window.close(&counts()).unwrap();
        assert_eq!(seen, json!({"snapshots": 2, "purges": 1}));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_count_needs_a_name_and_a_text() {
        assert_eq!(
            parse_log_count("purges=compacted raft log at").unwrap(),
            LogCount {
                name: "purges".into(),
                text: "compacted raft log at".into()
            }
        );
        assert!(parse_log_count("=x").is_err());
        assert!(parse_log_count("x=").is_err());
        assert!(parse_log_count("x").is_err());
    }

    #[test]
    fn a_missing_log_is_an_error() {
        assert!(LogWindow::open(&[PathBuf::from("/nonexistent/beacon-bench.log")]).is_err());
    }
}
