//! Registration and discovery against real registries (Beacon, and etcd 3.4 when
//! installed), through the v2 API and the v3 API: instances come and go, refreshes and
//! keep-alives make no noise, a history gap (v2) or a compaction (v3) is bridged by a
//! re-list, a member failover and a registry outage lose nothing.

mod support;

use std::time::Duration;

use beacon_client::{
    DeleteOptions, Discovery, DiscoveryConfig, InstanceInfo, Registration, RegistrationConfig,
    SetOptions, V3Client,
};
use beacon_proto::etcdserverpb::kv_client::KvClient;
use beacon_proto::etcdserverpb::{CompactionRequest, DeleteRangeRequest};
use beacon_testkit::{beacon_bin, ServerKind, ServerProcess};
use support::{
    client, is_registered, modes, next_change, next_changes, registries, registry, registry_client,
    Api,
};

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
    for (kind, api) in modes() {
        let server = registry(kind);
        let c = registry_client(api, &[server.client_url()]);
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
            "{kind:?} {api:?}"
        );
        // Past the TTL, the refreshes have kept every key without waking the watch.
        let quiet = next_change(&mut discovery, Duration::from_secs(3)).await;
        assert!(
            quiet.is_none(),
            "{kind:?} {api:?}: a refresh made noise: {quiet:?}"
        );
        assert_eq!(discovery.instances().len(), 3);

        b.deregister().await.unwrap();
        let seen = next_changes(&mut discovery, 1, Duration::from_secs(5)).await;
        assert_eq!(seen, ["-/services/web/dc1/b"], "{kind:?} {api:?}");

        // Dropped without deregistering (as a crash): the key expires. Two of three gone
        // within the grace period, so this removal waits out the grace period.
        drop(a);
        let seen = next_changes(&mut discovery, 1, Duration::from_secs(10)).await;
        assert_eq!(seen, ["-/services/web/dc1/a"], "{kind:?} {api:?}");
        assert_eq!(discovery.instances().len(), 1);
    }
}

/// After x1 and x2 were put, then x3, then x1 deleted: each change once, in order.
async fn assert_bridged(discovery: &mut Discovery, kind: ServerKind) {
    let seen = next_changes(discovery, 4, Duration::from_secs(10)).await;
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
    let extra = next_change(discovery, Duration::from_millis(500)).await;
    assert!(extra.is_none(), "{kind:?}: repeated change {extra:?}");
    let now: Vec<String> = discovery.instances().into_iter().map(|i| i.key).collect();
    assert_eq!(now, ["/services/web/dc1/x2", "/services/web/dc1/x3"]);
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
        assert_bridged(&mut discovery, kind).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_history_is_bridged_by_a_relist() {
    for kind in registries() {
        let server = registry(kind);
        let v3 = V3Client::new(vec![server.client_url()], Duration::from_secs(2)).unwrap();
        let discovery_config = DiscoveryConfig {
            channel_capacity: 1,
            ..DiscoveryConfig::default()
        };
        let mut discovery = Discovery::start(v3.clone(), WEB, discovery_config);
        let mut watcher = discovery.watcher();
        assert!(watcher.listed(Duration::from_secs(5)).await, "{kind:?}");
        let value = |port: u16| InstanceInfo::new("127.0.0.1", port).to_json();
        // The consumer does not poll: the task holds one change in the channel and
        // blocks with the second. Meanwhile 4 MiB of events, twice what hyper's HTTP/2
        // stream window holds (values that are no instance, so no change), keep the
        // registry's side of the watch behind, and the history it is behind in is
        // compacted away: the watch is cancelled and the task lists again.
        v3.put(b"/services/web/dc1/x1", value(1).as_bytes(), 0)
            .await
            .unwrap();
        v3.put(b"/services/web/dc1/x2", value(2).as_bytes(), 0)
            .await
            .unwrap();
        let filler = vec![b'-'; 4096];
        for _ in 0..1000 {
            v3.put(b"/services/web/dc1/filler", &filler, 0)
                .await
                .unwrap();
        }
        v3.put(b"/services/web/dc1/x3", value(3).as_bytes(), 0)
            .await
            .unwrap();
        let channel = tonic::transport::Endpoint::from_shared(server.client_url())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut kv = KvClient::new(channel);
        let deleted = kv
            .delete_range(DeleteRangeRequest {
                key: b"/services/web/dc1/x1".to_vec(),
                ..DeleteRangeRequest::default()
            })
            .await
            .unwrap()
            .into_inner();
        let revision = deleted.header.unwrap().revision;
        kv.compact(CompactionRequest {
            revision,
            physical: true,
        })
        .await
        .unwrap();
        assert_bridged(&mut discovery, kind).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_and_registration_survive_the_loss_of_a_member() {
    for api in [Api::V2, Api::V3] {
        survive_the_loss_of_a_member(api).await;
    }
}

async fn survive_the_loss_of_a_member(api: Api) {
    let mut members =
        ServerProcess::cluster(ServerKind::Beacon, beacon_bin(), 3).expect("cluster starts");
    let endpoints: Vec<String> = members.iter().map(|m| m.client_url()).collect();
    let c = registry_client(api, &endpoints);
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
    assert!(quiet.is_none(), "{api:?}: unexpected change {quiet:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_outage_longer_than_the_ttl_never_empties_the_set() {
    for (kind, api) in modes() {
        let mut server = registry(kind);
        let c = registry_client(api, &[server.client_url()]);
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
            if is_registered(&c, a.key()).await {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{kind:?} {api:?}: registration not restored"
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
            assert!(live >= 1, "{kind:?} {api:?}: every instance was removed");
        }
        assert_eq!(discovery.instances().len(), 2, "{kind:?} {api:?}");
    }
}
