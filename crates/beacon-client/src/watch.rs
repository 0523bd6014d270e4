//! Watches: one long poll for the next event, and a watcher that keeps polling.

use reqwest::Method;

use crate::client::Client;
use crate::error::Error;
use crate::keys::parse_keys_response;
use crate::options::WatchOptions;
use crate::response::Response;

impl Client {
    /// `GET /v2/keys/<key>?wait=true`: waits for the next event at or after
    /// `opts.wait_index` (or the next change), for as long as `opts.timeout` allows.
    pub async fn watch(&self, key: &str, opts: &WatchOptions) -> Result<Response, Error> {
        let mut query = vec![("wait", "true".to_string())];
        if let Some(index) = opts.wait_index {
            query.push(("waitIndex", index.to_string()));
        }
        query.push(("recursive", opts.recursive.to_string()));
        let mut req = self.keys_request(Method::GET, key, query, None, false);
        req.timeout = opts.timeout;
        loop {
            // etcd ends an idle watch with an empty body after a while; ask again.
            if let Some(resp) = parse_keys_response(self.send(&req).await?)? {
                return Ok(resp);
            }
        }
    }

    /// A watcher on `key` that yields every event from `opts.wait_index` on.
    pub fn watcher(&self, key: &str, opts: WatchOptions) -> Watcher {
        Watcher {
            client: self.clone(),
            key: key.to_string(),
            opts,
        }
    }
}

/// Successive events on a key: each call to [`Watcher::next`] watches again from the
/// modified index after the last event, so none is missed while no one is waiting.
#[derive(Clone, Debug)]
pub struct Watcher {
    client: Client,
    key: String,
    opts: WatchOptions,
}

impl Watcher {
    /// The next event.
    pub async fn next(&mut self) -> Result<Response, Error> {
        let resp = self.client.watch(&self.key, &self.opts).await?;
        self.opts.wait_index = Some(resp.event.index() + 1);
        Ok(resp)
    }

    /// The index the next watch starts from, if known.
    pub fn wait_index(&self) -> Option<u64> {
        self.opts.wait_index
    }

    /// Restarts the watch from `index` (e.g. after re-listing on `EventIndexCleared`).
    pub fn set_wait_index(&mut self, index: Option<u64>) {
        self.opts.wait_index = index;
    }
}
