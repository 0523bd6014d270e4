//! A tonic client balanced over discovered instances that run tonic-health, against
//! Beacon and etcd 3.4 as the registry.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use beacon_client::balance::{BalanceConfig, GrpcChannel, HealthState};
use beacon_client::{Discovery, DiscoveryConfig};
use support::{client, registries, registry, InstanceOptions, InstanceProcess};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// `callers` concurrent callers making `each` checks: answers per instance, failures.
async fn run_checks(
    health: &HealthClient<GrpcChannel>,
    callers: usize,
    each: usize,
) -> (BTreeMap<String, usize>, usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..callers {
        let mut health = health.clone();
        tasks.spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..each {
                ids.push(check(&mut health).await);
            }
            ids
        });
    }
    let mut by_id = BTreeMap::new();
    let mut failures = 0;
    while let Some(ids) = tasks.join_next().await {
        for id in ids.expect("caller finished") {
            match id {
                Ok(id) => *by_id.entry(id).or_insert(0) += 1,
                Err(_) => failures += 1,
            }
        }
    }
    assert!(Instant::now() < deadline, "checks too slow");
    (by_id, failures)
}

/// One health check: the answering instance's id, or the failure.
async fn check(health: &mut HealthClient<GrpcChannel>) -> Result<String, String> {
    let resp = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map_err(|s| s.to_string())?;
    assert_eq!(resp.get_ref().status, 1, "SERVING");
    let id = resp
        .metadata()
        .get("x-instance-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("?");
    Ok(id.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tonic_client_balances_over_health_servers() {
    for kind in registries() {
        let server = registry(kind);
        let endpoint = server.client_url();
        let grpc = InstanceOptions {
            grpc: true,
            ..InstanceOptions::default()
        };
        let mut instances: Vec<InstanceProcess> = (0..3)
            .map(|i| InstanceProcess::start("health", &format!("g{i}"), &endpoint, &grpc))
            .collect();
        let discovery = Discovery::start(
            client(&[endpoint]),
            "/services/health",
            DiscoveryConfig::default(),
        );
        let channel = GrpcChannel::new(discovery.authorities(), BalanceConfig::default())
            .expect("valid config");
        let health = HealthClient::new(channel.clone());

        // Eight callers at once: p2c spreads what is in flight.
        let (by_id, failures) = run_checks(&health, 8, 40).await;
        assert_eq!(failures, 0, "{kind:?}: a healthy fleet fails");
        assert_eq!(by_id.len(), 3, "{kind:?}: {by_id:?}");
        assert!(by_id.values().all(|n| *n >= 10), "{kind:?}: {by_id:?}");

        // One instance dies. A check on its broken connection and one refused connect
        // may fail (gRPC calls are not retried); the refusal ejects it.
        instances[0].kill9();
        let (_, failures) = run_checks(&health, 8, 25).await;
        assert!(failures <= 2 * 8, "{kind:?}: {failures} failures");
        let (by_id, failures) = run_checks(&health, 8, 25).await;
        assert_eq!(failures, 0, "{kind:?}: failures after the ejection");
        assert!(!by_id.contains_key("g0"), "{kind:?}: {by_id:?}");
        let g0 = channel
            .instances()
            .into_iter()
            .find(|s| s.key.ends_with("/g0"))
            .expect("still listed until its TTL");
        assert!(g0.health != HealthState::Trusted, "{kind:?}: {g0:?}");
    }
}
