//! The client framework end to end: real registries (Beacon, and etcd 3.4 when
//! installed), real `beacon-instance` processes, the library's balanced `HttpClient`.
//! Each fault is driven with a bounded number of requests.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use beacon_client::balance::{BackoffConfig, BalanceConfig, HealthState, HttpClient};
use beacon_client::discovery::InstancesWatcher;
use beacon_client::{Discovery, DiscoveryConfig};
use beacon_testkit::{ServerKind, ServerProcess};
use bytes::Bytes;
use http::Request;
use http_body_util::BodyExt;
use support::{
    modes, registries, registry, registry_client, Api, InstanceOptions, InstanceProcess,
};
use tower::{BoxError, ServiceExt};

/// A registry, instances of service `svc`, and a balanced client over them.
struct Fixture {
    // Instances first: fields drop in order, and an instance outliving its registry
    // would log failed refreshes.
    instances: Vec<InstanceProcess>,
    registry: ServerProcess,
    client: HttpClient,
    published: InstancesWatcher,
    kind: ServerKind,
}

impl Fixture {
    /// The caller discovers through the API its instances register with.
    fn start(kind: ServerKind, options: &[InstanceOptions], config: BalanceConfig) -> Fixture {
        let registry = registry(kind);
        let endpoint = registry.client_url();
        let api = if options.iter().any(|o| o.v3) {
            Api::V3
        } else {
            Api::V2
        };
        let instances = options
            .iter()
            .enumerate()
            .map(|(i, opts)| InstanceProcess::start("svc", &format!("i{i}"), &endpoint, opts))
            .collect();
        let discovery = Discovery::start(
            registry_client(api, &[endpoint]),
            "/services/svc",
            DiscoveryConfig::default(),
        );
        let published = discovery.watcher();
        let client = HttpClient::new(discovery.authorities(), config).expect("valid config");
        Fixture {
            instances,
            registry,
            client,
            published,
            kind,
        }
    }

    /// One GET: the status and the answering instance's id.
    async fn get(&self) -> Result<(u16, String), BoxError> {
        let req = Request::get("/").body(Bytes::new())?;
        let resp = self.client.clone().oneshot(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).trim().to_string()))
    }

    /// `n` GETs in a row: answers per instance id, and the failures.
    async fn run(&self, n: usize) -> (BTreeMap<String, usize>, Vec<String>) {
        let mut by_id = BTreeMap::new();
        let mut failures = Vec::new();
        for _ in 0..n {
            match self.get().await {
                Ok((200, id)) => *by_id.entry(id).or_insert(0) += 1,
                Ok((status, body)) => failures.push(format!("{status} {body}")),
                Err(e) => failures.push(e.to_string()),
            }
        }
        (by_id, failures)
    }

    /// `n` GETs from each of `callers` concurrent callers, merged as [`Fixture::run`]'s.
    async fn run_concurrently(
        &self,
        callers: usize,
        n: usize,
    ) -> (BTreeMap<String, usize>, Vec<String>) {
        let runs = (0..callers).map(|_| self.run(n));
        let mut by_id = BTreeMap::new();
        let mut failures = Vec::new();
        for (ids, failed) in futures_util::future::join_all(runs).await {
            for (id, count) in ids {
                *by_id.entry(id).or_insert(0) += count;
            }
            failures.extend(failed);
        }
        (by_id, failures)
    }

    /// Sends requests until every instance has answered one (discovery has listed
    /// them all), within 10 s.
    async fn warm_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = std::collections::BTreeSet::new();
        while seen.len() < self.instances.len() {
            assert!(
                Instant::now() < deadline,
                "{:?}: only {seen:?} answered",
                self.kind
            );
            if let Ok((200, id)) = self.get().await {
                seen.insert(id);
            }
        }
    }

    fn health_of(&self, id: &str) -> Option<HealthState> {
        let key = format!("/services/svc/dc1/{id}");
        self.client
            .instances()
            .into_iter()
            .find(|s| s.key == key)
            .map(|s| s.health)
    }
}

