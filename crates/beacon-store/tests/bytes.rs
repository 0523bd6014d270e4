//! Keys and values are bytes (Go strings), as in etcd: two keys that differ only in
//! bytes that are not UTF-8 stay two keys in the tree, the history, the watchers and the
//! snapshot, and compares see the bytes. Data written before (JSON strings in the log
//! and in snapshots) still reads.

use std::sync::{Arc, Mutex};

use beacon_api::{ByteString, ErrorCode, Event};
use beacon_store::{Applied, Command, KeysRequest, Method, Store, WatchSink};

const T0: i64 = 1_795_494_600_000_000_000; // 2026-11-24T04:30:00Z

fn run(store: &mut Store, req: KeysRequest) -> Result<Event, beacon_api::EtcdError> {
    match store.apply(&Command::Keys(req)) {
        Applied::Keys(r) => r,
        Applied::Synced | Applied::V3(_) | Applied::Auth(_) => unreachable!(),
    }
}

fn put(key: &[u8], value: &[u8]) -> KeysRequest {
    let mut r = KeysRequest::new(Method::Put, key, T0);
    r.value = value.into();
    r
}

fn line(result: Result<Event, beacon_api::EtcdError>) -> String {
    match result {
        Ok(e) => e.to_json_line(),
        Err(e) => e.to_json_line(),
    }
    .trim_end()
    .to_string()
}

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<String>>>);

impl WatchSink for Collect {
    fn deliver(&mut self, event: &Arc<Event>) -> bool {
        self.0.lock().unwrap().push(event.to_json_line());
        true
    }
}

#[test]
fn keys_that_differ_in_invalid_bytes_are_not_merged() {
    let mut s = Store::new();
    assert_eq!(
        line(run(&mut s, put(b"/k\xff", b"first"))),
        r#"{"action":"set","node":{"key":"/k\ufffd","value":"first","modifiedIndex":1,"createdIndex":1}}"#
    );
    // etcd: a new key, no prevNode.
    assert_eq!(
        line(run(&mut s, put(b"/k\xfe", b"second"))),
        r#"{"action":"set","node":{"key":"/k\ufffd","value":"second","modifiedIndex":2,"createdIndex":2}}"#
    );
    assert_eq!(
        s.get(b"/k\xff", false, false, T0)
            .unwrap()
            .node
            .unwrap()
            .value,
        Some(ByteString::from("first"))
    );
    // Byte order, as Go sorts: \xfe before \xff.
    let listing = s.get("/", true, true, T0).unwrap().node.unwrap();
    let keys: Vec<&[u8]> = listing.nodes.iter().map(|n| n.key.as_bytes()).collect();
    assert_eq!(keys, [&b"/k\xfe"[..], &b"/k\xff"[..]]);
}

#[test]
fn compares_see_bytes_and_causes_show_them_as_go_does() {
    let mut s = Store::new();
    run(&mut s, put(b"/cas", b"\xff")).unwrap();
    let mut cas = put(b"/cas", b"x");
    cas.prev_value = b"\xfe".as_slice().into();
    // etcd 3.4.23 answers exactly this.
    assert_eq!(
        line(run(&mut s, cas)),
        r#"{"errorCode":101,"message":"Compare failed","cause":"[\ufffd != \ufffd]","index":1}"#
    );
    let mut cad = KeysRequest::new(Method::Delete, "/cas", T0);
    cad.prev_value = b"\xfe".as_slice().into();
    assert_eq!(run(&mut s, cad).unwrap_err().code, ErrorCode::TestFailed);
    let mut cas = put(b"/cas", b"y");
    cas.prev_value = b"\xff".as_slice().into();
    assert!(run(&mut s, cas).is_ok());
    // A cut 4-byte sequence is three replacements (Go), not one (Rust's lossy decoding).
    assert_eq!(
        line(run(&mut s, put(b"/v", b"\xf0\x9f\x98"))),
        r#"{"action":"set","node":{"key":"/v","value":"\ufffd\ufffd\ufffd","modifiedIndex":3,"createdIndex":3}}"#
    );
}

#[test]
fn watchers_and_history_keep_the_keys_apart() {
    let mut s = Store::new();
    let seen = Collect::default();
    s.watch(b"/k\xff", false, true, 0, Box::new(seen.clone()))
        .unwrap();
    run(&mut s, put(b"/k\xfe", b"other")).unwrap();
    assert!(seen.0.lock().unwrap().is_empty(), "woken by another key");
    run(&mut s, put(b"/k\xff", b"mine")).unwrap();
    assert_eq!(seen.0.lock().unwrap().len(), 1);
    // From the history: the first event of /k\xff is at index 2, not 1.
    let past = Collect::default();
    s.watch(b"/k\xff", false, false, 1, Box::new(past.clone()))
        .unwrap();
    assert!(past.0.lock().unwrap()[0].contains("\"value\":\"mine\""));
}

#[test]
fn snapshots_keep_bytes_and_read_what_was_written_before() {
    let mut s = Store::new();
    run(&mut s, put(b"/d\xff/k\xfe", b"\x00\xff")).unwrap();
    run(&mut s, put(b"/d\xff/k\xff", b"text")).unwrap();
    let bytes = s.save();
    let mut back = Store::new();
    back.recover(&bytes).unwrap();
    assert_eq!(back.save(), bytes);
    assert_eq!(
        back.get(b"/d\xff/k\xfe", false, false, T0)
            .unwrap()
            .node
            .unwrap()
            .value,
        Some(ByteString::from(&b"\x00\xff"[..]))
    );
    // UTF-8 keys and values are still JSON strings, as in every snapshot written
    // before keys were bytes, and such a snapshot still loads.
    let old = r#"{"version":1,"current_index":2,"nodes":[{"path":"/a","created":1,"modified":1},{"path":"/a/b","created":2,"modified":2,"value":"v"}],"history":[],"stats":{"getsSuccess":0,"getsFail":0,"setsSuccess":0,"setsFail":0,"deleteSuccess":0,"deleteFail":0,"updateSuccess":0,"updateFail":0,"createSuccess":0,"createFail":0,"compareAndSwapSuccess":0,"compareAndSwapFail":0,"compareAndDeleteSuccess":0,"compareAndDeleteFail":0,"expireCount":0,"watchers":0}}"#;
    let mut old_store = Store::new();
    old_store.recover(old.as_bytes()).unwrap();
    assert_eq!(old_store.save(), old.as_bytes());
    assert_eq!(
        line(old_store.get("/a/b", false, false, T0)),
        r#"{"action":"get","node":{"key":"/a/b","value":"v","modifiedIndex":2,"createdIndex":2}}"#
    );
}

#[test]
fn log_commands_keep_their_json_for_text_and_carry_bytes_otherwise() {
    let text = Command::Keys(put(b"/a", b"v"));
    let json = serde_json::to_string(&text).unwrap();
    assert!(json.contains(r#""path":"/a","value":"v""#), "{json}");
    assert_eq!(serde_json::from_str::<Command>(&json).unwrap(), text);
    let bytes = Command::Keys(put(b"/k\xff", b"\xfe"));
    let json = serde_json::to_string(&bytes).unwrap();
    assert_eq!(serde_json::from_str::<Command>(&json).unwrap(), bytes);
}
