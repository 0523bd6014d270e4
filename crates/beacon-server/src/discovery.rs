//! etcd's discovery service (`--discovery <url>`): a new cluster's members find each
//! other through a directory of an etcd v2 keys API (public `discovery.etcd.io` once,
//! or any etcd, or Beacon). `<url>/_config/size` says how many members the cluster
//! has; each member registers itself as `<url>/<member id>` = `name=peer-url,...`
//! (created, never overwritten), then waits until `size` members registered; the first
//! `size`, in creation order, are the cluster (its `--initial-cluster`), and the URL is
//! its `--initial-cluster-token`. A member that finds the first `size` taken without
//! it is too late: the cluster is full.
//!
//! What the answers mean is the pure functions ([`parse_listing`], [`the_cluster`]);
//! asking is [`join`], and for a proxy [`registered_cluster`].

use std::time::Duration;

use beacon_raft::peer::{v2_request, PeerHttp};
use http::{Method, StatusCode};
use serde::Deserialize;

/// How long one request to the discovery service may take (etcd's client default).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one wait for the next registration may take before it is asked again.
const WAIT_TIMEOUT: Duration = Duration::from_secs(60);
/// The waits a join makes at most, registrations or timeouts: a cluster of this many
/// members is far past any etcd cluster, and a join does not wait forever.
const WAITS_MAX: usize = 1000;

/// Why discovery failed, in etcd's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    #[error("discovery: size key is bad")]
    BadSizeKey,
    #[error("discovery: found duplicate id")]
    DuplicateId,
    #[error("discovery: found duplicate name")]
    DuplicateName,
    #[error("discovery: cluster is full")]
    FullCluster,
    #[error("discovery: invalid URL")]
    InvalidUrl,
    #[error("discovery: bad discovery endpoint")]
    BadEndpoint,
    /// The service could not be asked, or answered something else.
    #[error("{0}")]
    Service(String),
}

/// One registration: its key's last segment (a member id in hex), its value and when it
/// was created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub id: String,
    pub value: String,
    pub created_index: u64,
}

#[derive(Deserialize)]
struct Listing {
    node: Node,
}

#[derive(Deserialize)]
struct Event {
    node: Node,
}

#[derive(Deserialize)]
struct Node {
    key: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default, rename = "createdIndex")]
    created_index: u64,
    #[serde(default, rename = "modifiedIndex")]
    modified_index: u64,
    #[serde(default)]
    nodes: Vec<Node>,
}

fn registration(node: Node) -> Registration {
    let id = node.key.rsplit('/').next().unwrap_or_default().to_string();
    Registration {
        id,
        value: node.value.unwrap_or_default(),
        created_index: node.created_index,
    }
}

/// The registrations a listing of the directory holds, `_config` left out, in creation
/// order.
pub fn parse_listing(body: &[u8]) -> Result<Vec<Registration>, DiscoveryError> {
    let listing: Listing = serde_json::from_slice(body).map_err(|_| DiscoveryError::BadEndpoint)?;
    let mut nodes: Vec<Registration> = listing
        .node
        .nodes
        .into_iter()
        .map(registration)
        .filter(|r| r.id != "_config")
        .collect();
    nodes.sort_by_key(|r| r.created_index);
    Ok(nodes)
}

/// The cluster the first `size` registrations make, as an `--initial-cluster` value;
/// `Err` when `own_id`, registered or not, is not among them (the cluster is full), or
/// they do not make a cluster.
pub fn the_cluster(
    registrations: &[Registration],
    size: usize,
    own_id: Option<&str>,
) -> Result<String, DiscoveryError> {
    let first = &registrations[..registrations.len().min(size)];
    if let Some(own) = own_id {
        if registrations.len() >= size && !first.iter().any(|r| r.id == own) {
            return Err(DiscoveryError::FullCluster);
        }
    }
    let joined = first
        .iter()
        .map(|r| r.value.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let parsed =
        crate::config::parse_initial_cluster(&joined).map_err(|_| DiscoveryError::InvalidUrl)?;
    let mut names: Vec<&str> = parsed.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    if names.len() != first.len() {
        return Err(DiscoveryError::DuplicateName);
    }
    Ok(joined)
}

/// The discovery URL's directory, and the service's base (scheme and authority).
fn split(url: &str) -> Result<(String, String), DiscoveryError> {
    let uri: http::Uri = url.parse().map_err(|_| DiscoveryError::InvalidUrl)?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(DiscoveryError::InvalidUrl);
    };
    Ok((
        format!("{scheme}://{authority}"),
        uri.path().trim_end_matches('/').to_string(),
    ))
}

