//! Leases: grants at the edges of the TTL range, ids chosen and duplicated, keep-alives,
//! time-to-live and revocation of known and unknown leases, and a revoked lease's keys.
//!
//! A lease's remaining time is read a moment after its grant, so it may be a second
//! short of its TTL on a slow run: remaining times are compared as "full" when within
//! two seconds of the granted TTL, and exactly otherwise (-1 and 0 mean something).

use etcd_client::{
    Client, GetOptions, LeaseGrantOptions, LeaseTimeToLiveOptions, LeaseTimeToLiveResponse,
    PutOptions,
};

use crate::{answer, blank, same_answers};

const TIME_TO_LIVE_SLACK_S: i64 = 2;

/// A time-to-live answer with its remaining time made comparable (see the module doc).
fn time_to_live(outcome: Result<LeaseTimeToLiveResponse, etcd_client::Error>) -> String {
    match outcome {
        Ok(r) => {
            let remaining = match r.ttl() {
                t if t > 0 && r.granted_ttl() - t <= TIME_TO_LIVE_SLACK_S => "full".to_string(),
                t => t.to_string(),
            };
            let mut keys = r.keys().to_vec();
            keys.sort();
            blank(format!(
                "ok id {} remaining {remaining} granted {} keys {keys:?} header {:?}",
                r.id(),
                r.granted_ttl(),
                r.header()
            ))
        }
        Err(e) => answer(Err::<(), _>(e)),
    }
}

#[tokio::test]
async fn grants_revokes_and_time_to_live() {
    same_answers(|mut c: Client| async move {
        let id = |id| Some(LeaseGrantOptions::new().with_id(id));
        let with_keys = || Some(LeaseTimeToLiveOptions::new().with_keys());
        let mut out = vec![
            // Below the minimum TTL (2 s with etcd's default timing): raised to it.
            answer(c.lease_grant(1, id(101)).await),
            answer(c.lease_grant(0, id(102)).await),
            answer(c.lease_grant(-3, id(103)).await),
            time_to_live(c.lease_time_to_live(101, None).await),
            answer(c.lease_revoke(101).await),
            answer(c.lease_revoke(102).await),
            answer(c.lease_revoke(103).await),
            // The largest TTL, and one more.
            answer(c.lease_grant(9_000_000_000, id(104)).await),
            answer(c.lease_grant(9_000_000_001, id(105)).await),
            answer(c.lease_revoke(104).await),
            // An id twice, a negative id.
            answer(c.lease_grant(60, id(200)).await),
            answer(c.lease_grant(60, id(200)).await),
            answer(c.lease_grant(30, id(-5)).await),
            // Keys on the lease, one of them later detached by a put without it.
            answer(
                c.put("l/a", "1", Some(PutOptions::new().with_lease(200)))
                    .await,
            ),
            answer(
                c.put("l/b", "1", Some(PutOptions::new().with_lease(200)))
                    .await,
            ),
            answer(
                c.put("l/c", "1", Some(PutOptions::new().with_lease(200)))
                    .await,
            ),
            answer(c.put("l/c", "2", None).await),
            time_to_live(c.lease_time_to_live(200, None).await),
            time_to_live(c.lease_time_to_live(200, with_keys()).await),
            // Unknown leases: time-to-live answers -1, revoke refuses.
            time_to_live(c.lease_time_to_live(999, None).await),
            time_to_live(c.lease_time_to_live(999, with_keys()).await),
            answer(c.lease_revoke(999).await),
            answer(c.lease_revoke(0).await),
            answer(c.lease_revoke(-5).await),
        ];
        let mut leases: Vec<i64> = c
            .leases()
            .await
            .expect("leases")
            .leases()
            .iter()
            .map(|l| l.id())
            .collect();
        leases.sort();
        out.push(format!("leases {leases:?}"));
        out.extend([
            answer(c.lease_revoke(200).await),
            answer(c.lease_revoke(200).await),
            time_to_live(c.lease_time_to_live(200, with_keys()).await),
            answer(c.get("l/", Some(GetOptions::new().with_prefix())).await),
            answer(
                c.put("l/d", "1", Some(PutOptions::new().with_lease(200)))
                    .await,
            ),
        ]);
        out
    })
    .await;
}

#[tokio::test]
async fn a_lease_id_the_server_picks() {
    same_answers(|mut c: Client| async move {
        let granted = c.lease_grant(30, None).await.expect("grant");
        let id = granted.id();
        // The id is the server's own: named, not compared.
        let name = |text: String| text.replace(&id.to_string(), "<id>");
        vec![
            name(answer(Ok::<_, etcd_client::Error>(granted))),
            name(answer(
                c.put("auto", "1", Some(PutOptions::new().with_lease(id)))
                    .await,
            )),
            name(time_to_live(
                c.lease_time_to_live(id, Some(LeaseTimeToLiveOptions::new().with_keys()))
                    .await,
            )),
            name(answer(c.get("auto", None).await)),
            name(answer(c.lease_revoke(id).await)),
            name(answer(c.get("auto", None).await)),
        ]
    })
    .await;
}

#[tokio::test]
async fn keep_alives_of_known_revoked_and_unknown_leases() {
    same_answers(|mut c: Client| async move {
        let mut out = vec![answer(
            c.lease_grant(60, Some(LeaseGrantOptions::new().with_id(300)))
                .await,
        )];
        // The library reads the first answer itself and refuses a lease it says is gone.
        out.push(answer(c.lease_keep_alive(999).await.map(|_| ())));
        let (mut keeper, mut answers) = c.lease_keep_alive(300).await.expect("keep-alive");
        out.push(format!("keeper for {}", keeper.id()));
        keeper.keep_alive().await.expect("sent");
        out.push(answer(answers.message().await));
        // Revoked: the same stream answers TTL 0.
        out.push(answer(c.lease_revoke(300).await));
        keeper.keep_alive().await.expect("sent");
        out.push(answer(answers.message().await));
        keeper.keep_alive().await.expect("sent");
        out.push(answer(answers.message().await));
        out
    })
    .await;
}
