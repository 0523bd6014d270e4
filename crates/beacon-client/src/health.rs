//! `GET /health`, through the endpoints or at one given member URL.

use reqwest::Url;
use serde::Deserialize;

use crate::client::Client;
use crate::error::Error;
use crate::members::decode;
use crate::url::parse_endpoint;

/// A member's answer to `/health`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Health {
    /// Whether the member says it is healthy.
    pub healthy: bool,
}

/// etcd 3.4 sends `"true"`; older members sent a JSON boolean. Both are accepted.
#[derive(Deserialize)]
struct WireHealth {
    health: serde_json::Value,
}

impl Client {
    /// `/health` of the first endpoint that answers.
    pub async fn health(&self) -> Result<Health, Error> {
        let raw = self.send(&self.path_request("/health")).await?;
        health_of(raw)
    }

    /// `/health` of the member at `url` only (not one of the client's endpoints).
    pub async fn health_at(&self, url: &str) -> Result<Health, Error> {
        let endpoint: Url =
            parse_endpoint(url).ok_or_else(|| Error::InvalidEndpoint(url.to_string()))?;
        let raw = self
            .send_one(&endpoint, &self.path_request("/health"))
            .await?;
        health_of(raw)
    }
}

fn health_of(raw: crate::transport::RawResponse) -> Result<Health, Error> {
    let wire: WireHealth = decode(raw)?;
    let healthy = wire.health == serde_json::Value::String("true".into())
        || wire.health == serde_json::Value::Bool(true);
    Ok(Health { healthy })
}
