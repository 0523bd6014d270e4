//! Watch: creation (ids, empty ranges, filters, start revisions in the past, the future
//! and before the compaction), events with and without `prev_kv`, cancels, progress
//! requests, and a revision too large for one answer, fragmented or not.
//!
//! Every step says how many answers it waits for, each within a deadline, so nothing
//! depends on timing; where several watchers hear of one revision, the order in which
//! they do is not defined (etcd's follows a Go map), so those answers compare sorted.

use std::time::Duration;

use etcd_client::{
    Client, DeleteOptions, Event, EventType, GetOptions, KeyValue, LeaseGrantOptions, PutOptions,
    Txn, TxnOp, WatchFilterType, WatchOptions, WatchResponse, WatchStream,
};

use crate::{answer, same_answers};

const ANSWER_DEADLINE: Duration = Duration::from_secs(10);

/// Reads `n` answers from `stream`, each within [`ANSWER_DEADLINE`], labelled `step`.
async fn next(stream: &mut WatchStream, step: &str, n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let outcome = tokio::time::timeout(ANSWER_DEADLINE, stream.message())
            .await
            .unwrap_or_else(|_| panic!("{step}: answer {i} of {n} not there in time"));
        out.push(format!("{step}: {}", answer(outcome)));
    }
    out
}

/// [`next`], sorted: answers to several watchers about the same revisions.
async fn next_sorted(stream: &mut WatchStream, step: &str, n: usize) -> Vec<String> {
    let mut out = next(stream, step, n).await;
    out.sort();
    out
}

/// Opens a stream with its first watcher and reads that watcher's creation: etcd-client's
/// `watch` returns once the stream's headers come, and grpc-go sends them with that answer.
async fn open(c: &mut Client, key: &str, options: WatchOptions) -> (WatchStream, Vec<String>) {
    let mut stream = c.watch(key, Some(options)).await.expect("watch stream");
    let created = next(&mut stream, "open", 1).await;
    (stream, created)
}

#[tokio::test]
async fn creates_events_prev_kv_filters_and_cancels() {
    same_answers(|mut c: Client| async move {
        let mut out = vec![
            answer(c.put("a", "1", None).await),
            answer(c.put("b", "2", None).await),
            answer(c.put("a", "3", None).await),
            answer(
                c.txn(
                    Txn::new()
                        .and_then([TxnOp::put("c/1", "x", None), TxnOp::put("c/2", "y", None)]),
                )
                .await,
            ),
            answer(
                c.delete("c/", Some(DeleteOptions::new().with_prefix()))
                    .await,
            ),
        ];
        // Revision 6 is current. A watcher on everything from revision 1, with prev_kv:
        // created, then the history in one catch-up answer.
        let (mut s, created) = open(
            &mut c,
            "",
            WatchOptions::new()
                .with_all_keys()
                .with_start_revision(1)
                .with_prev_key(),
        )
        .await;
        out.extend(created);
        out.extend(next(&mut s, "catch-up", 1).await);
        // Filters, from the past.
        s.watch(
            "a",
            Some(
                WatchOptions::new()
                    .with_from_key()
                    .with_start_revision(2)
                    .with_filters([WatchFilterType::NoPut]),
            ),
        )
        .await
        .expect("sent");
        out.extend(next(&mut s, "no-put", 2).await);
        s.watch(
            "c/",
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(1)
                    .with_filters([WatchFilterType::NoDelete]),
            ),
        )
        .await
        .expect("sent");
        out.extend(next(&mut s, "no-delete", 2).await);
        // Ids: one chosen, the same again, then an empty range.
        let chosen = WatchOptions::new().with_watch_id(7);
        s.watch("zzz", Some(chosen.clone())).await.expect("sent");
        out.extend(next(&mut s, "chosen id", 1).await);
        s.watch("zzz", Some(chosen)).await.expect("sent");
        out.extend(next(&mut s, "duplicate id", 1).await);
        s.watch("b", Some(WatchOptions::new().with_range("a")))
            .await
            .expect("sent");
        out.extend(next(&mut s, "empty range", 1).await);
        // A start revision in the future: nothing until it comes.
        s.watch("f", Some(WatchOptions::new().with_start_revision(8)))
            .await
            .expect("sent");
        out.extend(next(&mut s, "future", 1).await);
        // Cancels: a known id is answered, an unknown one is not (the progress answer
        // is the next one), and a cancelled watcher hears nothing more.
        s.cancel(7).await.expect("sent");
        out.extend(next(&mut s, "cancel 7", 1).await);
        s.cancel(99).await.expect("sent");
        s.request_progress().await.expect("sent");
        out.extend(next(&mut s, "cancel 99, progress", 1).await);
        // Live, with prev_kv: one answer for each watcher that wants the revision.
        s.watch("a", Some(WatchOptions::new().with_prev_key()))
            .await
            .expect("sent");
        out.extend(next(&mut s, "live", 1).await);
        out.push(answer(c.put("a", "4", None).await));
        // The watcher on everything and the live one (the no-put one filters it).
        out.extend(next_sorted(&mut s, "put a", 2).await);
        out.push(answer(c.put("f", "1", None).await));
        // Revision 8: everything, and the one waiting for it.
        out.extend(next_sorted(&mut s, "put f", 2).await);
        out.push(answer(
            c.delete("a", Some(DeleteOptions::new().with_prev_key()))
                .await,
        ));
        // Everything, no-put (a delete), the live one.
        out.extend(next_sorted(&mut s, "delete a", 3).await);
        out.push(answer(
            c.txn(
                Txn::new().and_then([TxnOp::put("c/3", "z", None), TxnOp::put("zzz", "1", None)]),
            )
            .await,
        ));
        // Everything and no-delete; zzz's watcher was cancelled.
        out.extend(next_sorted(&mut s, "txn", 2).await);
        s.request_progress().await.expect("sent");
        out.extend(next(&mut s, "progress", 1).await);
        out
    })
    .await;
}

