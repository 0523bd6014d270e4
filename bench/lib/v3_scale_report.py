"""bench/v3-scale's tables: reads WORK/NAME.KIND.json (beacon-bench's results) and prints
Markdown: the targets of issue 16, then each workload's figures, Beacon beside etcd."""

import json
import os
import sys

work = sys.argv[1]


def load(name, kind):
    path = os.path.join(work, "%s.%s.json" % (name, kind))
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def num(v, digits=2):
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int) or abs(v) >= 1000:
        return "{:,.0f}".format(v)
    return "{:.{}f}".format(v, digits)


def ratio(b, e):
    if b is None or e is None or not e:
        return "–"
    return "%.2fx" % (b / e)


def table(rows, b, e):
    print("| | Beacon | etcd | Beacon ÷ etcd |")
    print("|---|---|---|---|")
    for label, field, digits in rows:
        bv, ev = b.get(field), e.get(field)
        print("| %s | %s | %s | %s |" % (label, num(bv, digits), num(ev, digits),
                                         ratio(bv, ev) if not isinstance(bv, bool) else ""))
    print()


watch = {n: (load(n, "beacon"), load(n, "etcd")) for n in ("watch-wide", "watch-narrow")}
keys = (load("keys", "beacon"), load("keys", "etcd"))
leases = (load("leases", "beacon"), load("leases", "etcd"))
leases_burst = (load("leases-burst", "beacon"), load("leases-burst", "etcd"))
big = load("leases-big", "beacon")
big_burst = load("leases-big-burst", "beacon")

print("## Targets of issue 16")
print()
print("| target | measured | met |")
print("|---|---|---|")
for name, (b, e) in watch.items():
    if b and e:
        r = b["rss_bytes_per_watcher"] / e["rss_bytes_per_watcher"]
        print("| %s: server RSS per watcher ≤ 0.5× etcd's | %.0f B vs %.0f B: %.2fx | %s |" % (
            name, b["rss_bytes_per_watcher"], e["rss_bytes_per_watcher"], r,
            "yes" if r <= 0.5 else "**no**"))
b, e = keys
if b and e:
    r = b["rss_bytes_per_key"] / e["rss_bytes_per_key"]
    print("| %d keys: server RSS per key ≤ 0.5× etcd's | %.0f B vs %.0f B: %.2fx | %s |" % (
        b["keys"], b["rss_bytes_per_key"], e["rss_bytes_per_key"], r,
        "yes" if r <= 0.5 else "**no**"))
for run in (leases[0], leases_burst[0], big, big_burst):
    if run:
        lag = run["max_lag_s"]
        ok = run["all_gone"] and lag <= 5.0
        what = "%d leases%s" % (run["leases"], ", all due at once" if run.get("burst") else "")
        print("| %s: all revoked within 5 s of expiry | largest lag %.2f s, last gone %.2f s after the last deadline%s | %s |" % (
            what, lag, run["gone_after_last_deadline_s"],
            "" if run["all_gone"] else " (%d left at the cap)" % run["left_at_end"],
            "yes" if ok else "**no**"))
        during = ("no probe finished inside the %.2f s" % run["gone_after_first_deadline_s"]
                  if run["probe_during_n"] == 0 else
                  "p99 %.1f ms, max %.1f ms during expiry" % (run["probe_during_p99_ms"], run["probe_during_max_ms"]))
        print("| %s: other requests stay fast | probe (Put + Range) %s; %.1f / %.1f ms before | see figures |" % (
            what, during, run["probe_before_p99_ms"], run["probe_before_max_ms"]))
print()

print("## Watch fan-out")
print()
print("Every watcher watches the prefix `bench/w/`; a writer Puts one key under it, each"
      " Put once every watcher had the previous one. A delivery's latency runs from"
      " sending the Put to the watcher's answer arriving (the load generator shares the"
      " 2 CPUs). RSS per watcher is the growth from after the connections were open to"
      " after every watcher was created, over the watchers (streams included); RSS per"
      " connection the growth from idle to connected.")
print()
for name, (b, e) in watch.items():
    if not (b and e):
        continue
    print("### %s: %s watchers on %s streams over %s connections, %s Puts" % (
        name, num(b["watchers"]), num(b["streams"]), num(b["connections"]), b["puts"]))
    print()
    table([
        ("server RSS per watcher, bytes", "rss_bytes_per_watcher", 0),
        ("server RSS per connection, bytes", "rss_bytes_per_connection", 0),
        ("server RSS with every watcher, KiB", "rss_watching_kib", 0),
        ("creating the watchers, s", "create_s", 2),
        ("server CPU creating them, s", "create_server_cpu_s", 2),
        ("delivery p50, ms", "delivery_p50_ms", 1),
        ("delivery p99, ms", "delivery_p99_ms", 1),
        ("delivery max, ms", "delivery_max_ms", 1),
        ("Put to the last watcher, median of the Puts, ms", "all_delivered_median_ms", 1),
        ("server CPU per delivered event, µs", "server_cpu_us_per_event", 2),
        ("load generator CPU over the Puts, s", "client_cpu_s", 2),
    ], b, e)

