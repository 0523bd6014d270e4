//! Declares the `tokio_unstable` cfg, under which tokio's own RNG is seeded by turmoil
//! and a seed replays a run exactly (see the replay test in tests/simulation).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(tokio_unstable)");
}
