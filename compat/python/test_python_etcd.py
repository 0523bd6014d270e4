"""python-etcd (the PyPI client) against a v2 server at $ETCD_HOST:$ETCD_PORT.

Each test_* function runs on its own key prefix; the script ends with "N passed, M failed".
"""

import os
import sys
import threading
import time
import traceback

import etcd

HOST = os.environ.get("ETCD_HOST", "127.0.0.1")
PORT = int(os.environ["ETCD_PORT"])


def client():
    return etcd.Client(host=HOST, port=PORT, read_timeout=15)


def expect_raises(exc_type, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except exc_type as e:
        return e
    raise AssertionError("expected %s" % exc_type.__name__)


def wait_until(condition, timeout_s=15.0, what="condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def test_write_read_delete():
    c = client()
    r = c.write("/py/basic/k", "v1")
    assert r.action == "set" and r.value == "v1" and r.key == "/py/basic/k", r
    assert c.read("/py/basic/k").value == "v1"
    assert c.get("/py/basic/k").value == "v1"
    r = c.write("/py/basic/k", "v2")
    assert r._prev_node.value == "v1"
    r = c.delete("/py/basic/k")
    assert r.action == "delete"
    expect_raises(etcd.EtcdKeyNotFound, c.read, "/py/basic/k")
    expect_raises(etcd.EtcdKeyNotFound, c.delete, "/py/basic/k")


def test_directory_listing():
    c = client()
    c.write("/py/dir/a", "1")
    c.write("/py/dir/sub/b", "2")
    c.write("/py/dir/sub/c", "3")
    flat = c.read("/py/dir")
    assert flat.dir
    assert sorted(ch.key for ch in flat.children) == ["/py/dir/a", "/py/dir/sub"]
    deep = c.read("/py/dir", recursive=True)
    assert sorted((n.key, n.value) for n in deep.leaves) == [
        ("/py/dir/a", "1"), ("/py/dir/sub/b", "2"), ("/py/dir/sub/c", "3")]
    r = c.write("/py/emptydir", None, dir=True)
    assert r.dir
    assert [n.key for n in c.read("/py/emptydir").leaves] == ["/py/emptydir"]
    expect_raises(etcd.EtcdDirNotEmpty, c.delete, "/py/dir/sub", dir=True)
    expect_raises(etcd.EtcdNotFile, c.delete, "/py/dir/sub")
    c.delete("/py/dir", recursive=True)
    expect_raises(etcd.EtcdKeyNotFound, c.read, "/py/dir/a")


def test_ttl_and_expiry():
    c = client()
    r = c.write("/py/ttl/long", "x", ttl=100)
    assert 99 <= r.ttl <= 100 and r.expiration, r
    r = c.refresh("/py/ttl/long", ttl=200)
    assert 199 <= r.ttl <= 200 and r.value == "x", r
    c.write("/py/ttl/short", "x", ttl=1)

    def gone():
        try:
            c.read("/py/ttl/short")
            return False
        except etcd.EtcdKeyNotFound:
            return True

    wait_until(gone, what="ttl=1 key to expire")


def test_compare_and_swap():
    c = client()
    c.write("/py/cas/k", "old")
    r = c.test_and_set("/py/cas/k", "new", "old")
    assert r.value == "new"
    expect_raises(etcd.EtcdCompareFailed, c.test_and_set, "/py/cas/k", "newer", "old")
    r = c.write("/py/cas/k", "byindex", prevIndex=r.modifiedIndex)
    assert r.value == "byindex"
    expect_raises(etcd.EtcdCompareFailed, c.write, "/py/cas/k", "x", prevIndex=1)
    expect_raises(etcd.EtcdAlreadyExist, c.write, "/py/cas/k", "x", prevExist=False)
    expect_raises(etcd.EtcdKeyNotFound, c.write, "/py/cas/missing", "x", prevExist=True)
    obj = c.read("/py/cas/k")
    obj.value = "updated"
    assert c.update(obj).value == "updated"
    expect_raises(etcd.EtcdCompareFailed, c.delete, "/py/cas/k", prevValue="nope")
    assert c.delete("/py/cas/k", prevValue="updated").action == "compareAndDelete"


def test_append_in_order():
    c = client()
    keys = [c.write("/py/queue", v, append=True).key for v in ("a", "b", "c")]
    assert keys == sorted(keys) and len(set(keys)) == 3
    listed = c.read("/py/queue", sorted=True)
    assert [n.value for n in listed.children] == ["a", "b", "c"]


def test_watch_with_index():
    c = client()
    first = c.write("/py/watch/k", "1")
    c.write("/py/watch/k", "2")
    r = c.watch("/py/watch/k", index=first.modifiedIndex)
    assert r.value == "1" and r.modifiedIndex == first.modifiedIndex
    r = c.read("/py/watch/k", wait=True, waitIndex=first.modifiedIndex + 1)
    assert r.value == "2"
    r = c.watch("/py/watch", index=first.modifiedIndex, recursive=True)
    assert r.key == "/py/watch/k" and r.value == "1"


def test_watch_wakes_on_change():
    c = client()
    start = c.write("/py/watch2/k", "before")
    result = {}

    def watcher():
        result["r"] = client().watch("/py/watch2/k", index=start.modifiedIndex + 1, timeout=15)

    t = threading.Thread(target=watcher)
    t.start()
    c.write("/py/watch2/k", "after")
    t.join(20)
    assert result["r"].value == "after" and result["r"].action == "set", result


def test_errors_map_to_exceptions():
    c = client()
    c.write("/py/err/file", "x")
    c.write("/py/err/dir/child", "x")
    expect_raises(etcd.EtcdNotDir, c.write, "/py/err/file/below", "x")
    expect_raises(etcd.EtcdNotFile, c.write, "/py/err/dir", "x")
    expect_raises(etcd.EtcdNotFile, c.write, "/py/err/dir", None, dir=True)
    expect_raises(etcd.EtcdRootReadOnly, c.delete, "/", recursive=True)
    expect_raises(etcd.EtcdKeyNotFound, c.read, "/py/err/nothing")
    expect_raises(etcd.EtcdValueError, c.write, "/py/err/ttl", "x", ttl="abc")


def test_event_index_cleared():
    c = client()
    first = c.write("/py/hist/k", "0")
    for i in range(1005):
        c.write("/py/hist/k", str(i))
    expect_raises(etcd.EtcdEventIndexCleared, c.watch, "/py/hist/k", index=first.modifiedIndex)


def test_cluster_endpoints():
    c = client()
    assert c.machines == ["http://%s:%d" % (HOST, PORT)], c.machines
    members = c.members
    assert len(members) == 1
    (member,) = members.values()
    assert member["clientURLs"] == ["http://%s:%d" % (HOST, PORT)], member
    assert c.leader["id"] == member["id"]
    assert "setsSuccess" in c.store_stats
    assert c.stats["state"] == "StateLeader"
    assert c.version.startswith("3."), c.version


def main():
    tests = [(name, fn) for name, fn in sorted(globals().items()) if name.startswith("test_")]
    passed = failed = 0
    for name, fn in tests:
        try:
            fn()
            passed += 1
            print("ok   " + name)
        except Exception:
            failed += 1
            print("FAIL " + name)
            traceback.print_exc()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
