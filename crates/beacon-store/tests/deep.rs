//! Keys thousands of levels deep: etcd accepts them, so every walk of the tree (reads,
//! JSON, deletes, expiry, snapshots, dropping) must work without recursing per level.
//! Each test runs on a thread with a small stack, so that a recursion fails at once.

use beacon_api::{ErrorCode, Event};
use beacon_store::{Applied, Command, KeysRequest, Method, Store};

const T0: i64 = 1_795_494_600_000_000_000; // 2026-11-24T04:30:00Z
const SEC: i64 = 1_000_000_000;

/// A stack far smaller than any recursion over these depths needs.
const SMALL_STACK_BYTES: usize = 256 << 10;

/// Deep enough that a walk recursing per level overflows `SMALL_STACK_BYTES` many times
/// over, small enough that the answers, which name every level's full key, stay small.
const DEPTH_SHOWN: usize = 3_000;

/// For paths that never show every level's key: only linear work is done per level.
const DEPTH_UNSHOWN: usize = 100_000;

fn on_small_stack(test: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(SMALL_STACK_BYTES)
        .spawn(test)
        .expect("spawn test thread")
        .join()
        .expect("test thread panicked");
}

fn deep_key(root: &str, depth: usize) -> String {
    let mut key = String::with_capacity(root.len() + 2 * depth);
    key.push_str(root);
    for _ in 0..depth {
        key.push_str("/a");
    }
    key
}

fn run(store: &mut Store, req: KeysRequest) -> Result<Event, beacon_api::EtcdError> {
    match store.apply(&Command::Keys(req)) {
        Applied::Keys(r) => r,
        Applied::Synced | Applied::V3(_) | Applied::Auth(_) => unreachable!(),
    }
}

fn set(store: &mut Store, key: &str, value: &str, expiration_ns: Option<i64>) {
    let mut r = KeysRequest::new(Method::Put, key, T0);
    r.value = value.into();
    r.expiration_ns = expiration_ns;
    run(store, r).expect("set succeeds");
}

/// The nesting depth of a JSON line and the deepest key in it, read without recursion.
fn json_depth_and_last_key(line: &str) -> (usize, usize) {
    let (mut depth, mut max) = (0usize, 0usize);
    for b in line.bytes() {
        match b {
            b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' => depth -= 1,
            _ => {}
        }
    }
    let last_key = line
        .rsplit("\"key\":\"")
        .next()
        .and_then(|rest| rest.split('"').next())
        .map_or(0, str::len);
    (max, last_key)
}

#[test]
fn recursive_get_of_a_deep_key_lists_every_level() {
    on_small_stack(|| {
        let mut s = Store::new();
        let key = deep_key("/d", DEPTH_SHOWN);
        set(&mut s, &key, "deep", None);
        let event = s.get("/d", true, false, T0).expect("get succeeds");
        let line = event.to_json_line();
        // "/d" lists DEPTH_SHOWN levels below it, each in its own "nodes" array.
        assert_eq!(json_depth_and_last_key(&line), (DEPTH_SHOWN, key.len()));
        assert!(line.contains("\"value\":\"deep\""));
        let cloned = event.clone();
        assert_eq!(cloned, event);
        assert_eq!(format!("{cloned:?}").len(), format!("{event:?}").len());
        // Through serde too, as a follower's forwarded quorum read travels.
        let wire = serde_json::to_vec(&Applied::Keys(Ok(event.clone()))).unwrap();
        let Applied::Keys(Ok(mut back)) = serde_json::from_slice(&wire).unwrap() else {
            panic!("the event reads back as an event");
        };
        // The etcd index travels beside the event (`X-Etcd-Index`), not in it.
        back.etcd_index = event.etcd_index;
        assert_eq!(back, event);
    });
}

#[test]
fn quorum_get_and_non_recursive_get_of_a_deep_key() {
    on_small_stack(|| {
        let mut s = Store::new();
        let key = deep_key("/d", DEPTH_SHOWN);
        set(&mut s, &key, "deep", None);
        let mut q = KeysRequest::new(Method::QuorumGet, "/d", T0);
        q.recursive = true;
        let event = run(&mut s, q).expect("quorum get succeeds");
        assert_eq!(
            json_depth_and_last_key(&event.to_json_line()),
            (DEPTH_SHOWN, key.len())
        );
        let one = s.get(&key, false, false, T0).unwrap();
        assert!(one.to_json_line().contains("\"value\":\"deep\""));
    });
}

