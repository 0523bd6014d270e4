//! turmoil turns on tokio's `test-util`: it must stay out of every production crate's
//! build. beacon-sim's library depends on it (the simulated seams live there), so no
//! production crate may name turmoil or beacon-sim in its manifest.

use std::path::Path;

/// The crates that ship or that the server is built from.
const PRODUCTION_CRATES: [&str; 6] = [
    "beacon-api",
    "beacon-store",
    "beacon-raft",
    "beacon-server",
    "beacon-client",
    "beacon-ctl",
];

#[test]
fn no_production_crate_depends_on_turmoil_or_the_simulation() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crates/");
    for name in PRODUCTION_CRATES {
        let path = crates.join(name).join("Cargo.toml");
        let manifest = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        for forbidden in ["turmoil", "beacon-sim"] {
            let depends = manifest
                .lines()
                .any(|l| l.trim_start().starts_with(forbidden));
            assert!(!depends, "{name}'s manifest names {forbidden}");
        }
    }
}
