//! `balance::HttpClient` against real HTTP servers on loopback: ejection, slow instances,
//! probing back, new instances, panic mode, no instances at all, and an ejection seen by
//! every worker of a proxy.
//!
//! Every server binds `127.0.0.1:0`; discovery is a channel the test writes to. Loops are
//! bounded in requests and in time, and wait for conditions rather than sleeping.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use beacon_client::balance::{BalanceConfig, BalanceError, HealthState, HttpClient, InstanceState};
use bytes::Bytes;
use futures_util::Stream;
use http::uri::Authority;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tower::discover::Change;
use tower::ServiceExt;

/// How a test server answers its `n`-th request (from 0): a status, after a delay.
type Behavior = Arc<dyn Fn(u64) -> (StatusCode, Duration) + Send + Sync>;

fn healthy() -> Behavior {
    Arc::new(|_| (StatusCode::OK, Duration::ZERO))
}

/// A tiny HTTP/1 server on loopback that names itself in `x-server`.
struct Server {
    name: String,
    addr: SocketAddr,
    hits: Arc<AtomicU64>,
    behavior: Arc<Mutex<Behavior>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    async fn start(name: &str, behavior: Behavior) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let hits = Arc::new(AtomicU64::new(0));
        let behavior = Arc::new(Mutex::new(behavior));
        let (stop, mut stopped) = oneshot::channel();
        let (task_name, task_hits, task_behavior) =
            (name.to_string(), hits.clone(), behavior.clone());
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let stream = tokio::select! {
                    _ = &mut stopped => break,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => continue,
                    },
                };
                let (name, hits, behavior) =
                    (task_name.clone(), task_hits.clone(), task_behavior.clone());
                let service = hyper::service::service_fn(move |_: Request<Incoming>| {
                    let n = hits.fetch_add(1, Ordering::SeqCst);
                    let behave = behavior.lock().expect("behavior lock").clone();
                    let name = name.clone();
                    async move {
                        let (status, delay) = behave(n);
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        let mut response = Response::new(Full::new(Bytes::new()));
                        *response.status_mut() = status;
                        response
                            .headers_mut()
                            .insert("x-server", name.parse().expect("header value"));
                        Ok::<_, Infallible>(response)
                    }
                });
                connections.spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            // Closing the listener and every connection: new connections are refused.
            drop(listener);
            connections.shutdown().await;
        });
        Server {
            name: name.to_string(),
            addr,
            hits,
            behavior,
            stop: Some(stop),
            task: Some(task),
        }
    }

    fn authority(&self) -> Authority {
        self.addr.to_string().parse().expect("authority")
    }

    fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }

    fn behave(&self, behavior: Behavior) {
        *self.behavior.lock().expect("behavior lock") = behavior;
    }

    async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
    }
}

type Changes = mpsc::UnboundedSender<Change<String, Authority>>;

/// A discovery stream the test feeds by hand; it never ends while the sender lives.
fn discovery() -> (
    Changes,
    impl Stream<Item = Result<Change<String, Authority>, Infallible>> + Send + 'static,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|c| c.map(Ok)));
    (tx, stream)
}

async fn client_over(servers: &[&Server], config: BalanceConfig) -> (Changes, HttpClient) {
    let (changes, stream) = discovery();
    for server in servers {
        changes
            .send(Change::Insert(server.name.clone(), server.authority()))
            .expect("discovery open");
    }
    let client = HttpClient::new(stream, config).expect("valid config");
    (changes, client)
}

/// One GET: the status and the server that answered, or the error's text.
async fn get(client: &HttpClient) -> Result<(StatusCode, String), String> {
    let request = Request::get("http://service/v2/keys/a")
        .body(Bytes::new())
        .expect("request");
    let response = tokio::time::timeout(Duration::from_secs(10), client.clone().oneshot(request))
        .await
        .map_err(|_| "request hung for 10 s".to_string())?
        .map_err(|e| e.to_string())?;
    let server = response
        .headers()
        .get("x-server")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    Ok((response.status(), server))
}

/// `count` GETs, `concurrency` at a time.
async fn get_many(
    client: &HttpClient,
    count: usize,
    concurrency: usize,
) -> Vec<Result<(StatusCode, String), String>> {
    let mut workers = JoinSet::new();
    for worker in 0..concurrency {
        let client = client.clone();
        let share = count / concurrency + usize::from(worker < count % concurrency);
        workers.spawn(async move {
            let mut results = Vec::with_capacity(share);
            for _ in 0..share {
                results.push(get(&client).await);
            }
            results
        });
    }
    let mut results = Vec::with_capacity(count);
    while let Some(batch) = workers.join_next().await {
        results.extend(batch.expect("worker"));
    }
    results
}

