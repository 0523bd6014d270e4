//! The members API: list, leader, add, remove, update.

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

    /// Adds a member with `peer_urls`; the cluster's record of it (no name yet).
    pub async fn add_member(&self, peer_urls: &[String]) -> Result<Member, Error> {
        let raw = self
            .send(&self.change_request(Method::POST, "/v2/members", Some(peer_urls)))
            .await?;
        match raw.status {
            201 => decode_status(raw, 201),
            409 => Err(refusal(raw)),
            other => Err(Error::UnexpectedStatus(other)),
        }
    }

    /// Removes member `id` (hex). A member already removed counts as removed, as for
    /// etcd's client.
    pub async fn remove_member(&self, id: &str) -> Result<(), Error> {
        let path = format!("/v2/members/{id}");
        let raw = self
            .send(&self.change_request(Method::DELETE, &path, None))
            .await?;
        match raw.status {
            204 | 410 => Ok(()),
            other => Err(Error::UnexpectedStatus(other)),
        }
    }

    /// Replaces member `id`'s peer URLs.
    pub async fn update_member(&self, id: &str, peer_urls: &[String]) -> Result<(), Error> {
        let path = format!("/v2/members/{id}");
        let raw = self
            .send(&self.change_request(Method::PUT, &path, Some(peer_urls)))
            .await?;
        match raw.status {
            204 => Ok(()),
            404 | 409 => Err(refusal(raw)),
            other => Err(Error::UnexpectedStatus(other)),
        }
    }

    /// A membership change: sent once (it may apply), JSON `{"peerURLs": [...]}` if any.
    fn change_request(&self, method: Method, path: &str, peer_urls: Option<&[String]>) -> Request {
        let json = peer_urls.map(|urls| serde_json::json!({ "peerURLs": urls }).to_string());
        Request {
            method,
            json,
            one_shot: true,
            ..self.path_request(path)
        }
    }

    pub(crate) fn path_request(&self, path: &str) -> Request {
        Request {
            method: Method::GET,
            url: path_url,
            target: path.to_string(),
            query: Vec::new(),
            form: None,
            json: None,
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

/// A JSON answer that must come with `status`.
fn decode_status<T: serde::de::DeserializeOwned>(
    raw: RawResponse,
    status: u16,
) -> Result<T, Error> {
    if raw.status != status {
        return Err(Error::UnexpectedStatus(raw.status));
    }
    serde_json::from_slice(&raw.body).map_err(|e| Error::InvalidResponse {
        endpoint: raw.endpoint.clone(),
        reason: e.to_string(),
    })
}

/// The members API's `{"message": ...}` refusal.
fn refusal(raw: RawResponse) -> Error {
    #[derive(Deserialize)]
    struct Message {
        #[serde(default)]
        message: String,
    }
    let message = serde_json::from_slice::<Message>(&raw.body)
        .map(|m| m.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(&raw.body).into_owned());
    Error::Members {
        status: raw.status,
        message,
    }
}
