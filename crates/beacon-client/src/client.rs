//! The client handle: endpoints, the per-call timeout and the shared HTTP connection pool.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use reqwest::Url;

use crate::error::Error;
use crate::url::parse_endpoint;

/// A v2 client; cheap to clone, clones share endpoints and connections.
#[derive(Clone, Debug)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) http: reqwest::Client,
    pub(crate) endpoints: RwLock<Vec<Url>>,
    /// The endpoint that answered last; calls start there, as etcd's client does.
    pub(crate) pinned: AtomicUsize,
    pub(crate) timeout: Duration,
}

impl Client {
    /// A client over `endpoints` (`http://host:port`; a missing scheme means `http`) whose
    /// calls, watches aside, each give up after `timeout`.
    pub fn new(endpoints: Vec<String>, timeout: Duration) -> Result<Client, Error> {
        Client::with_tls(endpoints, timeout, None)
    }

    /// [`Client::new`] whose `https` endpoints are reached with `tls` (the CA that
    /// signs their certificates and the pair to present: etcdctl's `--cacert`,
    /// `--cert`, `--key`); without it, with the system's roots and no pair.
    pub fn with_tls(
        endpoints: Vec<String>,
        timeout: Duration,
        tls: Option<&beacon_tls::TlsInfo>,
    ) -> Result<Client, Error> {
        let default = beacon_tls::TlsInfo::default();
        let config = tls
            .unwrap_or(&default)
            .client_config(&[b"http/1.1"])
            .map_err(|e| Error::Tls(e.to_string()))?;
        let http = reqwest::Client::builder()
            // Connecting is bounded separately so a dead endpoint cannot eat a watch's
            // unbounded budget before the next endpoint is tried.
            .connect_timeout(timeout.max(Duration::from_millis(1)))
            .use_preconfigured_tls(std::sync::Arc::unwrap_or_clone(config))
            .build()
            .map_err(|e| Error::InvalidEndpoint(e.to_string()))?;
        let client = Client {
            inner: Arc::new(Inner {
                http,
                endpoints: RwLock::new(Vec::new()),
                pinned: AtomicUsize::new(0),
                timeout,
            }),
        };
        client.set_endpoints(endpoints)?;
        Ok(client)
    }

    /// The endpoints, in the order they are tried from the first.
    pub fn endpoints(&self) -> Vec<String> {
        self.read_endpoints()
            .iter()
            .map(|u| u.as_str().trim_end_matches('/').to_string())
            .collect()
    }

    /// Replaces the endpoints.
    pub fn set_endpoints(&self, endpoints: Vec<String>) -> Result<(), Error> {
        if endpoints.is_empty() {
            return Err(Error::NoEndpoints);
        }
        let parsed = endpoints
            .iter()
            .map(|e| parse_endpoint(e).ok_or_else(|| Error::InvalidEndpoint(e.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        match self.inner.endpoints.write() {
            Ok(mut guard) => *guard = parsed,
            Err(poisoned) => *poisoned.into_inner() = parsed,
        }
        self.inner.pinned.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// The per-call timeout.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// Replaces the endpoints by the client URLs the cluster's members publish, as
    /// etcdctl does before each command; keeps them when no member publishes any.
    pub async fn sync(&self) -> Result<(), Error> {
        let members = self.members().await?;
        let urls: Vec<String> = members.into_iter().flat_map(|m| m.client_urls).collect();
        if urls.is_empty() {
            return Ok(());
        }
        let mut current = self.endpoints();
        let mut next: Vec<String> = urls
            .iter()
            .map(|u| u.trim_end_matches('/').to_string())
            .collect();
        current.sort();
        next.sort();
        if current == next {
            return Ok(());
        }
        self.set_endpoints(urls)
    }

    pub(crate) fn read_endpoints(&self) -> Vec<Url> {
        match self.inner.endpoints.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}
