//! A process's own figures from Linux's `/proc/<pid>/status`: the memory it holds and
//! whether it still runs, for tests that bound what a server may grow by.

/// One field of `/proc/<pid>/status` (`"VmRSS:"`, `"State:"`), trimmed; `None` once the
/// process is gone.
pub fn proc_status_field(pid: u32, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field).map(|v| v.trim().to_string()))
}

/// The resident memory of process `pid`, in bytes (`VmRSS`, which the kernel gives in
/// KiB). Panics when the process is gone: a test that measures it expects it alive.
pub fn rss_bytes(pid: u32) -> u64 {
    let kib: u64 = proc_status_field(pid, "VmRSS:")
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status: is the process gone?"));
    kib << 10
}

/// Whether `pid` still runs: it exists and is not a zombie waiting to be reaped.
pub fn is_running(pid: u32) -> bool {
    proc_status_field(pid, "State:").is_some_and(|state| !state.starts_with('Z'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_and_runs() {
        let me = std::process::id();
        assert!(rss_bytes(me) > 0);
        assert!(is_running(me));
    }
}
