//! The store's behaviour through its public API, checked against etcd's exact JSON.

use std::sync::{Arc, Mutex};

use beacon_api::{ErrorCode, Event};
use beacon_store::{Applied, Command, KeysRequest, Method, Store, WatchSink};

const T0: i64 = 1_795_494_600_000_000_000; // 2026-11-24T04:30:00Z
const SEC: i64 = 1_000_000_000;

fn put(path: &str) -> KeysRequest {
    KeysRequest::new(Method::Put, path, T0)
}

fn run(store: &mut Store, req: KeysRequest) -> Result<Event, beacon_api::EtcdError> {
    match store.apply(&Command::Keys(req)) {
        Applied::Keys(r) => r,
        Applied::Synced | Applied::V3(_) | Applied::Auth(_) => unreachable!(),
    }
}

fn ok(store: &mut Store, req: KeysRequest) -> String {
    run(store, req)
        .expect("request succeeds")
        .to_json_line()
        .trim_end()
        .to_string()
}

fn err(store: &mut Store, req: KeysRequest) -> String {
    run(store, req)
        .expect_err("request fails")
        .to_json_line()
        .trim_end()
        .to_string()
}

fn set(store: &mut Store, path: &str, value: &str) -> String {
    let mut r = put(path);
    r.value = value.into();
    ok(store, r)
}

#[test]
fn set_get_and_prev_node() {
    let mut s = Store::new();
    assert_eq!(
        set(&mut s, "/foo", "bar"),
        r#"{"action":"set","node":{"key":"/foo","value":"bar","modifiedIndex":1,"createdIndex":1}}"#
    );
    assert_eq!(
        set(&mut s, "/foo", "baz"),
        r#"{"action":"set","node":{"key":"/foo","value":"baz","modifiedIndex":2,"createdIndex":2},"prevNode":{"key":"/foo","value":"bar","modifiedIndex":1,"createdIndex":1}}"#
    );
    let got = s.get("/foo", false, false, T0).unwrap();
    assert_eq!(got.etcd_index, 2);
    assert_eq!(
        got.to_json_line().trim_end(),
        r#"{"action":"get","node":{"key":"/foo","value":"baz","modifiedIndex":2,"createdIndex":2}}"#
    );
    let missing = s.get("/nope/deeper", false, false, T0).unwrap_err();
    assert_eq!(
        missing.to_json_line().trim_end(),
        r#"{"errorCode":100,"message":"Key not found","cause":"/nope","index":2}"#
    );
}

