#!/usr/bin/env bash
# Runs the etcd-client differential suite (tests/differential): the Rust v3 client from
# crates.io against a fresh etcd 3.4 and a fresh Beacon, answers compared call for call.
#
#   BEACON_BIN=$CARGO_TARGET_DIR/debug/beacon compat/etcd-client/run.sh
#
# etcd-client's build script compiles etcd's protos with prost-build, which runs a
# `protoc`. There is no system protoc here: PROTOC points at protox's protoc-compatible
# command line (pure Rust), installed once into a cache outside the clone. prost-build
# passes it only `--include_imports --include_source_info -o FILE -I DIR FILES...`, all of
# which protox takes, and never asks for `--version`.
#
# CARGO_TARGET_DIR is taken from the environment (CI's, outside the clone), so that what
# this project shares with the main workspace is built once; without it, the main
# workspace's `target/`. etcd is required (BEACON_REQUIRE_ETCD defaults to 1 here: the
# suite is nothing but comparisons with it).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
protox_version=0.9.1
protox_root="${BEACON_PROTOX_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/beacon-protox}"
# The whole run, build included; a cold build of etcd-client and its tree is most of it.
test_deadline_s=1800

fail() {
  echo "etcd-client compat: $*" >&2
  echo "FAIL: etcd-client compat"
  exit 1
}

started=$SECONDS
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"
export BEACON_BIN="${BEACON_BIN:-$CARGO_TARGET_DIR/debug/beacon}"
[[ -x "$BEACON_BIN" ]] || fail "no beacon binary at $BEACON_BIN (cargo build --bin beacon, or set BEACON_BIN)"
if [[ -z "${ETCD_BIN:-}" ]] && command -v etcd >/dev/null 2>&1; then
  ETCD_BIN="$(command -v etcd)"
  export ETCD_BIN
fi
export BEACON_REQUIRE_ETCD="${BEACON_REQUIRE_ETCD:-1}"

# The installed version is recorded in the root's .crates.toml; reinstall if another.
protox="$protox_root/bin/protox"
if [[ ! -x "$protox" ]] || ! grep -q "^\"protox $protox_version " "$protox_root/.crates.toml" 2>/dev/null; then
  echo "== etcd-client compat: installing protox $protox_version into $protox_root"
  cargo install protox --version "=$protox_version" --features bin --locked --root "$protox_root" \
    || fail "cargo install protox failed"
fi
export PROTOC="$protox"

echo "== etcd-client compat: cargo test (target $CARGO_TARGET_DIR, beacon $BEACON_BIN)"
if timeout -k 10 "$test_deadline_s" \
  cargo test --locked --manifest-path "$here/Cargo.toml" -- --test-threads 2; then
  echo "ok: etcd-client compat, $((SECONDS - started)) s"
  echo "PASS: etcd-client compat"
else
  rc=$?
  ((rc != 124)) || fail "not finished within ${test_deadline_s} s"
  fail "cargo test failed"
fi
