//! `Pool`: one instance's keep-alive HTTP/1 connections, for [`HttpClient`](super::HttpClient).
//!
//! hyper-util's pool serves every host from one map behind one lock, keyed by scheme
//! and authority and hashed at every checkout and return, and spawns a task per request
//! to give the connection back once its answer has been read: `bench/proxy-cost` put
//! that near a tenth of the proxy's instructions per request. An instance's service
//! needs less: a list of its own connections, all to one address.
//!
//! A request takes the newest connection that hyper says is ready (its last answer read
//! to the end), or opens one. The connection goes back on the list as soon as its
//! answer's head has arrived, while the body may still be streaming; it is taken again
//! only once it is ready. So the list holds every connection not sending a request at
//! the moment, idle or finishing an answer, at most `idle_max` of them; a connection
//! returned to a full list is dropped, and hyper closes it once its answer is read.
//! Connections the peer closed are dropped when a checkout finds them, and a sweep task,
//! which runs while the list is not empty, drops those unused for `idle_timeout`.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Authority;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tower::BoxError;

/// One instance's connections; clones share them.
#[derive(Clone)]
pub(crate) struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    authority: Authority,
    idle_max: usize,
    idle_timeout: Duration,
    connect_timeout: Duration,
    list: Mutex<List>,
}

#[derive(Default)]
struct List {
    /// Oldest first; checkouts take from the end, so the oldest age out.
    connections: Vec<Pooled>,
    /// Whether a sweep task runs; set and cleared under the lock, so a connection
    /// returned to the list always has one.
    sweeping: bool,
}

struct Pooled {
    sender: SendRequest<Full<Bytes>>,
    /// When it was last given a request.
    since: Instant,
}

/// A connection could not be opened: nothing was sent, so the retry policy sends any
/// request elsewhere and failure accrual ejects the instance at once. Public so that an
/// instance service of the caller's own (`beaconctl proxy`'s) reports it the same way.
#[derive(Debug, thiserror::Error)]
#[error("connecting to {authority}: {source}")]
pub struct ConnectError {
    authority: Authority,
    #[source]
    source: io::Error,
}

impl ConnectError {
    pub fn new(authority: Authority, source: io::Error) -> Self {
        Self { authority, source }
    }
}

impl Pool {
    /// A pool of connections to `authority` (plain HTTP; port 80 when it names none).
    pub(crate) fn new(
        authority: Authority,
        idle_max: usize,
        idle_timeout: Duration,
        connect_timeout: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                authority,
                idle_max,
                idle_timeout,
                connect_timeout,
                list: Mutex::new(List::default()),
            }),
        }
    }

    /// The instance's authority.
    pub(crate) fn authority(&self) -> &Authority {
        &self.inner.authority
    }

    /// Sends `request` (origin-form URI, `Host` set) on a pooled connection or a new
    /// one, and returns the answer's head.
    pub(crate) async fn send(
        self,
        mut request: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, BoxError> {
        // Each pass takes a connection off the list for good, so the loop ends.
        while let Some(mut sender) = self.inner.checkout() {
            match sender.try_send_request(request).await {
                Ok(response) => {
                    self.inner.give_back(sender);
                    return Ok(response);
                }
                // The connection closed before the request was written: it was never sent.
                Err(mut e) => match e.take_message() {
                    Some(unsent) => request = unsent,
                    None => return Err(e.into_error().into()),
                },
            }
        }
        let mut sender = self.inner.connect().await?;
        let response = sender.send_request(request).await?;
        self.inner.give_back(sender);
        Ok(response)
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, List> {
        // The list is whole between any two statements that touch it.
        self.list.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The newest ready connection, dropping the closed and stale ones on the way.
    fn checkout(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut list = self.lock();
        let now = Instant::now();
        while let Some(i) = list.connections.iter().rposition(|c| c.sender.is_ready()) {
            // Not `swap_remove`: the list stays oldest first.
            let pooled = list.connections.remove(i);
            if !pooled.sender.is_closed() && now - pooled.since < self.idle_timeout {
                return Some(pooled.sender);
            }
        }
        list.connections.retain(|c| !c.sender.is_closed());
        None
    }

    /// Puts `sender` back on the list, unless the list is full or it closed.
    fn give_back(self: &Arc<Self>, sender: SendRequest<Full<Bytes>>) {
        if sender.is_closed() {
            return;
        }
        let mut list = self.lock();
        if list.connections.len() >= self.idle_max {
            return;
        }
        list.connections.push(Pooled {
            sender,
            since: Instant::now(),
        });
        if !list.sweeping {
            list.sweeping = true;
            tokio::spawn(sweep(Arc::downgrade(self)));
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, ConnectError> {
        let stream = connect(&self.authority, self.connect_timeout).await?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ConnectError::new(self.authority.clone(), io::Error::other(e)))?;
        // Ends when the connection closes, or once its senders are dropped and its last
        // answer is read.
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "pooled connection ended");
            }
        });
        Ok(sender)
    }
}

/// Opens a TCP connection to an instance at `authority` (plain HTTP: port 80 when it
/// names none) within `timeout`, Nagle's algorithm off (small request/response exchanges:
/// its delay would only add latency). Public for instance services of the caller's own.
pub async fn connect(authority: &Authority, timeout: Duration) -> Result<TcpStream, ConnectError> {
    let failed = |source| ConnectError::new(authority.clone(), source);
    let host = authority.host();
    // An IPv6 literal without its brackets.
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port = authority.port_u16().unwrap_or(80);
    let stream = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
        .await
        .map_err(|_| failed(io::Error::from(io::ErrorKind::TimedOut)))?
        .map_err(failed)?;
    stream.set_nodelay(true).map_err(failed)?;
    Ok(stream)
}