async fn get(
    http: &PeerHttp,
    url: &str,
    timeout: Duration,
) -> Result<(StatusCode, u64, bytes::Bytes), DiscoveryError> {
    v2_request(http, Method::GET, url, None, timeout)
        .await
        .map_err(DiscoveryError::Service)
}

/// A v2 error body as etcd's client prints it: `code: message (cause) [index]`.
fn v2_error(body: &[u8]) -> DiscoveryError {
    #[derive(Deserialize)]
    struct V2Error {
        #[serde(rename = "errorCode")]
        code: i64,
        message: String,
        #[serde(default)]
        cause: String,
        #[serde(default)]
        index: u64,
    }
    match serde_json::from_slice::<V2Error>(body) {
        Ok(e) => DiscoveryError::Service(format!(
            "{}: {} ({}) [{}]",
            e.code, e.message, e.cause, e.index
        )),
        Err(_) => DiscoveryError::BadEndpoint,
    }
}

/// The cluster size and the registrations so far, with the directory's index.
async fn check(
    http: &PeerHttp,
    dir: &str,
) -> Result<(usize, Vec<Registration>, u64), DiscoveryError> {
    let (status, _, body) = get(http, &format!("{dir}/_config/size"), REQUEST_TIMEOUT).await?;
    if status == StatusCode::NOT_FOUND {
        // etcd means "discovery: size key not found" here, but its check misses the
        // client's error type, so it reports the service's own error: so does Beacon.
        return Err(v2_error(&body));
    }
    let size_node: Event =
        serde_json::from_slice(&body).map_err(|_| DiscoveryError::BadEndpoint)?;
    let size = size_node
        .node
        .value
        .and_then(|v| v.parse::<usize>().ok())
        .ok_or(DiscoveryError::BadSizeKey)?;
    let (status, index, body) = get(http, dir, REQUEST_TIMEOUT).await?;
    if !status.is_success() {
        return Err(DiscoveryError::Service(format!(
            "{dir}: {status}: {}",
            String::from_utf8_lossy(&body).trim()
        )));
    }
    Ok((size, parse_listing(&body)?, index))
}

/// Registers member `own_id` (hex) with `own` (`name=peer-url,...`) at the discovery
/// URL and waits for the cluster; its `--initial-cluster` value.
pub async fn join(
    http: &PeerHttp,
    url: &str,
    own_id: &str,
    own: &str,
) -> Result<String, DiscoveryError> {
    let (base, path) = split(url)?;
    let dir = format!("{base}{path}");
    // A full cluster is told before registering, as etcd's fast path does.
    let (size, registrations, _) = check(http, &dir).await?;
    the_cluster(&registrations, size, Some(own_id))
        .map(|_| ())
        .or_else(|e| match e {
            DiscoveryError::FullCluster => Err(e),
            _ => Ok(()),
        })?;
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("value", own)
        .finish();
    let created = v2_request(
        http,
        Method::PUT,
        &format!("{dir}/{own_id}?prevExist=false"),
        Some(form),
        REQUEST_TIMEOUT,
    )
    .await
    .map_err(DiscoveryError::Service)?;
    match created.0 {
        StatusCode::CREATED => {}
        StatusCode::PRECONDITION_FAILED => return Err(DiscoveryError::DuplicateId),
        other => {
            return Err(DiscoveryError::Service(format!(
                "registering {own_id}: {other}: {}",
                String::from_utf8_lossy(&created.2).trim()
            )))
        }
    }
    let (size, registrations) = gather(http, &dir, Some(own_id)).await?;
    the_cluster(&registrations, size, Some(own_id))
}