fn fast_probe_config() -> BalanceConfig {
    let mut config = BalanceConfig::default();
    config.accrual.backoff = BackoffConfig {
        initial: Duration::from_millis(300),
        max: Duration::from_secs(1),
        ..BackoffConfig::default()
    };
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_is_ejected_and_its_requests_retried_elsewhere() {
    for kind in registries() {
        let three = vec![InstanceOptions::default(); 3];
        // The killed instance must be tried to be found dead. p2c compares peak-EWMA
        // costs, and an instance whose only answer so far was slow (its new connection's)
        // loses every comparison with idle ones until its estimate decays: a short decay
        // and concurrent callers (a cost grows with requests in flight) make it drawn.
        let config = BalanceConfig {
            load_decay: Duration::from_millis(100),
            ..BalanceConfig::default()
        };
        let mut f = Fixture::start(kind, &three, config);
        f.warm_up().await;
        // Its key stays for the TTL: only the balancer can tell it is gone.
        f.instances[1].kill9();
        let (by_id, failures) = f.run_concurrently(6, 50).await;
        assert!(failures.is_empty(), "{kind:?}: {failures:?}");
        assert_eq!(by_id.get("i1"), None);
        assert!(
            matches!(
                f.health_of("i1"),
                Some(HealthState::Ejected { .. } | HealthState::Probation)
            ),
            "{kind:?}: {:?}",
            f.client.instances()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_instance_gets_few_requests() {
    for kind in registries() {
        let slow = InstanceOptions {
            delay_ms: 100,
            ..InstanceOptions::default()
        };
        let options = vec![InstanceOptions::default(), slow, InstanceOptions::default()];
        let f = Fixture::start(kind, &options, BalanceConfig::default());
        f.warm_up().await;
        let (by_id, failures) = f.run(300).await;
        assert!(failures.is_empty(), "{kind:?}: {failures:?}");
        let slow_share = by_id.get("i1").copied().unwrap_or(0) as f64 / 300.0;
        assert!(
            slow_share <= 0.05,
            "{kind:?}: slow share {slow_share}: {by_id:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_failing_half_its_requests_is_ejected_and_probed_back() {
    for kind in registries() {
        let flaky = InstanceOptions {
            fail_every: 2,
            ..InstanceOptions::default()
        };
        let options = vec![
            InstanceOptions::default(),
            flaky,
            InstanceOptions::default(),
        ];
        let f = Fixture::start(kind, &options, fast_probe_config());
        f.warm_up().await;
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut ejected = false;
        let mut probed_back = false;
        let mut sent = 0;
        while !(ejected && probed_back) {
            assert!(
                Instant::now() < deadline && sent < 5000,
                "{kind:?}: ejected {ejected}, probed back {probed_back}: {:?}",
                f.client.instances()
            );
            // 500s are answers, passed on: only the flaky instance gives them.
            let _ = f.get().await;
            sent += 1;
            match f.health_of("i1") {
                Some(HealthState::Ejected { .. }) => ejected = true,
                Some(HealthState::Probation | HealthState::Trusted) if ejected => {
                    probed_back = true;
                }
                _ => {}
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_instance_gets_traffic_within_a_second_of_registering() {
    for kind in registries() {
        let mut f = Fixture::start(
            kind,
            &vec![InstanceOptions::default(); 2],
            BalanceConfig::default(),
        );
        f.warm_up().await;
        let endpoint = f.registry.client_url();
        let fresh = InstanceProcess::start("svc", "new", &endpoint, &InstanceOptions::default());
        let registered = Instant::now();
        let mut served = false;
        for _ in 0..2000 {
            if let Ok((200, id)) = f.get().await {
                if id == "new" {
                    served = true;
                    break;
                }
            }
            if registered.elapsed() > Duration::from_secs(1) {
                break;
            }
        }
        let took = registered.elapsed();
        assert!(
            served && took <= Duration::from_secs(1),
            "{kind:?}: {took:?}"
        );
        f.instances.push(fresh);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_outage_of_ten_seconds_fails_no_request() {
    for (kind, api) in modes() {
        let short_ttl = InstanceOptions {
            ttl: Some(3),
            v3: api == Api::V3,
            ..InstanceOptions::default()
        };
        let mut f = Fixture::start(kind, &vec![short_ttl.clone(); 3], BalanceConfig::default());
        f.warm_up().await;
        f.registry.kill9();
        let down = Instant::now();
        let mut failures = Vec::new();
        let mut sent = 0;
        // Requests all through the outage and a while after the restart.
        let mut restarted = false;
        while down.elapsed() < Duration::from_secs(16) && sent < 4000 {
            if !restarted && down.elapsed() >= Duration::from_secs(10) {
                f.registry.restart().expect("registry restarts");
                restarted = true;
            }
            match f.get().await {
                Ok((200, _)) => {}
                other => failures.push(format!("{other:?}")),
            }
            sent += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(restarted);
        assert!(
            failures.is_empty(),
            "{kind:?} {api:?}: {} of {sent} failed: {failures:?}",
            failures.len()
        );
        // Discovery resumed: a new instance is found.
        let endpoint = f.registry.client_url();
        let fresh = InstanceProcess::start("svc", "after", &endpoint, &short_ttl);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok((200, id)) = f.get().await {
                if id == "after" {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{kind:?} {api:?}: discovery did not resume: published {:?}, balancer {:?}",
                f.published.instances(),
                f.client.instances()
            );
        }
        f.instances.push(fresh);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_mode_keeps_sending_when_most_instances_fail() {
    for kind in registries() {
        let failing = InstanceOptions {
            fail_every: 1,
            ..InstanceOptions::default()
        };
        let f = Fixture::start(kind, &vec![failing; 3], BalanceConfig::default());
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut answered = 0;
        for _ in 0..200 {
            // Every instance answers 500; none is held back for good.
            if let Ok((500, _)) = f.get().await {
                answered += 1;
            }
            assert!(Instant::now() < deadline, "{kind:?}: requests hang");
        }
        assert!(
            answered >= 150,
            "{kind:?}: only {answered} of 200 reached an instance"
        );
        assert!(
            f.client.is_panicking(),
            "{kind:?}: {:?}",
            f.client.instances()
        );
    }
}
