"""etcd3 (the PyPI v3 gRPC client, unmodified) against a server at $ETCD_HOST:$ETCD_PORT.

Each test_* function runs on its own key prefix; the script ends with "N passed, M failed".
"""

import os
import queue
import sys
import threading
import time
import traceback

import etcd3
import etcd3.events
import etcd3.exceptions

HOST = os.environ.get("ETCD_HOST", "127.0.0.1")
PORT = int(os.environ["ETCD_PORT"])


def client():
    # A per-call deadline, so that nothing in here can hang forever.
    return etcd3.client(host=HOST, port=PORT, timeout=10)


def wait_until(condition, timeout_s=15.0, what="condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


class EventCollector(object):
    """Consumes a watch_prefix() event iterator on its own thread."""

    def __init__(self, c, prefix, **kwargs):
        self.events = queue.Queue()
        self.iterator, self.cancel = c.watch_prefix(prefix, **kwargs)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            for event in self.iterator:
                self.events.put(event)
        except Exception as e:  # surfaced to the test through next()
            self.events.put(e)

    def next(self, timeout_s, what):
        try:
            event = self.events.get(timeout=timeout_s)
        except queue.Empty:
            raise AssertionError("no watch event within %.0f s: expected %s" % (timeout_s, what))
        if isinstance(event, Exception):
            raise AssertionError("watch failed while waiting for %s: %r" % (what, event))
        return event


def test_service_discovery_lease_keepalive_watch_expiry():
    c = client()
    prefix = "/services/web/"
    key1, key2 = prefix + "i-1", prefix + "i-2"

    # Register instance 1 on a 3 s lease, the way a service-discovery agent would.
    lease = c.lease(3)
    assert lease.id != 0 and lease.ttl == 3, (lease.id, lease.ttl)
    put = c.put(key1, "10.0.0.1:8080", lease=lease)
    value, meta = c.get(key1)
    assert value == b"10.0.0.1:8080", value
    assert meta.lease_id == lease.id, (meta.lease_id, lease.id)
    assert meta.mod_revision == meta.create_revision == put.header.revision, (
        meta.mod_revision, meta.create_revision, put.header.revision)
    assert meta.version == 1, meta.version
    assert lease.granted_ttl == 3, lease.granted_ttl
    assert 0 < lease.remaining_ttl <= 3, lease.remaining_ttl
    assert list(lease.keys) == [key1.encode()], lease.keys

    watch = EventCollector(c, prefix, prev_kv=True)
    try:
        # Keep it alive past its TTL: ~4.5 s of 0.9 s heartbeats on a 3 s lease.
        started = time.monotonic()
        while time.monotonic() - started < 4.5:
            (resp,) = lease.refresh()
            assert resp.ID == lease.id and resp.TTL == 3, (resp.ID, resp.TTL)
            assert resp.header.revision >= put.header.revision, resp.header
            assert c.get(key1)[0] == b"10.0.0.1:8080", "the kept-alive key disappeared"
            time.sleep(0.9)  # the heartbeat interval, not a synchronization

        # A second instance registers; the watcher sees its PUT.
        lease2 = c.lease(30)
        put2 = c.put(key2, "10.0.0.2:8080", lease=lease2)
        assert put2.header.revision > put.header.revision, (put2.header, put.header)
        event = watch.next(10, "PUT " + key2)
        assert isinstance(event, etcd3.events.PutEvent), event
        assert event.key == key2.encode() and event.value == b"10.0.0.2:8080", str(event)
        assert event.mod_revision == event.create_revision == put2.header.revision, (
            event.mod_revision, event.create_revision, put2.header.revision)
        assert event.version == 1 and event.lease == lease2.id, (event.version, event.lease)

        listed = sorted((m.key, v) for v, m in c.get_prefix(prefix))
        assert listed == [(key1.encode(), b"10.0.0.1:8080"), (key2.encode(), b"10.0.0.2:8080")], listed

        # Instance 1 stops refreshing: its lease expires and the watcher sees the DELETE.
        stopped = time.monotonic()
        event = watch.next(15, "DELETE %s by lease expiry" % key1)
        assert isinstance(event, etcd3.events.DeleteEvent), str(event)
        assert event.key == key1.encode(), event.key
        assert event.mod_revision > put2.header.revision, (event.mod_revision, put2.header.revision)
        assert event.prev_value == b"10.0.0.1:8080" and event.prev_lease == lease.id, (
            event.prev_value, event.prev_lease)
        took = time.monotonic() - stopped
        assert took >= 1.0, "instance 1 deleted only %.1f s after its last refresh (TTL 3 s)" % took
    finally:
        watch.cancel()

    assert c.get(key1) == (None, None), c.get(key1)
    listed = [(m.key, v) for v, m in c.get_prefix(prefix)]
    assert listed == [(key2.encode(), b"10.0.0.2:8080")], listed
    # An expired lease: TimeToLive reports TTL -1, a keep-alive answers TTL 0.
    assert lease.remaining_ttl == -1, lease.remaining_ttl
    (resp,) = lease.refresh()
    assert resp.ID == lease.id and resp.TTL == 0, (resp.ID, resp.TTL)

    # Revoking the other lease deletes instance 2 at once.
    lease2.revoke()
    assert list(c.get_prefix(prefix)) == []


def test_lock():
    c = client()
    other = client()
    first = c.lock("py3-lock", ttl=10)
    assert first.acquire(timeout=5) is True
    assert first.is_acquired()
    value, meta = c.get("/locks/py3-lock")
    assert value == first.uuid and meta.lease_id == first.lease.id, (value, meta.lease_id)

    second = other.lock("py3-lock", ttl=10)
    started = time.monotonic()
    assert second.acquire(timeout=1) is False, "a second holder got the lock while it was held"
    took = time.monotonic() - started
    assert 0.9 <= took < 5, "acquire(timeout=1) gave up after %.2f s" % took
    assert not second.is_acquired() and first.is_acquired()

    # release() while the other side waits: it must get the lock promptly.
    result = {}
    waiter = threading.Thread(target=lambda: result.setdefault("ok", second.acquire(timeout=10)))
    waiter.start()
    time.sleep(0.3)  # let the waiter block in its watch; correctness does not depend on it
    assert first.release() is True
    waiter.join(15)
    assert result.get("ok") is True, result
    assert second.is_acquired() and not first.is_acquired()
    assert first.release() is False, "releasing a lock we no longer hold succeeded"
    first.refresh()  # the old lease is still alive, only the key changed hands
    assert second.release() is True
    assert c.get("/locks/py3-lock") == (None, None)

    with c.lock("py3-lock-ctx", ttl=5) as held:
        assert held.is_acquired()
    assert c.get("/locks/py3-lock-ctx") == (None, None)


def test_transaction():
    c = client()
    k = "/py3/txn/k"
    t = c.transactions
    c.put(k, "v1")
    ok, responses = c.transaction(
        compare=[t.value(k) == "v1", t.version(k) == 1],
        success=[t.put(k, "v2"), t.get(k)],
        failure=[t.put(k, "failed")])
    assert ok is True, ok
    assert len(responses) == 2, responses
    ((value, meta),) = responses[1]
    assert value == b"v2" and meta.version == 2, (value, meta.version)

    # The same compare now fails (value and version changed): the failure branch runs.
    ok, responses = c.transaction(
        compare=[t.value(k) == "v1", t.version(k) == 1],
        success=[t.put(k, "v3")],
        failure=[t.put(k, "failed"), t.get(k)])
    assert ok is False, ok
    ((value, meta),) = responses[1]
    assert value == b"failed" and meta.version == 3, (value, meta.version)

    _, meta = c.get(k)
    ok, _ = c.transaction(
        compare=[t.mod(k) == meta.mod_revision, t.create(k) == meta.create_revision,
                 t.version(k) > 2, t.value(k) != "v1", t.mod(k) < meta.mod_revision + 1],
        success=[t.delete(k)], failure=[])
    assert ok is True
    assert c.get(k) == (None, None)

    # create_revision == 0 means "absent": put_if_not_exists and replace build on it.
    assert c.put_if_not_exists(k, "first") is True
    assert c.put_if_not_exists(k, "second") is False
    assert c.replace(k, "first", "third") is True
    assert c.replace(k, "first", "fourth") is False
    assert c.get(k)[0] == b"third"


def test_revisions():
    c = client()
    k = "/py3/rev/k"
    r1 = c.put(k, "a")
    r2 = c.put(k, "b", prev_kv=True)
    assert r2.header.revision == r1.header.revision + 1, (r1.header, r2.header)
    assert r2.prev_kv.value == b"a" and r2.prev_kv.mod_revision == r1.header.revision, r2.prev_kv
    value, meta = c.get(k)
    assert value == b"b", value
    assert meta.create_revision == r1.header.revision, meta.create_revision
    assert meta.mod_revision == r2.header.revision, meta.mod_revision
    assert meta.version == 2 and meta.lease_id == 0, (meta.version, meta.lease_id)
    assert meta.response_header.revision == r2.header.revision, meta.response_header

    d = c.delete(k, prev_kv=True, return_response=True)
    assert d.deleted == 1 and d.header.revision == r2.header.revision + 1, d
    assert d.prev_kvs[0].value == b"b", d.prev_kvs
    assert c.delete(k) is False
    r3 = c.put(k, "c")
    _, meta = c.get(k)
    assert meta.create_revision == r3.header.revision and meta.version == 1, meta.__dict__

    # A watch from an old revision replays the history, deletes included.
    events, cancel = c.watch(k, start_revision=r1.header.revision)
    seen = []
    try:
        for event in events:
            seen.append((type(event).__name__, event.value, event.mod_revision))
            if len(seen) == 4:
                break
    finally:
        cancel()
    assert seen == [("PutEvent", b"a", r1.header.revision), ("PutEvent", b"b", r2.header.revision),
                    ("DeleteEvent", b"", d.header.revision), ("PutEvent", b"c", r3.header.revision)], seen

    # After a compaction, a watch from before it is refused with the compact revision.
    c.compact(r3.header.revision)
    events, cancel = c.watch(k, start_revision=r1.header.revision)
    try:
        next(events)
        raise AssertionError("a watch from a compacted revision delivered an event")
    except etcd3.exceptions.RevisionCompactedError as e:
        assert e.compacted_revision == r3.header.revision, e.compacted_revision
    finally:
        cancel()

    # Prefix listing: sorted by key, with count and header revision.
    for i in range(3):
        c.put("/py3/rev/list/%d" % i, str(i))
    resp = c.get_prefix_response("/py3/rev/list/")
    assert resp.count == 3 and [kv.key for kv in resp.kvs] == [
        b"/py3/rev/list/0", b"/py3/rev/list/1", b"/py3/rev/list/2"], resp
    assert resp.header.revision >= r3.header.revision + 3, resp.header
    assert c.delete_prefix("/py3/rev/list/").deleted == 3


def test_status_and_members():
    c = client()
    members = list(c.members)
    assert len(members) == 1, members
    (member,) = members
    assert member.name == "default", member.name
    assert member.client_urls == ["http://%s:%d" % (HOST, PORT)], member.client_urls
    status = c.status()
    assert status.version.startswith("3."), status.version
    assert status.leader is not None and status.leader.id == member.id, (status.leader, member.id)
    assert status.raft_term >= 1 and status.raft_index >= 1, (status.raft_term, status.raft_index)
    assert status.db_size > 0, status.db_size


def main():
    tests = [(name, fn) for name, fn in sorted(globals().items()) if name.startswith("test_")]
    passed = failed = 0
    for name, fn in tests:
        started = time.monotonic()
        try:
            fn()
            passed += 1
            print("ok   %s (%.1f s)" % (name, time.monotonic() - started))
        except Exception:
            failed += 1
            print("FAIL %s (%.1f s)" % (name, time.monotonic() - started))
            traceback.print_exc()
        sys.stdout.flush()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
