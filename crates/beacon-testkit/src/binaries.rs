//! Where the `beacon` and `etcd` executables are.

use std::path::PathBuf;

/// Default location of the reference etcd (Debian's `etcd-server` package).
const ETCD_DEFAULT: &str = "/usr/bin/etcd";

/// The `beacon` binary: `$BEACON_BIN`, else `beacon` in the cargo target profile dir that
/// holds the running test executable (`target/debug/deps/x-123` -> `target/debug/beacon`).
pub fn beacon_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("BEACON_BIN") {
        return PathBuf::from(path);
    }
    workspace_bin("beacon")
}

/// A binary of this workspace by name, from the cargo target profile dir that holds the
/// running test executable (`cargo test --workspace` builds every binary).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe
        .parent()
        .expect("executable has a parent dir")
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join(name)
}

/// The `etcd` binary: `$ETCD_BIN`, else `/usr/bin/etcd`.
pub fn etcd_bin() -> PathBuf {
    std::env::var_os("ETCD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(ETCD_DEFAULT))
}

/// Whether the reference etcd binary exists.
pub fn etcd_available() -> bool {
    etcd_bin().is_file()
}

/// Whether a test comparing with etcd can run: etcd is installed, or the test should
/// skip (it says so), unless `BEACON_REQUIRE_ETCD=1` (as CI sets it) makes a missing
/// etcd a failure.
pub fn etcd_or_skip() -> bool {
    if etcd_available() {
        return true;
    }
    let required = std::env::var("BEACON_REQUIRE_ETCD").is_ok_and(|v| v == "1");
    assert!(!required, "BEACON_REQUIRE_ETCD=1 but etcd is missing");
    eprintln!("skipping: no etcd");
    false
}

/// Fails, listing each pair that differs, unless etcd's answers (`want`) and Beacon's
/// (`got`) to the same script are equal, one for one.
pub fn assert_same_answers(want: &[String], got: &[String]) {
    let differences: Vec<String> = want
        .iter()
        .zip(got)
        .enumerate()
        .filter(|(_, (w, g))| w != g)
        .map(|(i, (w, g))| format!("answer {i}:\n  etcd:   {w}\n  beacon: {g}"))
        .collect();
    assert!(
        differences.is_empty() && want.len() == got.len(),
        "{} of {} answers differ ({} from Beacon):\n{}",
        differences.len(),
        want.len(),
        got.len(),
        differences.join("\n")
    );
}
