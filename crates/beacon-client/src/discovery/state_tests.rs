use std::time::{Duration, Instant};

use beacon_api::{Action, Event, NodeExtern};

use super::{Change, DiscoveryState};
use crate::discovery::instance::InstanceInfo;

const GRACE: Duration = Duration::from_secs(10);

fn value(port: u16) -> String {
    InstanceInfo::new("127.0.0.1", port).to_json()
}

fn leaf(key: &str, port: u16) -> NodeExtern {
    NodeExtern {
        key: key.into(),
        value: Some(value(port).into()),
        ..NodeExtern::default()
    }
}

fn dir(key: &str, nodes: Vec<NodeExtern>) -> NodeExtern {
    NodeExtern {
        key: key.into(),
        dir: true,
        nodes: nodes.into(),
        ..NodeExtern::default()
    }
}

fn event(action: Action, node: NodeExtern) -> Event {
    Event {
        action,
        node: Some(node),
        prev_node: None,
        etcd_index: 0,
        refresh: false,
    }
}

fn keys_of(changes: &[Change]) -> Vec<String> {
    changes
        .iter()
        .map(|c| match c {
            Change::Insert(i) => format!("+{}", i.key),
            Change::Remove(k) => format!("-{k}"),
        })
        .collect()
}

fn listing(ports: &[(&str, u16)]) -> NodeExtern {
    dir(
        "/services/api",
        vec![dir(
            "/services/api/dc1",
            ports.iter().map(|(k, p)| leaf(k, *p)).collect(),
        )],
    )
}

fn state_with(ports: &[(&str, u16)], now: Instant) -> DiscoveryState {
    let mut state = DiscoveryState::new(0.5, GRACE);
    let changes = state.relist(Some(&listing(ports)), now);
    assert_eq!(changes.len(), ports.len());
    state
}

const A: &str = "/services/api/dc1/a";
const B: &str = "/services/api/dc1/b";
const C: &str = "/services/api/dc1/c";
const D: &str = "/services/api/dc1/d";

#[test]
fn a_listing_publishes_every_leaf_at_any_depth_and_skips_other_values() {
    let now = Instant::now();
    let mut state = DiscoveryState::new(0.5, GRACE);
    let mut root = listing(&[(A, 1), (B, 2)]);
    root.nodes.push(NodeExtern {
        key: "/services/api/README".into(),
        value: Some("not an instance".into()),
        ..NodeExtern::default()
    });
    let changes = state.relist(Some(&root), now);
    assert_eq!(keys_of(&changes), vec![format!("+{A}"), format!("+{B}")]);
    assert!(state.relist(Some(&root), now).is_empty(), "nothing new");
}

#[test]
fn events_insert_replace_and_remove_without_repeats() {
    let now = Instant::now();
    let mut state = state_with(&[(A, 1), (B, 2), (C, 3)], now);
    assert_eq!(
        keys_of(&state.apply(&event(Action::Set, leaf(D, 4)), now)),
        vec![format!("+{D}")]
    );
    // The same value again (a plain set by a re-registering instance) is not news.
    assert!(state.apply(&event(Action::Set, leaf(D, 4)), now).is_empty());
    // A new port is.
    let moved = state.apply(&event(Action::CompareAndSwap, leaf(D, 5)), now);
    assert!(matches!(&moved[..], [Change::Insert(i)] if i.info.port == "5"));
    assert_eq!(
        keys_of(&state.apply(&event(Action::Expire, leaf(A, 1)), now)),
        vec![format!("-{A}")]
    );
    // A removal of a key the consumer does not hold emits nothing.
    assert!(state
        .apply(&event(Action::Delete, leaf(A, 1)), now)
        .is_empty());
}

#[test]
fn a_key_overwritten_with_a_non_instance_value_is_removed() {
    let now = Instant::now();
    let mut state = state_with(&[(A, 1), (B, 2), (C, 3)], now);
    let mut garbage = leaf(A, 1);
    garbage.value = Some("{}".into());
    assert_eq!(
        keys_of(&state.apply(&event(Action::Set, garbage), now)),
        vec![format!("-{A}")]
    );
}

#[test]
fn a_relist_after_a_history_gap_emits_exactly_what_was_missed() {
    let now = Instant::now();
    let mut state = state_with(&[(A, 1), (B, 2), (C, 3), (D, 4)], now);
    // While the watch was behind: B moved, D expired, E registered.
    let e = "/services/api/dc2/e";
    let mut root = listing(&[(A, 1), (B, 22), (C, 3)]);
    root.nodes.push(dir("/services/api/dc2", vec![leaf(e, 5)]));
    let changes = state.relist(Some(&root), now);
    assert_eq!(
        keys_of(&changes),
        vec![format!("+{B}"), format!("+{e}"), format!("-{D}")]
    );
    let published: Vec<String> = state.published().map(|i| i.key).collect();
    assert_eq!(published, vec![A, B, C, e]);
}

