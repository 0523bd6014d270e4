//! The keys calls: get, set, create-in-order and delete, and reading their answers.

use reqwest::Method;

use beacon_api::{EtcdError, Event};

use crate::client::Client;
use crate::error::Error;
use crate::options::{DeleteOptions, GetOptions, PrevExist, SetOptions};
use crate::response::Response;
use crate::transport::{RawResponse, Request};
use crate::url::keys_url;

impl Client {
    /// `GET /v2/keys/<key>`.
    pub async fn get(&self, key: &str, opts: &GetOptions) -> Result<Response, Error> {
        let query = vec![
            ("recursive", opts.recursive.to_string()),
            ("sorted", opts.sorted.to_string()),
            ("quorum", opts.quorum.to_string()),
        ];
        let req = self.keys_request(Method::GET, key, query, None, false);
        expect_event(self.send(&req).await?)
    }

    /// `PUT /v2/keys/<key>`: set a value or make a directory, under the given conditions.
    pub async fn set(&self, key: &str, value: &str, opts: &SetOptions) -> Result<Response, Error> {
        let mut query = Vec::new();
        let mut form = Vec::new();
        if opts.dir {
            query.push(("dir", "true".to_string()));
        } else {
            if let Some(prev) = &opts.prev_value {
                query.push(("prevValue", prev.clone()));
            }
            // A refresh must not carry a value; etcd rejects one.
            if !(opts.refresh && value.is_empty()) {
                form.push(("value", value.to_string()));
            }
        }
        if let Some(index) = opts.prev_index {
            query.push(("prevIndex", index.to_string()));
        }
        if let Some(prev) = opts.prev_exist {
            let exists = prev == PrevExist::Exists;
            query.push(("prevExist", exists.to_string()));
        }
        if let Some(ttl) = opts.ttl {
            form.push(("ttl", ttl.to_string()));
        }
        if opts.refresh {
            form.push(("refresh", "true".to_string()));
        }
        let one_shot = opts.prev_exist == Some(PrevExist::Absent);
        let req = self.keys_request(Method::PUT, key, query, Some(form), one_shot);
        expect_event(self.send(&req).await?)
    }

    /// Resets the TTL of an existing key without changing it or waking watchers.
    pub async fn refresh(&self, key: &str, ttl: u64) -> Result<Response, Error> {
        let opts = SetOptions {
            ttl: Some(ttl),
            prev_exist: Some(PrevExist::Exists),
            refresh: true,
            ..SetOptions::default()
        };
        self.set(key, "", &opts).await
    }

    /// `POST /v2/keys/<dir>`: a new key under `dir` named by the etcd index.
    pub async fn create_in_order(
        &self,
        dir: &str,
        value: &str,
        ttl: Option<u64>,
    ) -> Result<Response, Error> {
        let mut form = vec![("value", value.to_string())];
        if let Some(ttl) = ttl {
            form.push(("ttl", ttl.to_string()));
        }
        let req = self.keys_request(Method::POST, dir, Vec::new(), Some(form), true);
        expect_event(self.send(&req).await?)
    }

    /// `DELETE /v2/keys/<key>`.
    pub async fn delete(&self, key: &str, opts: &DeleteOptions) -> Result<Response, Error> {
        let mut query = Vec::new();
        if let Some(prev) = &opts.prev_value {
            query.push(("prevValue", prev.clone()));
        }
        if let Some(index) = opts.prev_index {
            query.push(("prevIndex", index.to_string()));
        }
        if opts.dir {
            query.push(("dir", "true".to_string()));
        }
        if opts.recursive {
            query.push(("recursive", "true".to_string()));
        }
        let req = self.keys_request(Method::DELETE, key, query, None, true);
        expect_event(self.send(&req).await?)
    }

    pub(crate) fn keys_request(
        &self,
        method: Method,
        key: &str,
        query: Vec<(&'static str, String)>,
        form: Option<Vec<(&'static str, String)>>,
        one_shot: bool,
    ) -> Request {
        Request {
            method,
            url: keys_url,
            target: key.to_string(),
            query,
            form,
            json: None,
            timeout: Some(self.inner.timeout),
            one_shot,
        }
    }
}

/// A keys answer that must carry an event.
fn expect_event(raw: RawResponse) -> Result<Response, Error> {
    parse_keys_response(raw)?.ok_or_else(|| Error::InvalidResponse {
        endpoint: String::new(),
        reason: "client: response body is empty".to_string(),
    })
}

/// Reads a keys answer: `Ok(None)` for a success with an empty body (a watch the server
/// ended without an event), an etcd error for any other status.
pub(crate) fn parse_keys_response(raw: RawResponse) -> Result<Option<Response>, Error> {
    let invalid = |reason: String| Error::InvalidResponse {
        endpoint: raw.endpoint.clone(),
        reason,
    };
    if raw.status != 200 && raw.status != 201 {
        return Err(parse_error_body(&raw).map_err(invalid)?);
    }
    if raw.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let mut event: Event = serde_json::from_slice(&raw.body).map_err(|e| invalid(e.to_string()))?;
    let etcd_index = match raw.headers.get("X-Etcd-Index") {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid(format!("bad X-Etcd-Index {v:?}")))?,
        None => 0,
    };
    event.etcd_index = etcd_index;
    let cluster_id = raw
        .headers
        .get("X-Etcd-Cluster-Id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok(Some(Response {
        event,
        etcd_index,
        cluster_id,
    }))
}

fn parse_error_body(raw: &RawResponse) -> Result<Error, String> {
    let error: EtcdError = serde_json::from_slice(&raw.body).map_err(|e| e.to_string())?;
    Ok(Error::Etcd {
        status: raw.status,
        error,
    })
}
