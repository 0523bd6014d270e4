//! Registration and discovery against real registries (Beacon, and etcd 3.4 when
//! installed): instances come and go, refreshes make no noise, a history gap is bridged
//! by a re-list, a member failover and a registry outage lose nothing.

mod support;

use std::time::Duration;

use beacon_client::{
    DeleteOptions, Discovery, DiscoveryConfig, InstanceInfo, Registration, RegistrationConfig,
    SetOptions,
};
use beacon_testkit::{beacon_bin, ServerKind, ServerProcess};
use support::{client, next_change, next_changes, registries, registry};

const WEB: &str = "/services/web";

fn config(id: &str, port: u16) -> RegistrationConfig {
    RegistrationConfig::new("web", "dc1", id, InstanceInfo::new("127.0.0.1", port))
        .with_ttl(Duration::from_secs(2))
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_come_and_go_and_refreshes_make_no_noise() {
    for kind in registries() {
        let server = registry(kind);
        let c = client(&[server.client_url()]);
        let discovery_config = DiscoveryConfig {
            removal_grace: Duration::from_secs(2),
            ..DiscoveryConfig::default()
        };
        let mut discovery = Discovery::start(c.clone(), WEB, discovery_config);
        let a = Registration::register(c.clone(), config("a", 1001))
            .await
            .unwrap();
        let b = Registration::register(c.clone(), config("b", 1002))
            .await
            .unwrap();
        let _c = Registration::register(c.clone(), config("c", 1003))
            .await
            .unwrap();
        let seen = next_changes(&mut discovery, 3, Duration::from_secs(5)).await;
        assert_eq!(
            sorted(seen),
            [
                "+/services/web/dc1/a",
                "+/services/web/dc1/b",
                "+/services/web/dc1/c"
            ],
            "{kind:?}"
        );
        // Past the TTL, the refreshes have kept every key without waking the watch.
        let quiet = next_change(&mut discovery, Duration::from_secs(3)).await;
        assert!(quiet.is_none(), "{kind:?}: a refresh made noise: {quiet:?}");
        assert_eq!(discovery.instances().len(), 3);

        b.deregister().await.unwrap();
        let seen = next_changes(&mut discovery, 1, Duration::from_secs(5)).await;
        assert_eq!(seen, ["-/services/web/dc1/b"], "{kind:?}");

        // Dropped without deregistering (as a crash): the key expires. Two of three gone
        // within the grace period, so this removal waits out the grace period.
        drop(a);
        let seen = next_changes(&mut discovery, 1, Duration::from_secs(10)).await;
        assert_eq!(seen, ["-/services/web/dc1/a"], "{kind:?}");
        assert_eq!(discovery.instances().len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_gap_is_bridged_by_a_relist() {
    for kind in registries() {
        let server = registry(kind);
        let c = client(&[server.client_url()]);
        let discovery_config = DiscoveryConfig {
            channel_capacity: 1,
            ..DiscoveryConfig::default()
        };
        let mut discovery = Discovery::start(c.clone(), WEB, discovery_config);
        let mut watcher = discovery.watcher();
        assert!(watcher.listed(Duration::from_secs(5)).await, "{kind:?}");
        let value = |port: u16| InstanceInfo::new("127.0.0.1", port).to_json();
        let plain = SetOptions::default();
        // The consumer does not poll: the task holds one change in the channel and
        // blocks with the second, far behind the registry's 1000-event history.
        c.set("/services/web/dc1/x1", &value(1), &plain)
            .await
            .unwrap();
        c.set("/services/web/dc1/x2", &value(2), &plain)
            .await
            .unwrap();
        for i in 0..1100 {
            c.set("/elsewhere/k", &i.to_string(), &plain).await.unwrap();
        }
        c.set("/services/web/dc1/x3", &value(3), &plain)
            .await
            .unwrap();
        c.delete("/services/web/dc1/x1", &DeleteOptions::default())
            .await
            .unwrap();
        let seen = next_changes(&mut discovery, 4, Duration::from_secs(10)).await;
        assert_eq!(
            seen,
            [
                "+/services/web/dc1/x1",
                "+/services/web/dc1/x2",
                "+/services/web/dc1/x3",
                "-/services/web/dc1/x1"
            ],
            "{kind:?}"
        );
        let extra = next_change(&mut discovery, Duration::from_millis(500)).await;
        assert!(extra.is_none(), "{kind:?}: repeated change {extra:?}");
        let now: Vec<String> = discovery.instances().into_iter().map(|i| i.key).collect();
        assert_eq!(now, ["/services/web/dc1/x2", "/services/web/dc1/x3"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_and_registration_survive_the_loss_of_a_member() {
    let mut members =
        ServerProcess::cluster(ServerKind::Beacon, beacon_bin(), 3).expect("cluster starts");
    let endpoints: Vec<String> = members.iter().map(|m| m.client_url()).collect();
    let c = client(&endpoints);
    let mut discovery = Discovery::start(c.clone(), WEB, DiscoveryConfig::default());
    // A TTL longer than a failover (up to twice the 1 s election timeout): with 2 s a
    // refresh stuck behind the dead leader could let the key lapse.
    let ttl = Duration::from_secs(5);
    let _a = Registration::register(c.clone(), config("a", 1001).with_ttl(ttl))
        .await
        .unwrap();
    assert_eq!(
        next_changes(&mut discovery, 1, Duration::from_secs(5)).await,
        ["+/services/web/dc1/a"]
    );
    // The client starts with the first endpoint: that is the member both use.
    members[0].kill9();
    let _b = Registration::register(c.clone(), config("b", 1002).with_ttl(ttl))
        .await
        .unwrap();
    assert_eq!(
        next_changes(&mut discovery, 1, Duration::from_secs(10)).await,
        ["+/services/web/dc1/b"]
    );
    // Both keys stay refreshed through the survivors well past their TTL.
    let quiet = next_change(&mut discovery, ttl + Duration::from_secs(1)).await;
    assert!(quiet.is_none(), "unexpected change {quiet:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_outage_longer_than_the_ttl_never_empties_the_set() {
    for kind in registries() {
        let mut server = registry(kind);
        let c = client(&[server.client_url()]);
        let mut discovery = Discovery::start(c.clone(), WEB, DiscoveryConfig::default());
        let a = Registration::register(c.clone(), config("a", 1001))
            .await
            .unwrap();
        let _b = Registration::register(c.clone(), config("b", 1002))
            .await
            .unwrap();
        assert_eq!(
            next_changes(&mut discovery, 2, Duration::from_secs(5))
                .await
                .len(),
            2
        );
        server.kill9();
        // The outage itself: twice the TTL, so both keys are past their expiry.
        tokio::time::sleep(Duration::from_secs(4)).await;
        server.restart().expect("registry restarts");
        // The registrations notice and write their keys again...
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let got = c.get(a.key(), &Default::default()).await;
            if got.is_ok_and(|r| r.node().is_some_and(|n| n.ttl > 0)) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{kind:?}: registration not restored"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // ...and the callers never lost them all: at most one expiry (of two, not more
        // than half) went through, the other was held until its key came back.
        let mut live = 2;
        while let Some(change) = next_change(&mut discovery, Duration::from_secs(3)).await {
            match change {
                tower::discover::Change::Insert(..) => live += 1,
                tower::discover::Change::Remove(..) => live -= 1,
            }
            assert!(live >= 1, "{kind:?}: every instance was removed");
        }
        assert_eq!(discovery.instances().len(), 2, "{kind:?}");
    }
}