#[tokio::test]
async fn compaction_cancels_watchers_that_start_before_it() {
    same_answers(|mut c: Client| async move {
        let mut out = Vec::new();
        for i in 0..6 {
            out.push(answer(c.put("k", format!("{i}"), None).await));
        }
        out.push(answer(c.compact(5, None).await));
        // Before the compacted revision: created, then cancelled with it.
        let (mut s, created) = open(
            &mut c,
            "k",
            WatchOptions::new().with_start_revision(2).with_prev_key(),
        )
        .await;
        out.extend(created);
        out.extend(next(&mut s, "compacted", 1).await);
        // At it and after it: its history.
        s.watch("k", Some(WatchOptions::new().with_start_revision(5)))
            .await
            .expect("sent");
        out.extend(next(&mut s, "at compaction", 2).await);
        s.watch(
            "k",
            Some(WatchOptions::new().with_start_revision(6).with_prev_key()),
        )
        .await
        .expect("sent");
        out.extend(next(&mut s, "after compaction", 2).await);
        // On a stream of its own, a watcher from revision 1.
        let (mut s2, created) = open(
            &mut c,
            "",
            WatchOptions::new().with_all_keys().with_start_revision(1),
        )
        .await;
        out.extend(created);
        out.extend(next(&mut s2, "from 1", 1).await);
        out.push(answer(c.compact(7, None).await));
        s.watch("k", Some(WatchOptions::new().with_start_revision(6)))
            .await
            .expect("sent");
        out.extend(next(&mut s, "after second compaction", 2).await);
        s.request_progress().await.expect("sent");
        out.extend(next(&mut s, "progress", 1).await);
        out
    })
    .await;
}

#[tokio::test]
async fn progress_requests_and_progress_notify_watchers() {
    same_answers(|mut c: Client| async move {
        let mut out = Vec::new();
        let (mut s, created) = open(&mut c, "p", WatchOptions::new().with_progress_notify()).await;
        out.extend(created);
        // Answered with watch id -1 and the current revision, with or without writes.
        s.request_progress().await.expect("sent");
        out.extend(next(&mut s, "progress at 1", 1).await);
        out.push(answer(c.put("other", "1", None).await));
        s.request_progress().await.expect("sent");
        out.extend(next(&mut s, "progress at 2", 1).await);
        out.push(answer(c.put("p", "1", None).await));
        out.extend(next(&mut s, "event", 1).await);
        s.request_progress().await.expect("sent");
        s.request_progress().await.expect("sent");
        out.extend(next(&mut s, "two progress requests", 2).await);
        // A stream whose watchers are all cancelled still answers.
        s.cancel(0).await.expect("sent");
        out.extend(next(&mut s, "cancel", 1).await);
        s.request_progress().await.expect("sent");
        out.extend(next(&mut s, "progress without watchers", 1).await);
        out
    })
    .await;
}

/// Keys in one revision whose events (with their previous values) are well over the
/// 2 MiB of an answer (etcd's request limit plus its gRPC overhead), but under the
/// library's 4 MiB without them.
const BIG_KEYS: usize = 300;
const BIG_VALUE_BYTES: usize = 10_000;

/// A large answer in a line: which watcher, which revision, which events, whether a
/// fragment (more pieces follow) or the whole answer or its last piece.
fn summary(got: &WatchResponse) -> String {
    let events = got.events();
    let count = |t: EventType| events.iter().filter(|e| e.event_type() == t).count();
    let key = |e: Option<&Event>| {
        e.and_then(|e| e.kv())
            .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
    };
    let bytes = |kv: Option<&KeyValue>| kv.map_or(0, |kv| kv.value().len());
    let values: usize = events.iter().map(|e| bytes(e.kv())).sum();
    let prev_values: usize = events.iter().map(|e| bytes(e.prev_kv())).sum();
    // The library has no accessor for `fragment`; its Debug shows every field.
    let fragment = format!("{got:?}").contains("fragment: true");
    format!(
        "watch {} revision {:?}: {} puts, {} deletes, {:?} to {:?}, values {values} B, \
         previous values {prev_values} B, {}",
        got.watch_id(),
        got.header().map(|h| h.revision()),
        count(EventType::Put),
        count(EventType::Delete),
        key(events.first()),
        key(events.last()),
        if fragment {
            "fragment"
        } else {
            "whole or last"
        },
    )
}

