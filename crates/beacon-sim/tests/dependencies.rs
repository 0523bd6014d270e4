//! turmoil turns on tokio's `test-util`: it must stay a dev-dependency of this crate
//! and out of every other crate's manifest, so that no build of the server gets it.

use std::path::Path;

#[test]
fn turmoil_is_only_a_dev_dependency_of_the_simulation() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crates/");
    for entry in std::fs::read_dir(crates).unwrap() {
        let dir = entry.unwrap().path();
        let Ok(manifest) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let checked = if name == "beacon-sim" {
            manifest
                .split("[dev-dependencies]")
                .next()
                .unwrap_or_default()
        } else {
            manifest.as_str()
        };
        let depends = checked
            .lines()
            .any(|l| l.trim_start().starts_with("turmoil"));
        assert!(
            !depends,
            "{name}'s manifest names turmoil outside beacon-sim's dev-dependencies"
        );
    }
}
