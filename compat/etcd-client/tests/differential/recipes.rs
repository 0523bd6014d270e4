//! Lock and Election: etcd-client's `lock`, `unlock`, `campaign`, `proclaim`, `leader`,
//! `observe` and `resign`, which call etcd's Lock and Election services. Calls that
//! wait run on tasks of their own; a script moves on once the keyspace shows the
//! waiter's key, and checks that the call has not answered yet. Leases are granted
//! with ids of the script's choosing, so waiters' keys (`<name>/<lease in hex>`) are
//! the same on both servers.

use std::time::{Duration, Instant};

use etcd_client::{
    Client, LeaseGrantOptions, LockOptions, ObserveStream, ProclaimOptions, ResignOptions,
};
use tokio::task::JoinHandle;

use crate::{answer, same_answers};

/// How long a script waits for what another call must make happen.
const DEADLINE: Duration = Duration::from_secs(10);
/// How long a call that must keep waiting is watched not to answer.
const STILL_WAITING: Duration = Duration::from_millis(300);

async fn grant(c: &mut Client, ids: &[i64]) -> Vec<String> {
    let mut out = Vec::new();
    for &id in ids {
        let with_id = Some(LeaseGrantOptions::new().with_id(id));
        out.push(answer(c.lease_grant(60, with_id).await));
    }
    out
}