/// Drops the connections of `pool` unused for its idle timeout, every half of it,
/// until the list is empty or the pool is gone.
async fn sweep(pool: Weak<Inner>) {
    loop {
        let Some(period) = pool.upgrade().map(|p| p.idle_timeout / 2) else {
            return;
        };
        tokio::time::sleep(period.max(Duration::from_millis(1))).await;
        let Some(pool) = pool.upgrade() else { return };
        let mut list = pool.lock();
        let now = Instant::now();
        list.connections
            .retain(|c| !c.sender.is_closed() && now - c.since < pool.idle_timeout);
        if list.connections.is_empty() {
            list.sweeping = false;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::BodyExt;
    use tokio::net::TcpListener;
    use tokio::sync::Barrier;

    use super::*;

    /// A server that answers "ok" on keep-alive connections and counts what it sees.
    struct Server {
        authority: Authority,
        opened: Arc<AtomicUsize>,
        closed: Arc<AtomicUsize>,
    }

    async fn server(close_after_each: bool) -> Server {
        server_holding(close_after_each, None).await
    }

    /// [`server`], each answer waiting until `hold` has as many requests waiting.
    async fn server_holding(close_after_each: bool, hold: Option<Arc<Barrier>>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let authority: Authority = listener
            .local_addr()
            .expect("address")
            .to_string()
            .parse()
            .expect("authority");
        let opened = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let (o, c) = (opened.clone(), closed.clone());
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                o.fetch_add(1, Ordering::SeqCst);
                let (c, hold) = (c.clone(), hold.clone());
                tokio::spawn(async move {
                    let answer = hyper::service::service_fn(move |_: Request<Incoming>| {
                        let hold = hold.clone();
                        async move {
                            if let Some(hold) = hold {
                                hold.wait().await;
                            }
                            let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
                            if close_after_each {
                                response.headers_mut().insert(
                                    http::header::CONNECTION,
                                    http::HeaderValue::from_static("close"),
                                );
                            }
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(sock), answer)
                        .await;
                    c.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Server {
            authority,
            opened,
            closed,
        }
    }

    fn pool(server: &Server, idle_max: usize, idle_timeout: Duration) -> Pool {
        Pool::new(
            server.authority.clone(),
            idle_max,
            idle_timeout,
            Duration::from_secs(2),
        )
    }

    async fn get(pool: &Pool, authority: &Authority) -> Result<String, BoxError> {
        let request = Request::get("/")
            .header(http::header::HOST, authority.as_str())
            .body(Full::new(Bytes::new()))
            .expect("request");
        let response = pool.clone().send(request).await?;
        let body = response.into_body().collect().await?.to_bytes();
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    async fn until(what: &str, done: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn requests_one_after_another_share_one_connection() {
        let server = server(false).await;
        let pool = pool(&server, 8, Duration::from_secs(60));
        for _ in 0..20 {
            assert_eq!(get(&pool, &server.authority).await.expect("answered"), "ok");
            // hyper marks the connection ready once its task has seen the answer's end.
            tokio::task::yield_now().await;
        }
        assert_eq!(server.opened.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_is_replaced_without_an_error() {
        let server = server(true).await;
        let pool = pool(&server, 8, Duration::from_secs(60));
        for _ in 0..5 {
            assert_eq!(get(&pool, &server.authority).await.expect("answered"), "ok");
        }
        assert_eq!(server.opened.load(Ordering::SeqCst), 5);
        until("the server saw every connection close", || {
            server.closed.load(Ordering::SeqCst) == 5
        })
        .await;
        assert!(pool.inner.checkout().is_none(), "closed ones are not lent");
        assert!(pool.inner.lock().connections.is_empty());
    }

    #[tokio::test]
    async fn idle_connections_are_closed_after_the_idle_timeout() {
        let server = server(false).await;
        let pool = pool(&server, 8, Duration::from_millis(50));
        get(&pool, &server.authority).await.expect("answered");
        until("the idle connection was closed", || {
            server.closed.load(Ordering::SeqCst) == 1
        })
        .await;
        until("the sweep ended with the list empty", || {
            !pool.inner.lock().sweeping
        })
        .await;
        // And the pool still works, sweeping again.
        get(&pool, &server.authority).await.expect("answered");
        assert!(pool.inner.lock().sweeping);
        assert_eq!(server.opened.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn at_most_idle_max_connections_are_kept() {
        // Five requests answered only once all five have arrived: five connections at once.
        let server = server_holding(false, Some(Arc::new(Barrier::new(5)))).await;
        let pool = pool(&server, 2, Duration::from_secs(60));
        let sends = (0..5).map(|_| get(&pool, &server.authority));
        for answer in futures_util::future::join_all(sends).await {
            assert_eq!(answer.expect("answered"), "ok");
        }
        assert_eq!(server.opened.load(Ordering::SeqCst), 5);
        assert_eq!(pool.inner.lock().connections.len(), 2);
        until("the three not kept were closed", || {
            server.closed.load(Ordering::SeqCst) == 3
        })
        .await;
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error() {
        // A port nothing listens on: bind one, then close it.
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind")
            .local_addr()
            .expect("address")
            .port();
        let authority: Authority = format!("127.0.0.1:{port}").parse().expect("authority");
        let pool = Pool::new(
            authority.clone(),
            8,
            Duration::from_secs(60),
            Duration::from_secs(2),
        );
        let error = get(&pool, &authority).await.unwrap_err();
        assert!(error.downcast_ref::<ConnectError>().is_some(), "{error}");
        assert!(super::super::classify::never_sent(error.as_ref()));
    }
}