fn state<'a>(states: &'a [InstanceState], key: &str) -> &'a InstanceState {
    states
        .iter()
        .find(|s| s.key == key)
        .unwrap_or_else(|| panic!("{key} not on the board: {states:?}"))
}

/// Whether `key` is on the board in a state `health` accepts.
fn is(client: &HttpClient, key: &str, health: impl Fn(HealthState) -> bool) -> bool {
    client
        .instances()
        .iter()
        .any(|s| s.key == key && health(s.health))
}

/// Sends requests one at a time, about one a millisecond (backoffs are timed), until `done`
/// holds; fails after `max` requests or `within`.
async fn until(
    client: &HttpClient,
    max: usize,
    within: Duration,
    what: &str,
    mut done: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + within;
    for _ in 0..max {
        if done() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}: {:?}",
            client.instances()
        );
        let _ = get(client).await;
        // Also lets discovery's task run when a request fails without ever yielding.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(
        done(),
        "{what}: not within {max} requests: {:?}",
        client.instances()
    );
}

/// Waits, checking every millisecond, until `done` holds; fails after `within`.
async fn eventually(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[test]
fn the_client_can_be_shared_and_needs_a_runtime() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<HttpClient>();
    let (_changes, stream) = discovery();
    let outside = HttpClient::new(stream, BalanceConfig::default());
    assert!(matches!(outside, Err(BalanceError::NoRuntime)));
    let (_changes, stream) = discovery();
    let bad = BalanceConfig {
        panic_threshold: 2.0,
        ..BalanceConfig::default()
    };
    let built = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async { HttpClient::new(stream, bad).map(|_| ()) });
    assert!(matches!(built, Err(BalanceError::InvalidConfig(_))));
}

#[tokio::test]
async fn a_refusing_instance_is_ejected_and_no_request_fails() {
    let mut dead = Server::start("a", healthy()).await;
    let b = Server::start("b", healthy()).await;
    let c = Server::start("c", healthy()).await;
    let (_changes, client) = client_over(&[&dead, &b, &c], BalanceConfig::default()).await;
    let warmup = get_many(&client, 30, 3).await;
    assert!(
        warmup.iter().all(|r| matches!(r, Ok((StatusCode::OK, _)))),
        "{warmup:?}"
    );
    assert!(dead.hits() > 0, "warmup never reached a");

    dead.shutdown().await;
    let results = get_many(&client, 300, 4).await;
    let failed: Vec<_> = results
        .iter()
        .filter(|r| !matches!(r, Ok((StatusCode::OK, _))))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of 300 failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(results.iter().all(|r| matches!(r, Ok((_, s)) if s != "a")));
    let states = client.instances();
    assert!(state(&states, "a").ejections >= 1, "{states:?}");
    assert_eq!(state(&states, "b").health, HealthState::Trusted);
}

#[tokio::test]
async fn a_slow_instance_gets_at_most_a_tenth_of_the_requests() {
    let slow = Server::start(
        "slow",
        Arc::new(|_| (StatusCode::OK, Duration::from_millis(100))),
    )
    .await;
    let fast: Vec<Server> =
        futures_util::future::join_all(["f1", "f2", "f3"].map(|n| Server::start(n, healthy())))
            .await;
    let (_changes, client) = client_over(
        &[&slow, &fast[0], &fast[1], &fast[2]],
        BalanceConfig::default(),
    )
    .await;
    let results = get_many(&client, 400, 4).await;
    assert!(results.iter().all(|r| matches!(r, Ok((StatusCode::OK, _)))));
    let to_slow = results
        .iter()
        .filter(|r| matches!(r, Ok((_, s)) if s == "slow"))
        .count();
    assert!(
        to_slow <= 40,
        "the slow instance got {to_slow} of 400 requests"
    );
}