/// Waits until `key` exists (or, with `present` false, is gone).
async fn until_key(c: &mut Client, key: &str, present: bool) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let found = c.get(key, None).await.expect("get").count() > 0;
        if found == present {
            return format!("{key} present: {present}");
        }
        assert!(Instant::now() < deadline, "{key} never present: {present}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether a call on its own task still has not answered after [`STILL_WAITING`].
async fn still_waiting(call: &mut JoinHandle<String>) -> String {
    match tokio::time::timeout(STILL_WAITING, &mut *call).await {
        Ok(answer) => format!("answered early: {answer:?}"),
        Err(_) => "still waiting".into(),
    }
}

/// A call's answer on its own task, within [`DEADLINE`].
async fn answered(call: JoinHandle<String>) -> String {
    tokio::time::timeout(DEADLINE, call)
        .await
        .expect("the waiting call answers")
        .expect("its task")
}

fn spawn_lock(c: &Client, name: &'static str, lease: i64) -> JoinHandle<String> {
    let mut c = c.clone();
    let options = Some(LockOptions::new().with_lease(lease));
    tokio::spawn(async move { answer(c.lock(name, options).await) })
}

fn spawn_campaign(
    c: &Client,
    name: &'static str,
    value: &'static str,
    lease: i64,
) -> JoinHandle<String> {
    let mut c = c.clone();
    tokio::spawn(async move { answer(c.campaign(name, value, lease).await) })
}

/// What an observer hears next, within [`DEADLINE`].
async fn observed(observer: &mut ObserveStream) -> String {
    let heard = tokio::time::timeout(DEADLINE, observer.message())
        .await
        .expect("the observer hears something");
    match heard {
        Ok(Some(leader)) => answer(Ok(leader)),
        Ok(None) => "the stream ended".into(),
        Err(e) => answer(Err::<(), _>(e)),
    }
}

#[tokio::test]
async fn locks_wait_their_turn_and_give_their_key_back() {
    same_answers(|mut c: Client| async move {
        let mut out = grant(&mut c, &[0xa1, 0xb2, 0xc3]).await;
        let with_lease = |lease| Some(LockOptions::new().with_lease(lease));
        out.push(answer(c.lock("lk", with_lease(0xa1)).await));
        // The same lease again: the same key, already held.
        out.push(answer(c.lock("lk", with_lease(0xa1)).await));
        let mut second = spawn_lock(&c, "lk", 0xb2);
        out.push(until_key(&mut c, "lk/b2", true).await);
        out.push(still_waiting(&mut second).await);
        out.push(answer(c.unlock("lk/a1").await));
        out.push(answered(second).await);
        // A cancelled lock takes its key back.
        let third = spawn_lock(&c, "lk", 0xc3);
        out.push(until_key(&mut c, "lk/c3", true).await);
        third.abort();
        out.push(until_key(&mut c, "lk/c3", false).await);
        // The holder's lease goes: the next one holds the lock.
        let mut fourth = spawn_lock(&c, "lk", 0xa1);
        out.push(until_key(&mut c, "lk/a1", true).await);
        out.push(still_waiting(&mut fourth).await);
        out.push(answer(c.lease_revoke(0xb2).await));
        out.push(answered(fourth).await);
        // Refusals, and a lock without a lease (its key names a lease the server chose).
        out.push(answer(c.lock("lk", with_lease(0x999)).await));
        out.push(answer(c.unlock("").await));
        out.push(answer(c.unlock("lk/nothing").await));
        let free = c.lock("free", None).await.expect("a lock without a lease");
        let key = String::from_utf8_lossy(free.key()).into_owned();
        out.push(format!(
            "free lock key under free/: {}",
            key.starts_with("free/")
        ));
        out.push(answer(c.unlock(key).await));
        out
    })
    .await;
}

#[tokio::test]
async fn campaigns_proclamations_observers_and_resignations() {
    same_answers(|mut c: Client| async move {
        let mut out = grant(&mut c, &[0xa1, 0xb2, 0xc3, 0xd4]).await;
        out.push(answer(c.leader("el").await));
        // etcd sends an Observe call's headers with its first leader: `observe` returns
        // only once there is one.
        let mut opening = {
            let mut c = c.clone();
            tokio::spawn(async move {
                let mut observer = c.observe("el").await.expect("observe");
                observed(&mut observer).await
            })
        };
        out.push(still_waiting(&mut opening).await);
        let first = c.campaign("el", "a", 0xa1).await;
        let leader = first.as_ref().ok().and_then(|r| r.leader().cloned());
        out.push(answer(first));
        let leader = leader.expect("a leader key");
        out.push(answered(opening).await);
        let mut observer = c.observe("el").await.expect("observe");
        out.push(observed(&mut observer).await);
        out.push(answer(c.leader("el").await));
        let as_leader = || Some(ProclaimOptions::new().with_leader(leader.clone()));
        out.push(answer(c.proclaim("a2", as_leader()).await));
        out.push(observed(&mut observer).await);
        let stale = leader.clone().with_rev(leader.rev() + 1);
        let not_leader = Some(ProclaimOptions::new().with_leader(stale.clone()));
        out.push(answer(c.proclaim("stale", not_leader).await));
        out.push(answer(c.proclaim("nobody", None).await));
        out.push(answer(c.resign(None).await));
        // A second campaigner waits until the first resigns.
        let mut second = spawn_campaign(&c, "el", "b", 0xb2);
        out.push(until_key(&mut c, "el/b2", true).await);
        out.push(still_waiting(&mut second).await);
        let stale = Some(ResignOptions::new().with_leader(stale));
        out.push(answer(c.resign(stale).await));
        let resign = Some(ResignOptions::new().with_leader(leader));
        out.push(answer(c.resign(resign).await));
        out.push(answered(second).await);
        out.push(observed(&mut observer).await);
        out.push(answer(c.leader("el").await));
        // A cancelled campaign takes its key back.
        let third = spawn_campaign(&c, "el", "c", 0xc3);
        out.push(until_key(&mut c, "el/c3", true).await);
        third.abort();
        out.push(until_key(&mut c, "el/c3", false).await);
        // The leader's lease goes: the next campaigner leads, and the observer sees it.
        let mut fourth = spawn_campaign(&c, "el", "d", 0xd4);
        out.push(until_key(&mut c, "el/d4", true).await);
        out.push(still_waiting(&mut fourth).await);
        out.push(answer(c.lease_revoke(0xb2).await));
        out.push(answered(fourth).await);
        out.push(observed(&mut observer).await);
        out.push(answer(c.campaign("el", "x", 0x999).await));
        out
    })
    .await;
}
