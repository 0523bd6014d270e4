//! `GET /v2/members` and `GET /v2/members/leader`.

use reqwest::{Method, Url};
use serde::Deserialize;

use crate::client::Client;
use crate::error::Error;
use crate::transport::{RawResponse, Request};
use crate::url::with_path;

/// A cluster member as `/v2/members` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Member {
    /// The member id, in hex.
    pub id: String,
    /// The member name; empty while it has not started.
    #[serde(default)]
    pub name: String,
    /// URLs the member's peers reach it on.
    #[serde(rename = "peerURLs", default)]
    pub peer_urls: Vec<String>,
    /// URLs clients reach it on.
    #[serde(rename = "clientURLs", default)]
    pub client_urls: Vec<String>,
}

#[derive(Deserialize)]
struct MemberList {
    #[serde(default)]
    members: Vec<Member>,
}

impl Client {
    /// The cluster's members.
    pub async fn members(&self) -> Result<Vec<Member>, Error> {
        let raw = self.send(&self.path_request("/v2/members")).await?;
        let list: MemberList = decode(raw)?;
        Ok(list.members)
    }

    /// The member that leads the cluster.
    pub async fn leader(&self) -> Result<Member, Error> {
        let raw = self.send(&self.path_request("/v2/members/leader")).await?;
        decode(raw)
    }

    pub(crate) fn path_request(&self, path: &str) -> Request {
        Request {
            method: Method::GET,
            url: path_url,
            target: path.to_string(),
            query: Vec::new(),
            form: None,
            timeout: Some(self.inner.timeout),
            one_shot: false,
        }
    }
}

fn path_url(endpoint: &Url, path: &str) -> Url {
    with_path(endpoint, path)
}

/// A JSON answer that must come with 200.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(raw: RawResponse) -> Result<T, Error> {
    let invalid = |reason: String| Error::InvalidResponse {
        endpoint: raw.endpoint.clone(),
        reason,
    };
    if raw.status != 200 {
        return Err(invalid(format!("HTTP status {}", raw.status)));
    }
    serde_json::from_slice(&raw.body).map_err(|e| invalid(e.to_string()))
}
