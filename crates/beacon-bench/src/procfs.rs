//! What the bench reads about the server process from /proc: resident memory and CPU time.

use anyhow::{Context, Result};

/// /proc reports CPU times in USER_HZ ticks, which the kernel fixes at 100 for user space
/// on every mainstream architecture (it is not the kernel's CONFIG_HZ).
const TICKS_PER_SECOND: f64 = 100.0;

/// `VmRSS` of `pid`, in KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    status_kib(pid, "VmRSS")
}

/// Resident memory of `pid` in KiB, split as the kernel counts it: anonymous (heap,
/// stacks) and file-backed (mapped files: etcd's bbolt database is an mmap, so its
/// touched pages count here, where Beacon's values are read through the page cache and
/// do not count at all). `VmRSS` is their sum plus shared memory.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rss {
    pub total_kib: u64,
    pub anon_kib: u64,
    pub file_kib: u64,
}

impl Rss {
    pub fn of(pid: u32) -> Result<Rss> {
        Ok(Rss {
            total_kib: status_kib(pid, "VmRSS")?,
            anon_kib: status_kib(pid, "RssAnon")?,
            file_kib: status_kib(pid, "RssFile")?,
        })
    }
}

/// A `Name:  N kB` line of /proc/PID/status, in KiB.
fn status_kib(pid: u32, name: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .with_context(|| format!("no {name} in {path}"))
}

/// User plus system CPU time `pid` has used so far (all its threads), in seconds.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name (field 2) is in parentheses and may contain spaces; fields after the
    // last ')' are plain. utime and stime are fields 14 and 15, i.e. 12th and 13th after it.
    let after_name = stat
        .rsplit_once(')')
        .with_context(|| format!("malformed {path}"))?
        .1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> {
        Ok(fields
            .get(i)
            .with_context(|| format!("short {path}"))?
            .parse::<u64>()? as f64)
    };
    Ok((ticks(11)? + ticks(12)?) / TICKS_PER_SECOND)
}

/// CPU seconds used by a process over an interval, when a pid was given.
pub struct CpuMeter {
    pid: Option<u32>,
    start: f64,
}

impl CpuMeter {
    /// Starts measuring `pid` (no-op when `None`).
    pub fn start(pid: Option<u32>) -> Result<CpuMeter> {
        let start = match pid {
            Some(pid) => cpu_seconds(pid)?,
            None => 0.0,
        };
        Ok(CpuMeter { pid, start })
    }

    /// CPU seconds since `start`, or `None` without a pid.
    pub fn stop(&self) -> Result<Option<f64>> {
        match self.pid {
            Some(pid) => Ok(Some(cpu_seconds(pid)? - self.start)),
            None => Ok(None),
        }
    }
}

/// CPU seconds this bench process itself used so far: the load generator shares the
/// machine with the server, and the report shows how much it took.
pub fn own_cpu_seconds() -> Result<f64> {
    cpu_seconds(std::process::id())
}

/// The kernel's count of connections dropped because a listener's accept queue was full
/// (`TcpExt: ListenOverflows` in /proc/net/netstat). System-wide, so a delta over a short
/// phase of one run is attributed to the server under test.
pub fn listen_overflows() -> Result<u64> {
    let netstat =
        std::fs::read_to_string("/proc/net/netstat").context("reading /proc/net/netstat")?;
    // Pairs of lines: "TcpExt: Name1 Name2 ..." then "TcpExt: value1 value2 ...".
    let mut lines = netstat.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (lines.next(), lines.next());
    names
        .zip(values)
        .and_then(|(names, values)| {
            let i = names
                .split_whitespace()
                .position(|n| n == "ListenOverflows")?;
            values.split_whitespace().nth(i)?.parse().ok()
        })
        .context("no TcpExt ListenOverflows in /proc/net/netstat")
}
