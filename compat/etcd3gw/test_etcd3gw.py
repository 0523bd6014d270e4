"""etcd3gw (OpenStack's client of etcd's JSON gateway, unmodified) against a server at
$ETCD_HOST:$ETCD_PORT.

Each test_* function runs on its own key prefix; the script ends with "N passed, M failed".
"""

import os
import queue
import sys
import threading
import traceback

import etcd3gw

HOST = os.environ.get("ETCD_HOST", "127.0.0.1")
PORT = int(os.environ["ETCD_PORT"])
# How long a watch may take to show an event.
WATCH_WAIT_S = 10.0


def client():
    # A per-request deadline, so that nothing in here can hang forever.
    return etcd3gw.client(host=HOST, port=PORT, timeout=10)


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def test_put_get_delete():
    c = client()
    check(c.put("kv/a", "1"), "put answers True")
    check(c.get("kv/a") == [b"1"], "get after put: %r" % c.get("kv/a"))
    check(c.put("kv/a", b"\x00\xffbytes"), "put of raw bytes")
    check(c.get("kv/a") == [b"\x00\xffbytes"], "bytes come back as sent")
    value, meta = c.get("kv/a", metadata=True)[0]
    check(value == b"\x00\xffbytes", "get with metadata: %r" % value)
    check(meta["key"] == b"kv/a" and meta["version"] == "2", "metadata: %r" % meta)
    check(c.get("kv/missing") == [], "a missing key gets []")
    check(c.delete("kv/a"), "delete of a key that exists answers True")
    check(not c.delete("kv/a"), "a second delete answers False")
    check(c.get("kv/a") == [], "get after delete")


def test_get_prefix_and_transaction():
    c = client()
    for i in range(3):
        c.put("prefix/k%d" % i, "v%d" % i)
    c.put("prefixed-not", "x")
    got = c.get_prefix("prefix/")
    check([v for v, _ in got] == [b"v0", b"v1", b"v2"], "prefix values: %r" % got)
    check([m["key"] for _, m in got] == [b"prefix/k0", b"prefix/k1", b"prefix/k2"],
          "prefix keys in order")
    descending = c.get_prefix("prefix/", sort_order="descend", sort_target="key")
    check([v for v, _ in descending] == [b"v2", b"v1", b"v0"], "descending: %r" % descending)
    check(c.create("prefix/new", "1"), "create of a new key succeeds")
    check(not c.create("prefix/new", "2"), "create of an existing key fails")
    check(c.replace("prefix/new", "1", "3"), "replace with the right old value")
    check(not c.replace("prefix/new", "1", "4"), "replace with a wrong old value")
    check(c.get("prefix/new") == [b"3"], "replaced value")
    check(c.delete_prefix("prefix/"), "delete_prefix")
    check(c.get_prefix("prefix/") == [], "nothing left under the prefix")
    check(c.get("prefixed-not") == [b"x"], "a key beside the prefix stays")


class Events(object):
    """Consumes a watch's event iterator on its own thread."""

    def __init__(self, iterator):
        self.events = queue.Queue()
        self.thread = threading.Thread(target=self._run, args=(iterator,), daemon=True)
        self.thread.start()

    def _run(self, iterator):
        for event in iterator:
            self.events.put(event)

    def next(self, what):
        try:
            return self.events.get(timeout=WATCH_WAIT_S)
        except queue.Empty:
            raise AssertionError("no watch event within %.0f s: expected %s" % (WATCH_WAIT_S, what))


def test_watch_sees_a_put_and_a_delete():
    c = client()
    iterator, cancel = c.watch("watch/key")
    events = Events(iterator)
    try:
        c.put("watch/key", "first")
        event = events.next("the put")
        check(event["kv"]["key"] == b"watch/key" and event["kv"]["value"] == b"first",
              "the put's event: %r" % event)
        check(event.get("type", "PUT") == "PUT", "a put event: %r" % event)
        c.delete("watch/key")
        event = events.next("the delete")
        check(event.get("type") == "DELETE", "a delete event: %r" % event)
    finally:
        cancel()


def test_watch_prefix_and_watch_once():
    c = client()
    iterator, cancel = c.watch_prefix("wp/")
    events = Events(iterator)
    try:
        c.put("wp/a", "1")
        c.put("elsewhere", "1")
        c.put("wp/b", "2")
        keys = [events.next("prefix event %d" % i)["kv"]["key"] for i in range(2)]
        check(keys == [b"wp/a", b"wp/b"], "only the prefix's events, in order: %r" % keys)
    finally:
        cancel()
    result = {}

    def once():
        result["event"] = c.watch_once("once/key", timeout=WATCH_WAIT_S)

    waiter = threading.Thread(target=once, daemon=True)
    waiter.start()
    # The watch is created before the put is sent: retry the put until it is seen.
    for _ in range(50):
        c.put("once/key", "v")
        waiter.join(0.2)
        if not waiter.is_alive():
            break
    check(result.get("event", {}).get("kv", {}).get("value") == b"v",
          "watch_once saw the put: %r" % result)


def test_lease_with_a_key():
    c = client()
    lease = c.lease(ttl=30)
    check(lease.id > 0, "a lease id: %r" % lease.id)
    check(c.put("lease/key", "held", lease=lease), "put with the lease")
    check(0 < lease.ttl() <= 30, "ttl: %r" % lease.ttl())
    check(lease.refresh() == 30, "refresh renews the whole TTL")
    check(lease.keys() == [b"lease/key"], "the lease's keys: %r" % lease.keys())
    check(c.get("lease/key") == [b"held"], "the key is there")
    check(lease.revoke(), "revoke")
    check(c.get("lease/key") == [], "revoking the lease deleted its key")
    check(lease.ttl() == -1, "a revoked lease's ttl is -1: %r" % lease.ttl())
    check(lease.refresh() == -1, "refreshing a revoked lease gives -1")


def test_lock_is_exclusive():
    # etcd3gw's lock is a transaction on a key held by a lease, not etcd's Lock service.
    c = client()
    first, second = c.lock("compat", ttl=30), c.lock("compat", ttl=30)
    check(first.acquire(), "the first acquire takes the lock")
    check(first.is_acquired(), "the first holds it")
    check(not second.acquire(), "a second acquire is refused while it is held")
    check(first.refresh() == 30, "refreshing the lock's lease")
    check(first.release(), "release")
    check(not first.is_acquired(), "released")
    check(second.acquire(), "the second takes it once free")
    check(second.release(), "and releases it")


def test_status_and_members():
    c = client()
    status = c.status()
    check(status["version"].startswith("3.4."), "status version: %r" % status)
    members = c.members()
    check(len(members) == 1, "one member: %r" % members)
    check(members[0]["clientURLs"] == ["http://%s:%d" % (HOST, PORT)],
          "the member's client URL: %r" % members)


def test_errors_are_etcd3gw_exceptions():
    c = client()
    try:
        c.put("", "v")
    except etcd3gw.exceptions.Etcd3Exception as e:
        check("key is not provided" in str(e.detail_text), "the refusal: %r" % e.detail_text)
    else:
        raise AssertionError("a put of an empty key was accepted")


def main():
    tests = [(name, f) for name, f in sorted(globals().items()) if name.startswith("test_")]
    failed = 0
    for name, test in tests:
        try:
            test()
            print("ok   " + name)
        except Exception:
            failed += 1
            print("FAIL " + name)
            traceback.print_exc()
    print("%d passed, %d failed" % (len(tests) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