#[test]
fn a_recursive_delete_of_a_directory_is_held_for_the_grace_period() {
    let now = Instant::now();
    let mut state = state_with(&[(A, 1), (B, 2), (C, 3)], now);
    let changes = state.apply(
        &event(Action::Delete, dir("/services/api/dc1", Vec::new())),
        now,
    );
    assert!(
        changes.is_empty(),
        "everything at once is held: {changes:?}"
    );
    assert_eq!(state.held_count(), 3);
    assert_eq!(state.published().count(), 3);
    assert_eq!(state.next_deadline(), Some(now + GRACE));
    assert!(state.tick(now + GRACE / 2).is_empty());
    let changes = state.tick(now + GRACE);
    assert_eq!(
        keys_of(&changes),
        vec![format!("-{A}"), format!("-{B}"), format!("-{C}")]
    );
    assert_eq!(state.published().count(), 0);
    assert_eq!(state.next_deadline(), None);
}

#[test]
fn instances_that_return_within_the_grace_period_are_never_removed() {
    let now = Instant::now();
    let mut state = state_with(&[(A, 1), (B, 2), (C, 3)], now);
    // The registry was down and every TTL lapsed: three expiries in a row.
    let first = state.apply(&event(Action::Expire, leaf(A, 1)), now);
    assert_eq!(keys_of(&first), vec![format!("-{A}")], "a third may go");
    assert!(state
        .apply(&event(Action::Expire, leaf(B, 2)), now)
        .is_empty());
    assert!(state
        .apply(&event(Action::Expire, leaf(C, 3)), now)
        .is_empty());
    assert_eq!(state.held_count(), 2);
    // The instances register again before the grace period ends.
    let later = now + GRACE / 2;
    assert!(state
        .apply(&event(Action::Set, leaf(B, 2)), later)
        .is_empty());
    let back = state.apply(&event(Action::Set, leaf(A, 1)), later);
    assert_eq!(keys_of(&back), vec![format!("+{A}")]);
    assert!(state
        .apply(&event(Action::Set, leaf(C, 3)), later)
        .is_empty());
    assert_eq!(state.held_count(), 0);
    assert!(state.tick(now + GRACE * 2).is_empty());
    assert_eq!(state.published().count(), 3);
}

#[test]
fn removals_spread_over_more_than_the_grace_period_are_not_held() {
    let now = Instant::now();
    let mut state = state_with(&[(A, 1), (B, 2), (C, 3), (D, 4)], now);
    assert_eq!(
        state.apply(&event(Action::Expire, leaf(A, 1)), now).len(),
        1
    );
    assert_eq!(
        state.apply(&event(Action::Expire, leaf(B, 2)), now).len(),
        1
    );
    let later = now + GRACE;
    assert_eq!(
        state.apply(&event(Action::Expire, leaf(C, 3)), later).len(),
        1
    );
}

#[test]
fn the_last_instance_is_removed_only_after_the_grace_period() {
    let now = Instant::now();
    let mut state = state_with(&[(A, 1)], now);
    assert!(state
        .apply(&event(Action::Expire, leaf(A, 1)), now)
        .is_empty());
    assert_eq!(state.tick(now + GRACE).len(), 1);
}

#[test]
fn a_share_of_one_never_holds() {
    let now = Instant::now();
    let mut state = DiscoveryState::new(1.0, GRACE);
    state.relist(Some(&listing(&[(A, 1)])), now);
    assert_eq!(state.relist(None, now).len(), 1);
}

#[test]
fn v3_listings_and_events_make_the_same_changes() {
    use super::KeyChange;
    let t0 = Instant::now();
    let mut s = DiscoveryState::new(1.0, GRACE);
    let (a, b) = (value(1), value(2));
    let listed = s.relist_pairs(
        [
            (&b"/services/web/dc1/a"[..], a.as_bytes()),
            (&b"/services/web/dc1/b"[..], b.as_bytes()),
            // Neither a UTF-8 key nor an instance value: not instances.
            (&b"/services/web/dc1/\xff"[..], a.as_bytes()),
            (&b"/services/web/dc1/junk"[..], &b"not json"[..]),
        ],
        t0,
    );
    assert_eq!(listed.len(), 2, "{listed:?}");
    let moved = value(3);
    let changes = s.apply_keys(
        [
            KeyChange::Put {
                key: b"/services/web/dc1/a",
                value: moved.as_bytes(),
            },
            KeyChange::Delete {
                key: b"/services/web/dc1/b",
            },
            // A key overwritten with something that is no instance is gone.
            KeyChange::Put {
                key: b"/services/web/dc1/junk",
                value: b"still not json",
            },
        ],
        t0,
    );
    assert_eq!(
        changes,
        [
            Change::Insert(super::Instance {
                key: "/services/web/dc1/a".into(),
                info: InstanceInfo::new("127.0.0.1", 3),
            }),
            Change::Remove("/services/web/dc1/b".into()),
        ]
    );
    // A re-list that finds the same set publishes nothing.
    assert!(s
        .relist_pairs([(&b"/services/web/dc1/a"[..], moved.as_bytes())], t0)
        .is_empty());
}