#[tokio::test]
async fn a_flapping_instance_is_ejected_then_probed_back() {
    let every_other: Behavior = Arc::new(|n| {
        let status = if n % 2 == 0 {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        };
        (status, Duration::ZERO)
    });
    let flaky = Server::start("flaky", every_other).await;
    let b = Server::start("b", healthy()).await;
    let c = Server::start("c", healthy()).await;
    let mut config = BalanceConfig::default();
    config.accrual.backoff.initial = Duration::from_millis(200);
    config.accrual.backoff.max = Duration::from_millis(400);
    let (_changes, client) = client_over(&[&flaky, &b, &c], config).await;

    let ejected = || is(&client, "flaky", |h| h != HealthState::Trusted);
    until(
        &client,
        2000,
        Duration::from_secs(10),
        "flaky ejected",
        ejected,
    )
    .await;
    assert!(state(&client.instances(), "flaky").ejections >= 1);

    // Healed: the next probe (after at most 400 ms) brings it back.
    flaky.behave(healthy());
    let trusted = || is(&client, "flaky", |h| h == HealthState::Trusted);
    until(
        &client,
        2000,
        Duration::from_secs(5),
        "flaky trusted again",
        trusted,
    )
    .await;
    let before = flaky.hits();
    until(
        &client,
        2000,
        Duration::from_secs(5),
        "flaky serving again",
        || flaky.hits() > before + 3,
    )
    .await;
}

#[tokio::test]
async fn an_added_instance_gets_traffic_within_a_second() {
    let a = Server::start("a", healthy()).await;
    let b = Server::start("b", healthy()).await;
    let (changes, client) = client_over(&[&a, &b], BalanceConfig::default()).await;
    let warmup = get_many(&client, 50, 4).await;
    assert!(warmup.iter().all(|r| matches!(r, Ok((StatusCode::OK, _)))));

    let added = Server::start("added", healthy()).await;
    changes
        .send(Change::Insert("added".to_string(), added.authority()))
        .expect("discovery open");
    let start = Instant::now();
    let deadline = start + Duration::from_secs(1);
    let mut sent = 0;
    while added.hits() == 0 && Instant::now() < deadline && sent < 2000 {
        get_many(&client, 8, 4).await;
        sent += 8;
    }
    assert!(
        added.hits() > 0,
        "no traffic to the added instance after {sent} requests in {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn panic_mode_keeps_sending_when_every_instance_fails() {
    let unavailable: Behavior = Arc::new(|_| (StatusCode::SERVICE_UNAVAILABLE, Duration::ZERO));
    let servers: Vec<Server> = futures_util::future::join_all(
        ["a", "b", "c"].map(|n| Server::start(n, unavailable.clone())),
    )
    .await;
    let (_changes, client) = client_over(
        &[&servers[0], &servers[1], &servers[2]],
        BalanceConfig::default(),
    )
    .await;

    let results = get_many(&client, 100, 4).await;
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok((StatusCode::SERVICE_UNAVAILABLE, _)))),
        "{results:?}"
    );
    assert!(client.is_panicking(), "{:?}", client.instances());

    let hits = |servers: &[Server]| servers.iter().map(Server::hits).sum::<u64>();
    let before = hits(&servers);
    let results = get_many(&client, 100, 4).await;
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok((StatusCode::SERVICE_UNAVAILABLE, _)))),
        "{results:?}"
    );
    assert!(
        hits(&servers) >= before + 100,
        "panic mode must still send every request"
    );
}

#[tokio::test]
async fn no_instances_fails_fast() {
    let config = BalanceConfig {
        startup_wait: Duration::from_millis(200),
        ..BalanceConfig::default()
    };
    let (changes, client) = client_over(&[], config).await;
    let no_instances = |result: Result<Response<Incoming>, tower::BoxError>| match result {
        Err(error) => matches!(error.downcast_ref(), Some(BalanceError::NoInstances)),
        Ok(_) => false,
    };
    let request = || {
        Request::get("http://service/")
            .body(Bytes::new())
            .expect("request")
    };

    // Within the startup wait the request waits for discovery, then gives up.
    let start = Instant::now();
    assert!(no_instances(client.clone().oneshot(request()).await));
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );

    // After it, at once.
    let start = Instant::now();
    assert!(no_instances(client.clone().oneshot(request()).await));
    assert!(
        start.elapsed() < Duration::from_millis(100),
        "{:?}",
        start.elapsed()
    );

    // And again once discovery removed the only instance.
    let a = Server::start("a", healthy()).await;
    changes
        .send(Change::Insert("a".to_string(), a.authority()))
        .expect("discovery open");
    eventually(Duration::from_secs(2), "a on the board", || {
        is(&client, "a", |_| true)
    })
    .await;
    until(&client, 100, Duration::from_secs(2), "a serving", || {
        a.hits() > 0
    })
    .await;
    changes
        .send(Change::Remove("a".to_string()))
        .expect("discovery open");
    let removed = || client.instances().is_empty();
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut last = None;
    for _ in 0..100 {
        let start = Instant::now();
        let result = client.clone().oneshot(request()).await;
        if removed() && result.is_err() {
            last = Some((no_instances(result), start.elapsed()));
            break;
        }
        assert!(Instant::now() < deadline, "the removal never took effect");
        tokio::task::yield_now().await;
    }
    let (was_no_instances, took) = last.expect("removal seen within 100 requests");
    assert!(
        was_no_instances && took < Duration::from_millis(100),
        "{was_no_instances} after {took:?}"
    );
}