#[test]
fn directories_list_hidden_and_nested() {
    let mut s = Store::new();
    set(&mut s, "/dir/a", "1");
    set(&mut s, "/dir/_hidden", "h");
    set(&mut s, "/dir/sub/b", "2");
    let listing = s.get("/dir", false, true, T0).unwrap().to_json_line();
    assert_eq!(
        listing.trim_end(),
        r#"{"action":"get","node":{"key":"/dir","dir":true,"nodes":[{"key":"/dir/a","value":"1","modifiedIndex":1,"createdIndex":1},{"key":"/dir/sub","dir":true,"modifiedIndex":3,"createdIndex":3}],"modifiedIndex":1,"createdIndex":1}}"#
    );
    let deep = s.get("/", true, true, T0).unwrap().to_json_line();
    assert!(
        deep.starts_with(r#"{"action":"get","node":{"dir":true,"nodes":[{"key":"/dir""#),
        "{deep}"
    );
    assert!(deep.contains(r#""key":"/dir/sub/b","value":"2""#));
    // A hidden key is still readable by its own name.
    assert!(s.get("/dir/_hidden", false, false, T0).is_ok());
    // A file in the middle of a path is not a directory.
    assert_eq!(
        s.get("/dir/a/x", false, false, T0).unwrap_err().code,
        ErrorCode::NotDir
    );
    let mut over_file = put("/dir/a/x");
    over_file.value = "v".into();
    assert_eq!(
        err(&mut s, over_file),
        r#"{"errorCode":104,"message":"Not a directory","cause":"/dir/a","index":3}"#
    );
    // A set on a directory is refused.
    assert_eq!(
        set_err(&mut s, "/dir"),
        r#"{"errorCode":102,"message":"Not a file","cause":"/dir","index":3}"#
    );
}

fn set_err(s: &mut Store, path: &str) -> String {
    let mut r = put(path);
    r.value = "x".into();
    err(s, r)
}

#[test]
fn create_update_and_compare() {
    let mut s = Store::new();
    let mut create = put("/k");
    create.prev_exist = Some(false);
    create.value = "v1".into();
    assert_eq!(
        ok(&mut s, create.clone()),
        r#"{"action":"create","node":{"key":"/k","value":"v1","modifiedIndex":1,"createdIndex":1}}"#
    );
    assert_eq!(
        err(&mut s, create),
        r#"{"errorCode":105,"message":"Key already exists","cause":"/k","index":1}"#
    );
    let mut update = put("/k");
    update.prev_exist = Some(true);
    update.value = "v2".into();
    assert_eq!(
        ok(&mut s, update),
        r#"{"action":"update","node":{"key":"/k","value":"v2","modifiedIndex":2,"createdIndex":1},"prevNode":{"key":"/k","value":"v1","modifiedIndex":1,"createdIndex":1}}"#
    );
    let mut cas = put("/k");
    cas.prev_value = "wrong".into();
    cas.prev_index = 9;
    cas.value = "v3".into();
    assert_eq!(
        err(&mut s, cas.clone()),
        r#"{"errorCode":101,"message":"Compare failed","cause":"[wrong != v2] [9 != 2]","index":2}"#
    );
    cas.prev_value = "v2".into();
    cas.prev_index = 0;
    assert_eq!(
        ok(&mut s, cas),
        r#"{"action":"compareAndSwap","node":{"key":"/k","value":"v3","modifiedIndex":3,"createdIndex":1},"prevNode":{"key":"/k","value":"v2","modifiedIndex":2,"createdIndex":1}}"#
    );
    let mut cad = KeysRequest::new(Method::Delete, "/k", T0);
    cad.prev_index = 2;
    assert_eq!(
        err(&mut s, cad.clone()),
        r#"{"errorCode":101,"message":"Compare failed","cause":"[2 != 3]","index":3}"#
    );
    cad.prev_index = 3;
    assert_eq!(
        ok(&mut s, cad),
        r#"{"action":"compareAndDelete","node":{"key":"/k","modifiedIndex":4,"createdIndex":1},"prevNode":{"key":"/k","value":"v3","modifiedIndex":3,"createdIndex":1}}"#
    );
}

#[test]
fn delete_rules_for_directories_and_root() {
    let mut s = Store::new();
    set(&mut s, "/d/f", "1");
    let del = |path: &str, dir: bool, recursive: bool| {
        let mut r = KeysRequest::new(Method::Delete, path, T0);
        r.dir = dir;
        r.recursive = recursive;
        r
    };
    assert_eq!(
        err(&mut s, del("/d", false, false)),
        r#"{"errorCode":102,"message":"Not a file","cause":"/d","index":1}"#
    );
    assert_eq!(
        err(&mut s, del("/d", true, false)),
        r#"{"errorCode":108,"message":"Directory not empty","cause":"/d","index":1}"#
    );
    assert_eq!(
        err(&mut s, del("/", true, true)),
        r#"{"errorCode":107,"message":"Root is read only","cause":"/","index":1}"#
    );
    assert_eq!(
        ok(&mut s, del("/d", false, true)),
        r#"{"action":"delete","node":{"key":"/d","dir":true,"modifiedIndex":2,"createdIndex":1},"prevNode":{"key":"/d","dir":true,"modifiedIndex":1,"createdIndex":1}}"#
    );
    assert_eq!(
        s.get("/d/f", false, false, T0).unwrap_err().code,
        ErrorCode::KeyNotFound
    );
}

#[test]
fn in_order_keys_are_named_by_index() {
    let mut s = Store::new();
    set(&mut s, "/other", "x");
    let mut post = KeysRequest::new(Method::Post, "/queue", T0);
    post.value = "job".into();
    assert_eq!(
        ok(&mut s, post),
        r#"{"action":"create","node":{"key":"/queue/00000000000000000002","value":"job","modifiedIndex":2,"createdIndex":2}}"#
    );
}

#[test]
fn ttl_renders_and_expires_on_sync_in_order() {
    let mut s = Store::new();
    let mut r = put("/svc/a");
    r.value = "1".into();
    r.expiration_ns = Some(T0 + 5 * SEC);
    assert_eq!(
        ok(&mut s, r),
        r#"{"action":"set","node":{"key":"/svc/a","value":"1","expiration":"2026-11-24T04:30:05Z","ttl":5,"modifiedIndex":1,"createdIndex":1}}"#
    );
    let mut r = put("/svc/b");
    r.value = "2".into();
    r.expiration_ns = Some(T0 + 3 * SEC);
    ok(&mut s, r);
    assert!(s.has_ttl_keys());
    assert_eq!(
        s.get("/svc/a", false, false, T0 + SEC / 2)
            .unwrap()
            .node
            .unwrap()
            .ttl,
        5
    );

    let (sink, seen) = Collect::new();
    s.watch("/svc", true, true, 0, Box::new(sink)).unwrap();
    s.apply(&Command::Sync {
        time_ns: T0 + 2 * SEC,
    });
    assert_eq!(s.current_index(), 2, "nothing due yet");
    s.apply(&Command::Sync {
        time_ns: T0 + 5 * SEC,
    });
    assert_eq!(s.current_index(), 4);
    assert!(!s.has_ttl_keys());
    let events = seen.lock().unwrap().clone();
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[0],
        r#"{"action":"expire","node":{"key":"/svc/b","modifiedIndex":3,"createdIndex":2},"prevNode":{"key":"/svc/b","value":"2","expiration":"2026-11-24T04:30:03Z","ttl":-2,"modifiedIndex":2,"createdIndex":2}}"#
    );
    assert!(events[1].contains(r#""key":"/svc/a","modifiedIndex":4"#));
    assert_eq!(s.stats().expire_count, 2);
}

#[test]
fn refresh_keeps_value_and_wakes_nobody() {
    let mut s = Store::new();
    let mut r = put("/k");
    r.value = "v".into();
    r.expiration_ns = Some(T0 + 5 * SEC);
    ok(&mut s, r);
    let (sink, seen) = Collect::new();
    s.watch("/k", false, false, 0, Box::new(sink)).unwrap();
    let mut refresh = put("/k");
    refresh.refresh = true;
    refresh.expiration_ns = Some(T0 + 10 * SEC);
    let event = run(&mut s, refresh).unwrap();
    assert!(event.refresh, "the history marks refreshes");
    let out = event.to_json_line();
    assert!(
        out.contains(r#""value":"v""#) && !out.contains("refresh"),
        "etcd never shows the flag: {out}"
    );
    assert!(seen.lock().unwrap().is_empty());
    assert_eq!(s.watcher_count(), 1);
    // A refresh of a missing key fails rather than creating it.
    let mut refresh = put("/missing");
    refresh.refresh = true;
    refresh.expiration_ns = Some(T0 + SEC);
    assert!(err(&mut s, refresh).contains(r#""errorCode":100"#));
}

#[test]
fn watches_replay_history_and_report_cleared_index() {
    let mut s = Store::new();
    for i in 0..1005 {
        set(&mut s, "/w", &i.to_string());
    }
    let (sink, seen) = Collect::new();
    let e = s.watch("/w", false, false, 3, Box::new(sink)).unwrap_err();
    assert_eq!(
        e.to_json_line().trim_end(),
        r#"{"errorCode":401,"message":"The event in requested index is outdated and cleared","cause":"the requested history has been cleared [6/3]","index":1005}"#
    );
    let (_, start) = s
        .watch("/w", false, false, 1000, Box::new(sink_of(&seen)))
        .unwrap();
    assert_eq!(start, 1005);
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert!(seen.lock().unwrap()[0].contains(r#""value":"999""#));
    assert_eq!(
        s.watcher_count(),
        0,
        "a watch answered from history is not registered"
    );
}

#[test]
fn hidden_keys_and_deleted_directories_reach_the_right_watchers() {
    let mut s = Store::new();
    let (root_sink, root_seen) = Collect::new();
    s.watch("/", true, true, 0, Box::new(root_sink)).unwrap();
    set(&mut s, "/_secret", "x");
    assert!(
        root_seen.lock().unwrap().is_empty(),
        "hidden keys do not wake recursive watchers above them"
    );
    set(&mut s, "/a/b/c", "1");
    assert_eq!(root_seen.lock().unwrap().len(), 1);

    let (leaf_sink, leaf_seen) = Collect::new();
    s.watch("/a/b/c", false, false, 0, Box::new(leaf_sink))
        .unwrap();
    let mut del = KeysRequest::new(Method::Delete, "/a", T0);
    del.recursive = true;
    ok(&mut s, del);
    let leaf = leaf_seen.lock().unwrap().clone();
    assert_eq!(leaf.len(), 1, "a watcher below a deleted directory is told");
    assert!(leaf[0].starts_with(r#"{"action":"delete","node":{"key":"/a","dir":true"#));
}

#[test]
fn stream_watcher_on_deleted_key_hears_it_twice_like_etcd() {
    // etcd notifies watchers of each removed node, then walks the event's path: a
    // stream watcher on the deleted key itself is reached both ways.
    let mut s = Store::new();
    set(&mut s, "/k", "v");
    let (sink, seen) = Collect::new();
    s.watch("/k", false, true, 0, Box::new(sink)).unwrap();
    ok(&mut s, KeysRequest::new(Method::Delete, "/k", T0));
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[test]
fn dropped_or_full_sinks_end_the_watch() {
    let mut s = Store::new();
    let (id, _) = s.watch("/k", false, true, 0, Box::new(Refuse)).unwrap();
    assert_eq!(s.watcher_count(), 1);
    set(&mut s, "/k", "v");
    assert_eq!(s.watcher_count(), 0);
    s.unwatch(id);
    let (sink, _) = Collect::new();
    let (id, _) = s.watch("/k", true, true, 0, Box::new(sink)).unwrap();
    s.unwatch(id);
    assert_eq!(s.watcher_count(), 0);
}

#[test]
fn snapshot_round_trips_tree_index_history_and_ttls() {
    let mut s = Store::new();
    set(&mut s, "/a/b", "1");
    set(&mut s, "/_h", "2");
    let mut r = put("/t");
    r.value = "3".into();
    r.expiration_ns = Some(T0 + SEC);
    ok(&mut s, r);
    let mut dir = put("/emptydir");
    dir.dir = true;
    ok(&mut s, dir);
    let bytes = s.save();
    let mut back = Store::new();
    back.recover(&bytes).unwrap();
    assert_eq!(back.save(), bytes);
    assert_eq!(back.current_index(), 4);
    assert!(back.has_ttl_keys());
    assert_eq!(
        back.get("/", true, true, T0).unwrap().to_json_line(),
        s.get("/", true, true, T0).unwrap().to_json_line()
    );
    back.apply(&Command::Sync { time_ns: T0 + SEC });
    assert_eq!(back.current_index(), 5);
    assert!(!back.has_ttl_keys());
    assert!(Store::new().recover(b"{not json").is_err());
}

#[test]
fn removed_members_survive_a_snapshot_and_older_snapshots_have_none() {
    let mut s = Store::new();
    set(&mut s, "/a", "1");
    let before = s.save();
    s.record_removed_members([0x2e12, 7]);
    assert!(s.is_member_removed(7) && !s.is_member_removed(8));
    let mut back = Store::new();
    back.recover(&s.save()).unwrap();
    assert!(back.is_member_removed(0x2e12) && back.is_member_removed(7));
    // A snapshot without the field (written before members could be removed) reads.
    let mut old = Store::new();
    old.recover(&before).unwrap();
    assert!(!old.is_member_removed(7));
}

#[test]
fn same_commands_give_same_state() {
    // Determinism: two replicas fed the same log agree byte for byte.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut log = Vec::new();
    for i in 0..2000 {
        let key = format!("/k{}/{}", next() % 5, next() % 7);
        let cmd = match next() % 6 {
            0 => Command::Sync {
                time_ns: T0 + i as i64 * SEC / 10,
            },
            1 => Command::Keys(KeysRequest {
                recursive: true,
                ..KeysRequest::new(Method::Delete, format!("/k{}", next() % 5), T0)
            }),
            2 => Command::Keys(KeysRequest {
                value: i.to_string().into(),
                ..KeysRequest::new(Method::Post, key, T0)
            }),
            _ => Command::Keys(KeysRequest {
                value: i.to_string().into(),
                expiration_ns: (next() % 2 == 0).then_some(T0 + (i as i64 % 50) * SEC / 10),
                ..KeysRequest::new(Method::Put, key, T0)
            }),
        };
        log.push(cmd);
    }
    let (mut a, mut b) = (Store::new(), Store::new());
    for cmd in &log {
        assert_eq!(a.apply(cmd), b.apply(cmd));
    }
    assert_eq!(a.save(), b.save());
}

/// Collects the JSON of every event delivered.
struct Collect(Arc<Mutex<Vec<String>>>);

impl Collect {
    fn new() -> (Collect, Arc<Mutex<Vec<String>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        (Collect(Arc::clone(&seen)), seen)
    }
}

fn sink_of(seen: &Arc<Mutex<Vec<String>>>) -> Collect {
    Collect(Arc::clone(seen))
}

impl WatchSink for Collect {
    fn deliver(&mut self, event: &Arc<Event>) -> bool {
        self.0
            .lock()
            .unwrap()
            .push(event.to_json_line().trim_end().to_string());
        true
    }
}

/// A receiver that is already gone.
struct Refuse;

impl WatchSink for Refuse {
    fn deliver(&mut self, _: &Arc<Event>) -> bool {
        false
    }
}
