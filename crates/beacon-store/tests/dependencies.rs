//! The store stays deterministic by construction: it may not depend on a runtime, a
//! clock or a disk. This test pins its dependency list so adding one is a decision.

#[test]
fn store_depends_only_on_pure_crates() {
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .expect("a [dependencies] table")
        .split("\n[")
        .next()
        .unwrap();
    let names: Vec<&str> = deps
        .lines()
        .filter_map(|l| l.split('=').next())
        .map(str::trim)
        .filter(|n| !n.is_empty() && !n.starts_with('#'))
        .collect();
    // imbl: the persistent tree's maps; no I/O, no clock, no thread, and its only
    // randomness (a sort of its vectors, unused here) has a fixed seed. base64: how a
    // v3 command's bytes are written in the log's JSON, a pure encoding.
    let allowed = [
        "base64",
        "beacon-api",
        "imbl",
        "serde",
        "serde_json",
        "thiserror",
    ];
    for name in &names {
        assert!(allowed.contains(name), "beacon-store must not depend on {name}: keep the store free of I/O, clocks and runtimes");
    }
    assert!(names.contains(&"beacon-api"));
}