#[tokio::test]
async fn a_client_is_fast_to_start_and_answers_at_once_once_discovery_lists_an_instance() {
    let a = Server::start("a", healthy()).await;
    let (changes, stream) = discovery();
    let client = HttpClient::new(stream, BalanceConfig::default()).expect("valid config");
    // Discovery answers after the client exists: the first request waits for it.
    let sender = tokio::spawn({
        let authority = a.authority();
        async move {
            tokio::task::yield_now().await;
            changes
                .send(Change::Insert("a".to_string(), authority))
                .expect("discovery open");
            changes
        }
    });
    let result = get(&client).await;
    assert_eq!(result, Ok((StatusCode::OK, "a".to_string())));
    drop(sender.await);
}

/// The proxy's layout: worker threads, each with its own single-threaded runtime, client
/// and failure-accrual board, the boards posting to one bulletin. An instance that one
/// worker's requests get ejected is avoided by every worker within 50 ms: after that, no
/// request of either worker reaches it until its backoff ends, while both keep sending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_ejected_by_one_worker_is_avoided_by_every_worker_within_50_ms() {
    use beacon_client::balance::{Board, Bulletin};
    use std::sync::atomic::AtomicBool;

    let bad = Server::start("bad", healthy()).await;
    let good = Server::start("good", healthy()).await;
    let mut config = BalanceConfig::default();
    // Longer than the test's window, so that no probe falls inside it.
    config.accrual.backoff.initial = Duration::from_secs(5);
    config.accrual.backoff.max = Duration::from_secs(5);
    let bulletin = Bulletin::new();
    let stop = Arc::new(AtomicBool::new(false));
    let sent: Vec<Arc<AtomicU64>> = (0..2).map(|_| Arc::default()).collect();
    let (clients_tx, clients_rx) = std::sync::mpsc::channel();
    let mut workers = Vec::new();
    for worker in 0..2 {
        let (changes, stream) = discovery();
        for server in [&bad, &good] {
            changes
                .send(Change::Insert(server.name.clone(), server.authority()))
                .expect("discovery open");
        }
        let board = Board::posting_to(&config, &bulletin);
        let (config, stop) = (config.clone(), stop.clone());
        let (sent, clients_tx) = (sent[worker].clone(), clients_tx.clone());
        workers.push(std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let _changes = changes;
                let client = HttpClient::with_board(stream, config, board).expect("client");
                clients_tx.send(client.clone()).expect("test waits");
                while !stop.load(Ordering::SeqCst) {
                    let _ = get(&client).await;
                    sent.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            });
        }));
    }
    let observer: HttpClient = clients_rx.recv().expect("a worker started");
    eventually(Duration::from_secs(5), "both workers send", || {
        sent.iter().all(|s| s.load(Ordering::SeqCst) > 20)
    })
    .await;
    assert!(bad.hits() > 0, "the warm-up reached both instances");

    bad.behave(Arc::new(|_| {
        (StatusCode::SERVICE_UNAVAILABLE, Duration::ZERO)
    }));
    eventually(Duration::from_secs(5), "bad is ejected", || {
        is(&observer, "bad", |h| {
            matches!(h, HealthState::Ejected { .. })
        })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (hits, sent_before) = (
        bad.hits(),
        sent.iter()
            .map(|s| s.load(Ordering::SeqCst))
            .collect::<Vec<_>>(),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent_after: Vec<u64> = sent.iter().map(|s| s.load(Ordering::SeqCst)).collect();
    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        worker.join().expect("worker thread");
    }
    for (before, after) in sent_before.iter().zip(&sent_after) {
        assert!(
            after - before >= 20,
            "each worker kept sending: {sent_before:?} -> {sent_after:?}"
        );
    }
    assert_eq!(
        bad.hits(),
        hits,
        "no worker sent to the ejected instance from 50 ms after its ejection"
    );
}
