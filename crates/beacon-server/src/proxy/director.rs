//! Which members the proxy forwards to: the client URLs of the last refresh, in a
//! random order (etcd shuffles them so that proxies spread their load), less those
//! that failed within `--proxy-failure-wait`. Pure apart from the lock: the caller
//! passes the time, so that tests drive it with a paused clock.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// One member's client URL, and until when it is skipped after a failure.
#[derive(Clone, Debug)]
struct Endpoint {
    url: String,
    skipped_until: Option<Instant>,
}

/// The endpoints a request may be forwarded to.
#[derive(Debug)]
pub struct Director {
    endpoints: Mutex<Vec<Endpoint>>,
    failure_wait: Duration,
}

/// An endpoint's scheme and authority, as a request to it begins: `http://host:port`.
pub type EndpointUrl = String;

impl Director {
    /// No endpoints yet; each that fails is skipped for `failure_wait`.
    pub fn new(failure_wait: Duration) -> Director {
        Director {
            endpoints: Mutex::new(Vec::new()),
            failure_wait,
        }
    }

    /// Replaces the endpoints with `urls` (every one available again, as etcd's new
    /// endpoints are), shuffled with `seed`; a URL that is not `scheme://authority` is
    /// logged and left out.
    pub fn set(&self, urls: &[String], seed: u64) {
        let mut fresh: Vec<Endpoint> = Vec::with_capacity(urls.len());
        for url in urls {
            match base(url) {
                Some(url) => fresh.push(Endpoint {
                    url,
                    skipped_until: None,
                }),
                None => tracing::warn!(%url, "upstream URL invalid"),
            }
        }
        shuffle(&mut fresh, seed);
        *self.lock() = fresh;
    }

    /// The endpoints available at `now`, in their order.
    pub fn available(&self, now: Instant) -> Vec<EndpointUrl> {
        let mut endpoints = self.lock();
        let mut out = Vec::with_capacity(endpoints.len());
        for e in endpoints.iter_mut() {
            if let Some(until) = e.skipped_until {
                if now < until {
                    continue;
                }
                e.skipped_until = None;
                tracing::info!(endpoint = %e.url, "marked endpoint available, to retest connectivity");
            }
            out.push(e.url.clone());
        }
        out
    }

    /// Skips `url` until `failure_wait` after `now`; one already skipped keeps its time.
    pub fn failed(&self, url: &str, now: Instant) {
        let mut endpoints = self.lock();
        for e in endpoints.iter_mut().filter(|e| e.url == url) {
            if e.skipped_until.is_some_and(|until| now < until) {
                continue;
            }
            e.skipped_until = Some(now + self.failure_wait);
            tracing::info!(endpoint = %e.url, "marked endpoint unavailable");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Endpoint>> {
        // The list is replaced or marked whole under the lock: a panic elsewhere
        // leaves it consistent, so a poisoned lock is still usable.
        self.endpoints
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// `scheme://authority` of `url` (its path is dropped: etcd's proxy replaces only the
/// scheme and host of each request), when it has both.
fn base(url: &str) -> Option<String> {
    let uri: http::Uri = url.parse().ok()?;
    Some(format!("{}://{}", uri.scheme_str()?, uri.authority()?))
}

/// Fisher-Yates with a small xorshift generator: the order only needs to differ
/// between proxies, not to be unpredictable.
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut state = seed | 1;
    for i in (1..items.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let j = usize::try_from(state % (i as u64 + 1)).unwrap_or(0);
        items.swap(i, j);
    }
}

/// A seed that differs between processes and calls.
pub fn random_seed() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_endpoint_is_skipped_for_the_failure_wait() {
        let d = Director::new(Duration::from_secs(5));
        d.set(&urls(&["http://a:1", "http://b:2/ignored/path"]), 7);
        let mut all = d.available(Instant::now());
        all.sort();
        assert_eq!(all, ["http://a:1", "http://b:2"]);
        d.failed("http://a:1", Instant::now());
        assert_eq!(d.available(Instant::now()), ["http://b:2"]);
        tokio::time::advance(Duration::from_millis(4999)).await;
        d.failed("http://a:1", Instant::now()); // already skipped: keeps its time
        assert_eq!(d.available(Instant::now()), ["http://b:2"]);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(d.available(Instant::now()).len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refresh_makes_every_endpoint_available_and_drops_bad_urls() {
        let d = Director::new(Duration::from_secs(5));
        d.set(&urls(&["http://a:1"]), 1);
        d.failed("http://a:1", Instant::now());
        assert!(d.available(Instant::now()).is_empty());
        d.set(&urls(&["http://a:1", "not a url", "/relative"]), 1);
        assert_eq!(d.available(Instant::now()), ["http://a:1"]);
    }

    #[test]
    fn shuffles_keep_every_item_and_seeds_change_the_order() {
        let mut orders = std::collections::HashSet::new();
        for seed in 0..50 {
            let mut items: Vec<u32> = (0..5).collect();
            shuffle(&mut items, seed);
            let mut sorted = items.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..5).collect::<Vec<_>>());
            orders.insert(items);
        }
        assert!(orders.len() > 5, "{orders:?}");
    }
}
