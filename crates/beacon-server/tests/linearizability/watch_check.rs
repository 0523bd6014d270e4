//! The watch checker of the v3 run: a watcher on the run's keys, from the first
//! revision, with `prev_kv`, on one member for the whole run (resuming on another from
//! its last revision if the stream breaks). What it heard must be in revision order,
//! each revision whole in one answer, without duplicates, with each event's `prev_kv`
//! the key's previous value, and, once the cluster has converged, exactly the history a
//! fresh watcher reads back from the first revision: no gaps.

use std::time::{Duration, Instant};

use beacon_proto::etcdserverpb::watch_client::WatchClient;
use beacon_proto::etcdserverpb::watch_request::RequestUnion;
use beacon_proto::etcdserverpb::{WatchCreateRequest, WatchRequest};
use beacon_proto::mvccpb::event::EventType;
use beacon_proto::mvccpb::Event;
use tonic::transport::Channel;

/// The events heard, each with the number of the answer it came in.
pub type Heard = Vec<(usize, Event)>;

async fn open(
    base: &str,
    from: i64,
) -> Option<tonic::Streaming<beacon_proto::etcdserverpb::WatchResponse>> {
    let channel = Channel::from_shared(base.to_string())
        .ok()?
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .ok()?;
    let create = WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: b"lin/".to_vec(),
            range_end: b"lin0".to_vec(),
            start_revision: from,
            prev_kv: true,
            ..WatchCreateRequest::default()
        })),
    };
    // The create is the stream's first and only request; the stream stays open.
    let requests = futures_util::stream::iter([create]).chain(futures_util::stream::pending());
    let stream = WatchClient::new(channel).watch(requests).await.ok()?;
    Some(stream.into_inner())
}

use futures_util::StreamExt;

/// Watches until `until`, then until it has heard revision `last()` (when that says
/// one), within `deadline`.
pub async fn watch(
    bases: Vec<String>,
    until: Instant,
    last: tokio::sync::watch::Receiver<Option<i64>>,
    deadline: Instant,
) -> Heard {
    let mut heard = Vec::new();
    let mut answers = 0;
    let mut next = 1;
    let mut member = 0;
    while Instant::now() < deadline {
        let done = |next: i64| Instant::now() >= until && last.borrow().is_some_and(|l| next > l);
        if done(next) {
            break;
        }
        let Some(mut stream) = open(&bases[member % bases.len()], next).await else {
            member += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        loop {
            if done(next) || Instant::now() >= deadline {
                return heard;
            }
            let message = tokio::time::timeout(Duration::from_millis(500), stream.message()).await;
            match message {
                Err(_) => continue,
                Ok(Ok(Some(answer))) => {
                    answers += 1;
                    for event in answer.events {
                        if let Some(kv) = &event.kv {
                            next = next.max(kv.mod_revision + 1);
                        }
                        heard.push((answers, event));
                    }
                }
                // The stream broke: on to the next member, from where it was.
                Ok(_) => {
                    member += 1;
                    break;
                }
            }
        }
    }
    heard
}

/// What is wrong with `heard`, against `reference` (the whole history, read back).
pub fn problems(heard: &Heard, reference: &[Event]) -> Vec<String> {
    let mut problems = Vec::new();
    let rev = |e: &Event| e.kv.as_ref().map_or(0, |kv| kv.mod_revision);
    // Order, and each revision in one answer.
    for pair in heard.windows(2) {
        let ((a_answer, a), (b_answer, b)) = (&pair[0], &pair[1]);
        if rev(b) < rev(a) {
            problems.push(format!("revision {} after {}", rev(b), rev(a)));
        }
        if rev(b) == rev(a) && a_answer != b_answer {
            problems.push(format!("revision {} split over two answers", rev(a)));
        }
    }
    // prev_kv: the key's previous event's value, or none after a delete or at first.
    let mut last: std::collections::HashMap<Vec<u8>, Event> = std::collections::HashMap::new();
    for (_, e) in heard {
        let Some(kv) = &e.kv else {
            problems.push("an event without a key".into());
            continue;
        };
        let expected = last
            .get(&kv.key)
            .filter(|p| p.r#type == EventType::Put as i32)
            .and_then(|p| p.kv.clone());
        if e.prev_kv != expected {
            problems.push(format!(
                "revision {}: prev_kv {:?}, the previous event says {:?}",
                kv.mod_revision, e.prev_kv, expected
            ));
        }
        last.insert(kv.key.clone(), e.clone());
    }
    // No gap and no duplicate: exactly the history.
    let events: Vec<&Event> = heard.iter().map(|(_, e)| e).collect();
    if events.len() != reference.len() || events.iter().zip(reference).any(|(a, b)| *a != b) {
        let first = events
            .iter()
            .zip(reference)
            .position(|(a, b)| *a != b)
            .unwrap_or(events.len().min(reference.len()));
        problems.push(format!(
            "heard {} events, the history has {}; first difference at {first}",
            events.len(),
            reference.len()
        ));
    }
    problems
}

/// The whole history of the run's keys, read back by a fresh watcher on `base` up to
/// revision `last`.
pub async fn reference(base: &str, last: i64) -> Vec<Event> {
    let mut stream = open(base, 1).await.expect("a watch for the history");
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while events
        .last()
        .and_then(|e: &Event| e.kv.as_ref())
        .is_none_or(|kv| kv.mod_revision < last)
    {
        assert!(
            Instant::now() < deadline,
            "the history is not read back in time"
        );
        let answer = tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .expect("history in time")
            .expect("open")
            .expect("an answer");
        events.extend(answer.events);
    }
    events
}