/// Reads answers until `done` says the ones read so far are all, at most 16.
async fn summaries(
    stream: &mut WatchStream,
    step: &str,
    done: impl Fn(&[(i64, String)]) -> bool,
) -> Vec<(i64, String)> {
    let mut read = Vec::new();
    while !done(&read) {
        assert!(read.len() < 16, "{step}: too many answers: {read:#?}");
        let got = tokio::time::timeout(ANSWER_DEADLINE, stream.message())
            .await
            .unwrap_or_else(|_| panic!("{step}: no answer in time after {read:#?}"))
            .expect("the stream is open")
            .expect("an answer");
        read.push((got.watch_id(), format!("{step}: {}", summary(&got))));
    }
    read
}

#[tokio::test]
async fn a_large_revision_is_fragmented_only_when_asked() {
    same_answers(|mut c: Client| async move {
        let mut out = Vec::new();
        let (mut s, created) = open(
            &mut c,
            "big/",
            WatchOptions::new()
                .with_prefix()
                .with_prev_key()
                .with_fragment(),
        )
        .await;
        out.extend(created);
        // Without prev_kv, the deletes are small: one answer, fragments asked or not.
        s.watch(
            "big/",
            Some(WatchOptions::new().with_prefix().with_fragment()),
        )
        .await
        .expect("sent");
        out.extend(next(&mut s, "small", 1).await);
        s.watch("big/", Some(WatchOptions::new().with_prefix()))
            .await
            .expect("sent");
        out.extend(next(&mut s, "whole", 1).await);
        // Each watcher's answers in order, the watchers in the order of their ids.
        let by_watcher = |mut read: Vec<(i64, String)>| {
            read.sort_by_key(|(id, _)| *id);
            read.into_iter().map(|(_, s)| s)
        };
        // Three revisions of 100 puts each (a request is at most 1.5 MiB).
        for chunk in 0..3u8 {
            let puts: Vec<TxnOp> = (0..BIG_KEYS / 3)
                .map(|i| {
                    let key = format!("big/{chunk}{i:03}");
                    TxnOp::put(key, vec![b'0' + chunk; BIG_VALUE_BYTES], None)
                })
                .collect();
            let put = c.txn(Txn::new().and_then(puts)).await;
            out.push(format!("puts {chunk}: {:?}", put.map(|r| r.succeeded())));
            let read = summaries(&mut s, &format!("puts {chunk}"), |r| r.len() == 3).await;
            out.extend(by_watcher(read));
        }
        // One revision deletes them all: the prev_kv watcher's answer comes in pieces.
        let deleted = c
            .delete("big/", Some(DeleteOptions::new().with_prefix()))
            .await
            .map(|r| r.deleted());
        out.push(format!("delete: {deleted:?}"));
        let read = summaries(&mut s, "delete", |r| {
            let last_piece = r
                .iter()
                .any(|(id, s)| *id == 0 && s.ends_with("whole or last"));
            last_piece && r.iter().filter(|(id, _)| *id != 0).count() == 2
        })
        .await;
        out.extend(by_watcher(read));
        // A small revision after it: one answer each again.
        out.push(answer(
            c.put("big/z", "1", Some(PutOptions::new().with_prev_key()))
                .await,
        ));
        out.extend(next_sorted(&mut s, "after", 3).await);
        out.push(answer(
            c.get(
                "big/",
                Some(GetOptions::new().with_prefix().with_count_only()),
            )
            .await,
        ));
        out
    })
    .await;
}

#[tokio::test]
async fn a_revoked_lease_deletes_its_keys_in_one_revision() {
    same_answers(|mut c: Client| async move {
        let mut out = vec![answer(
            c.lease_grant(60, Some(LeaseGrantOptions::new().with_id(500)))
                .await,
        )];
        let leased = || Some(PutOptions::new().with_lease(500));
        out.extend([
            answer(c.put("r/a", "1", leased()).await),
            answer(c.put("r/b", "2", leased()).await),
            answer(c.put("r/c", "3", None).await),
        ]);
        let (mut s, created) = open(
            &mut c,
            "r/",
            WatchOptions::new().with_prefix().with_prev_key(),
        )
        .await;
        out.extend(created);
        out.push(answer(c.lease_revoke(500).await));
        out.extend(next(&mut s, "revoked", 1).await);
        // A put with a lease that is gone, on the watched range: refused, no event.
        out.push(answer(c.put("r/d", "4", leased()).await));
        s.request_progress().await.expect("sent");
        out.extend(next(&mut s, "progress", 1).await);
        out
    })
    .await;
}