b, e = keys
if b and e:
    print("## Memory per key")
    print()
    print("%s keys `bench/kNNNNNN` with %d-byte values, loaded in Txns of 128 Puts over 16"
          " connections; RSS 3 s after the load against the idle server's, over the keys"
          " a count-only Range finds. Anonymous memory is the heap; file-backed is mapped"
          " files (etcd's bbolt database is an mmap; Beacon maps none, its values are in"
          " fjall's files and the page cache). Disk is the data dir's allocated blocks." % (
              num(b["keys"]), b["value_bytes"]))
    print()
    table([
        ("keys loaded", "keys", 0),
        ("load rate, keys/s", "keys_per_sec", 0),
        ("server CPU per key loaded, µs", "load_cpu_us_per_key", 2),
        ("server RSS per key, bytes", "rss_bytes_per_key", 0),
        ("  anonymous, bytes", "anon_bytes_per_key", 0),
        ("  file-backed, bytes", "file_bytes_per_key", 0),
        ("server RSS loaded, KiB", "rss_loaded_kib", 0),
        ("disk per key, bytes", "disk_bytes_per_key", 0),
    ], b, e)

LEASE_ROWS = [
    ("leases granted (with a key each)", "leases", 0),
    ("TTL, s", "ttl_s", 0),
    ("grant rate (and key Txns), leases/s", "grants_per_sec", 0),
    ("server CPU per lease granted, µs", "grant_server_cpu_us_per_lease", 1),
    ("server RSS per lease and its key, bytes", "rss_bytes_per_lease", 0),
    ("deadlines spread over, s", "deadline_spread_s", 2),
    ("all gone, s after the first deadline", "gone_after_first_deadline_s", 2),
    ("all gone, s after the last deadline", "gone_after_last_deadline_s", 2),
    ("largest lag behind a deadline (bound), s", "max_lag_s", 2),
    ("server held stopped, s", "held_s", 1),
    ("leases due before the hold (not at once)", "due_before_hold", 0),
    ("probes failed (timed out over the hold)", "probe_errors", 0),
    ("peak revokes/s (over 1 s)", "peak_revokes_per_sec", 0),
    ("all gone within the wait", "all_gone", 0),
    ("server CPU from the first deadline to the end, s", "expiry_server_cpu_s", 2),
    ("probe before expiry (from 1 s after the grants): p99 / max, ms", None, 0),
    ("probe during expiry: p50 ms", "probe_during_p50_ms", 1),
    ("probe during expiry: p99 ms", "probe_during_p99_ms", 1),
    ("probe during expiry: max ms", "probe_during_max_ms", 1),
]


def lease_rows(b, e):
    rows = []
    for label, field, digits in LEASE_ROWS:
        if field is None:
            bv = "%.1f / %.1f" % (b["probe_before_p99_ms"], b["probe_before_max_ms"])
            ev = e and "%.1f / %.1f" % (e["probe_before_p99_ms"], e["probe_before_max_ms"])
            rows.append((label, bv, ev, ""))
            continue
        # No probe finished inside a window shorter than one probe: nothing to show.
        none = lambda r: r is None or (field.startswith("probe_during") and r["probe_during_n"] == 0)
        bv = None if none(b) else b.get(field)
        ev = None if none(e) else e.get(field)
        r = "" if isinstance(bv, bool) or e is None else ratio(bv, ev)
        rows.append((label, num(bv, digits), num(ev, digits) if e else None, r))
    return rows


print("## Leases expiring together")
print()
print("Leases of one TTL granted over 64 connections (256 for the large run), each worker"
      " attaching a key to each of its leases in one Txn per 128; then a count-only"
      " Range of the keys every 100 ms until none is left, while a probe Puts and"
      " Ranges another key (20 ms apart). A lease's deadline is its grant's send time"
      " plus the TTL; the largest lag is an upper bound: the leases gone between two"
      " polls were gone by the later poll's answer, the earliest of them due at its"
      " deadline (both servers revoke earliest first). \"All due at once\" runs hold"
      " the server stopped (SIGSTOP) from a second before the first deadline until the"
      " last has passed, and count every lag from its resumption: what a grant rate far"
      " above N / TTL would give; probes that were in flight over the hold are left out. etcd revokes at most 1,000 expired leases a second by design"
      " (`leaseRevokeRate`), so both servers get the smaller count; Beacon alone the"
      " large one.")
print()
for (b, e), how in ((leases, "as granted"), (leases_burst, "all due at once")):
    if b and e:
        print("### %s leases, both servers, %s" % (num(b["leases"]), how))
        print()
        print("| | Beacon | etcd | Beacon ÷ etcd |")
        print("|---|---|---|---|")
        for label, bv, ev, r in lease_rows(b, e):
            print("| %s | %s | %s | %s |" % (label, bv, ev, r))
        print()
for run, how in ((big, "as granted"), (big_burst, "all due at once")):
    if run:
        print("### %s leases, Beacon alone, %s" % (num(run["leases"]), how))
        print()
        print("| | Beacon |")
        print("|---|---|")
        for label, bv, _, _ in lease_rows(run, None):
            print("| %s | %s |" % (label, bv))
        print()