/// The cluster's size and its first `size` registrations, waiting for the directory
/// `dir` to hold that many; `own_id` is told apart from its peers in the log.
async fn gather(
    http: &PeerHttp,
    dir: &str,
    own_id: Option<&str>,
) -> Result<(usize, Vec<Registration>), DiscoveryError> {
    let (size, mut registrations, mut index) = check(http, dir).await?;
    registrations.truncate(size);
    for r in &registrations {
        let whose = if Some(r.id.as_str()) == own_id {
            "self"
        } else {
            "peer"
        };
        tracing::info!("found {whose} {} in the cluster", r.id);
    }
    let mut waits = 0;
    while registrations.len() < size {
        tracing::info!(
            "found {} peer(s), waiting for {} more",
            registrations.len(),
            size - registrations.len()
        );
        waits += 1;
        if waits > WAITS_MAX {
            return Err(DiscoveryError::Service("too many waits".into()));
        }
        let watch = format!("{dir}?wait=true&recursive=true&waitIndex={}", index + 1);
        let Ok((status, _, body)) = get(http, &watch, WAIT_TIMEOUT).await else {
            continue;
        };
        if !status.is_success() {
            // The history moved past the index (a 400 "event index cleared"): start over.
            let (_, again, now) = check(http, dir).await?;
            registrations = again.into_iter().take(size).collect();
            index = now;
            continue;
        }
        let event: Event =
            serde_json::from_slice(&body).map_err(|_| DiscoveryError::BadEndpoint)?;
        // The next wait starts after this event, whatever it did to the directory.
        index = index.max(event.node.modified_index);
        let found = registration(event.node);
        if found.id != "_config" && !registrations.iter().any(|r| r.id == found.id) {
            tracing::info!("found peer {} in the cluster", found.id);
            registrations.push(found);
        }
    }
    tracing::info!("found {} needed peer(s)", registrations.len());
    Ok((size, registrations))
}

/// The cluster registered at the discovery URL, as a proxy reads it (etcd's
/// `GetCluster`): the first `size` registrations, once that many registered.
pub async fn registered_cluster(http: &PeerHttp, url: &str) -> Result<String, DiscoveryError> {
    let (base, path) = split(url)?;
    let (size, registrations) = gather(http, &format!("{base}{path}"), None).await?;
    the_cluster(&registrations, size, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(id: &str, value: &str, created_index: u64) -> Registration {
        Registration {
            id: id.into(),
            value: value.into(),
            created_index,
        }
    }

    #[test]
    fn a_listing_is_read_in_creation_order_without_its_config() {
        let body = br#"{"action":"get","node":{"key":"/_etcd/registry/t","dir":true,"nodes":[
            {"key":"/_etcd/registry/t/b2","value":"b=http://b:2380","createdIndex":9},
            {"key":"/_etcd/registry/t/_config","dir":true,"createdIndex":5},
            {"key":"/_etcd/registry/t/a1","value":"a=http://a:2380","createdIndex":7}]}}"#;
        let found = parse_listing(body).unwrap();
        assert_eq!(
            found,
            [
                reg("a1", "a=http://a:2380", 7),
                reg("b2", "b=http://b:2380", 9)
            ]
        );
        assert_eq!(parse_listing(b"<html>"), Err(DiscoveryError::BadEndpoint));
    }

    #[test]
    fn the_first_size_registrations_are_the_cluster() {
        let all = [
            reg("a1", "a=http://a:2380", 7),
            reg("b2", "b=http://b:2380", 9),
            reg("c3", "c=http://c:2380", 11),
        ];
        assert_eq!(
            the_cluster(&all, 2, Some("b2")),
            Ok("a=http://a:2380,b=http://b:2380".to_string())
        );
        assert_eq!(
            the_cluster(&all, 2, Some("c3")),
            Err(DiscoveryError::FullCluster)
        );
        // Not everyone is there yet: no verdict on fullness.
        assert!(the_cluster(&all[..1], 2, Some("c3")).is_ok());
        let twins = [
            reg("a1", "a=http://a:2380", 7),
            reg("a2", "a=http://x:2380", 8),
        ];
        assert_eq!(
            the_cluster(&twins, 2, None),
            Err(DiscoveryError::DuplicateName)
        );
        let bad = [reg("a1", "nonsense", 7)];
        assert_eq!(the_cluster(&bad, 1, None), Err(DiscoveryError::InvalidUrl));
    }

    #[test]
    fn the_url_splits_into_the_service_and_the_directory() {
        assert_eq!(
            split("http://127.0.0.1:2379/v2/keys/_etcd/registry/tok/"),
            Ok((
                "http://127.0.0.1:2379".to_string(),
                "/v2/keys/_etcd/registry/tok".to_string()
            ))
        );
        assert_eq!(split("not a url"), Err(DiscoveryError::InvalidUrl));
    }

    #[test]
    fn a_v2_error_reads_as_etcds_client_prints_it() {
        let body = br#"{"errorCode":100,"message":"Key not found","cause":"/t","index":3}"#;
        assert_eq!(v2_error(body).to_string(), "100: Key not found (/t) [3]");
        assert_eq!(v2_error(b"<html>"), DiscoveryError::BadEndpoint);
    }
}