#[test]
fn a_deep_tree_is_created_deleted_and_dropped_without_recursion() {
    on_small_stack(|| {
        let mut s = Store::new();
        let key = deep_key("/d", DEPTH_UNSHOWN);
        set(&mut s, &key, "deep", None);
        set(&mut s, &key, "again", None);
        let one = s.get(&key, false, false, T0).unwrap();
        assert!(one.to_json_line().contains("\"value\":\"again\""));
        // Deleting the top walks every level (watchers and TTLs below it).
        let mut del = KeysRequest::new(Method::Delete, "/d", T0);
        del.recursive = true;
        run(&mut s, del).expect("recursive delete succeeds");
        let gone = s.get("/d", false, false, T0).unwrap_err();
        assert_eq!(gone.code, ErrorCode::KeyNotFound);
        // And a store that still holds such a tree is dropped.
        set(&mut s, &key, "kept", None);
        drop(s);
    });
}

#[test]
fn a_deep_ttl_key_expires() {
    on_small_stack(|| {
        let mut s = Store::new();
        let key = deep_key("/d", DEPTH_UNSHOWN);
        set(&mut s, &key, "deep", Some(T0 + SEC));
        let mut dir = KeysRequest::new(Method::Put, "/d", T0);
        dir.dir = true;
        dir.prev_exist = Some(true);
        dir.expiration_ns = Some(T0 + SEC);
        run(&mut s, dir).expect("the top directory gets a TTL");
        s.apply(&Command::Sync { time_ns: T0 + SEC });
        assert!(!s.has_ttl_keys());
        assert_eq!(
            s.get("/d", false, false, T0).unwrap_err().code,
            ErrorCode::KeyNotFound
        );
    });
}

#[test]
fn a_deep_tree_survives_a_snapshot() {
    on_small_stack(|| {
        let mut s = Store::new();
        let key = deep_key("/d", DEPTH_SHOWN);
        set(&mut s, &key, "deep", Some(T0 + SEC));
        let bytes = s.save();
        let mut back = Store::new();
        back.recover(&bytes).expect("the snapshot loads");
        assert_eq!(back.save(), bytes);
        assert!(back.has_ttl_keys());
        assert_eq!(
            back.get("/d", true, false, T0).unwrap().to_json_line(),
            s.get("/d", true, false, T0).unwrap().to_json_line()
        );
        // Recovering again replaces (drops) the deep tree just loaded.
        back.recover(&bytes).expect("the snapshot loads twice");
    });
}

#[test]
fn a_view_of_a_deep_tree_saves_what_it_saw_and_drops_without_recursion() {
    on_small_stack(|| {
        let mut s = Store::new();
        let key = deep_key("/d", DEPTH_SHOWN);
        set(&mut s, &key, "deep", Some(T0 + SEC));
        let bytes = s.save();
        let view = s.snapshot_view();
        // Changing the deep key copies every directory on its path; deleting the top
        // then drops the store's copy while the view keeps the original.
        set(&mut s, &key, "changed", None);
        let mut del = KeysRequest::new(Method::Delete, "/d", T0);
        del.recursive = true;
        run(&mut s, del).expect("recursive delete succeeds");
        assert_eq!(view.save(), bytes);
        assert_eq!(
            s.get("/d", false, false, T0).unwrap_err().code,
            ErrorCode::KeyNotFound
        );
        // The view alone holds the deep tree now.
        drop(view);
    });
}

#[test]
fn views_and_stores_of_a_deep_tree_drop_in_any_order() {
    on_small_stack(|| {
        let key = deep_key("/d", DEPTH_UNSHOWN);
        let halfway = format!("{}/other", deep_key("/d", DEPTH_UNSHOWN / 2));
        for (changed, view_dropped_first) in [
            (None, true),
            (None, false),
            (Some(&key), true),
            (Some(&key), false),
            (Some(&halfway), true),
            (Some(&halfway), false),
        ] {
            let mut s = Store::new();
            set(&mut s, &key, "deep", None);
            let view = s.snapshot_view();
            // A change below the whole path (or halfway down it) copies the directories
            // above it: the two trees then share only what lies below the copies.
            if let Some(changed) = changed {
                set(&mut s, changed, "changed", None);
            }
            if view_dropped_first {
                drop(view);
                drop(s);
            } else {
                drop(s);
                drop(view);
            }
        }
    });
}
