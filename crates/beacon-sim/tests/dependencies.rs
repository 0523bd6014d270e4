//! turmoil turns on tokio's `test-util`: only beacon-sim may depend on it, and
//! beacon-sim stays out of the workspace's default members, so that no build of the
//! server gets the feature.

use std::path::Path;

#[test]
fn turmoil_stays_in_the_simulation() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crates/");
    for entry in std::fs::read_dir(crates).unwrap() {
        let dir = entry.unwrap().path();
        let Ok(manifest) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if name == "beacon-sim" {
            continue;
        }
        // A dependency line names the crate first; comments may mention it.
        let depends = manifest.lines().map(str::trim_start).any(|l| {
            !l.starts_with('#') && (l.starts_with("turmoil") || l.starts_with("beacon-sim"))
        });
        assert!(
            !depends,
            "{name}'s manifest names turmoil or beacon-sim: only the simulation may depend on them"
        );
    }
    let workspace = std::fs::read_to_string(crates.parent().unwrap().join("Cargo.toml")).unwrap();
    let defaults = workspace
        .split("default-members")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .expect("the workspace lists its default members");
    assert!(
        !defaults.contains("beacon-sim"),
        "beacon-sim must not be a default member (see the workspace Cargo.toml)"
    );
}
