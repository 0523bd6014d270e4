//! etcd's `Election` and `Lock` services through a Rust gRPC client: the same story of
//! calls against a fresh etcd 3.4 and a fresh Beacon must answer the same, response for
//! response and refusal for refusal, with the same keys left behind, once the member's
//! ids and Raft term are blanked. Both keyspaces start at revision 1 and count every
//! write alike, so revisions compare as they are; leases are granted with ids of the
//! story's choosing, so the waiters' keys (`<name>/<lease in hex>`) are the same too.
//! Calls that wait run on tasks of their own; a story moves on once the keyspace shows
//! what it waits for (a waiter's key), within a deadline.

#[path = "../support/mod.rs"]
mod support;

mod bounds;
mod members;
mod stories;
mod story;

#[tokio::test]
async fn locks_answer_as_etcds() {
    if let Some((want, got)) = support::told_by_both(stories::lock_story).await {
        beacon_testkit::assert_same_answers(&want, &got);
    }
}

#[tokio::test]
async fn elections_answer_as_etcds() {
    if let Some((want, got)) = support::told_by_both(stories::election_story).await {
        beacon_testkit::assert_same_answers(&want, &got);
    }
}
