//! `discover SERVICE`: print a service's live instances, then follow them. Output lines
//! are `+ <dc>/<id> <host:port>` when an instance appears or changes and `- <dc>/<id>`
//! when it goes; the first lines are the instances found at start.
//!
//! Following is the client library's [`Discovery`] (list, watch, re-list after a
//! history gap, back off while the cluster is away), with no removal held back: the
//! command shows the registry as it is; `--api 3` lists and watches through v3.

use std::collections::BTreeMap;

use beacon_client::discovery::service_prefix;
use beacon_client::{
    Discovery, DiscoveryConfig, ErrorCode, GetOptions, InstanceInfo, Registry, V3Client,
};
use futures_util::StreamExt;
use tower::discover::Change;

use super::service::display_value;
use crate::cli::{DiscoverArgs, Global};
use crate::context::Ctx;
use crate::fail::{exit, CmdResult, Fail};
use crate::signals::shutdown;

/// Runs `discover`.
pub async fn run(g: &Global, a: &DiscoverArgs) -> CmdResult {
    let dir = service_prefix(&a.service, None);
    let ctx = Ctx::for_api(g).await?;
    let registry = ctx.registry(g)?;
    // Listed here even when following, so an unreachable cluster fails the command as
    // etcdctl's would, instead of being retried quietly.
    let instances = match &registry {
        Registry::V2(_) => list(&ctx, &dir).await?,
        Registry::V3(client) => list_v3(&ctx, client, &dir).await?,
    };
    if a.once {
        for (key, value) in &instances {
            println!("+ {} {}", relative(&dir, key), display_value(value));
        }
        return Ok(());
    }
    let config = DiscoveryConfig {
        max_removed_share: 1.0,
        ..DiscoveryConfig::default()
    };
    let mut discovery = Discovery::start(registry, &dir, config);
    let follow = async {
        while let Some(Ok(change)) = discovery.next().await {
            match change {
                Change::Insert(key, instance) => {
                    let value = instance.info.to_json();
                    println!("+ {} {}", relative(&dir, &key), display_value(&value));
                }
                Change::Remove(key) => println!("- {}", relative(&dir, &key)),
            }
        }
    };
    tokio::select! {
        () = follow => Ok(()),
        () = shutdown() => Ok(()),
    }
}

/// The instances under `dir` (key -> stored value).
async fn list(ctx: &Ctx, dir: &str) -> Result<BTreeMap<String, String>, Fail> {
    let opts = GetOptions {
        recursive: true,
        sorted: true,
        quorum: true,
    };
    let got = crate::context::within(ctx.total_timeout, ctx.client.get(dir, &opts)).await;
    let root = match got {
        Ok(Ok(resp)) => resp.event.node,
        // No instance was ever registered: an empty set.
        Ok(Err(beacon_client::Error::Etcd { error, .. }))
            if error.code == ErrorCode::KeyNotFound =>
        {
            None
        }
        Ok(Err(e)) => return Err(Fail::client(exit::SERVER_ERROR, &e)),
        Err(_) => {
            return Err(Fail::error(
                exit::SERVER_ERROR,
                crate::fail::DEADLINE_EXCEEDED,
            ))
        }
    };
    let mut instances = BTreeMap::new();
    let mut pending: Vec<_> = root.into_iter().collect();
    while let Some(node) = pending.pop() {
        if node.dir {
            pending.extend(node.nodes);
        } else if let Some(value) = node.value {
            let value = value.to_string();
            if InstanceInfo::parse(&value).is_some() {
                instances.insert(node.key.to_string(), value);
            }
        }
    }
    Ok(instances)
}

/// The instances under `dir/` through the v3 API (key -> stored value).
async fn list_v3(
    ctx: &Ctx,
    client: &V3Client,
    dir: &str,
) -> Result<BTreeMap<String, String>, Fail> {
    let listing = ctx
        .call(client.range_prefix(format!("{dir}/").as_bytes()))
        .await?;
    Ok(listing
        .kvs
        .into_iter()
        .filter_map(|kv| {
            let key = String::from_utf8(kv.key).ok()?;
            let value = String::from_utf8(kv.value).ok()?;
            InstanceInfo::parse(&value)
                .is_some()
                .then_some((key, value))
        })
        .collect())
}

/// `dc1/i-1` for `/services/web/dc1/i-1`.
fn relative<'a>(dir: &str, key: &'a str) -> &'a str {
    key.strip_prefix(dir)
        .map_or(key, |rest| rest.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_print_relative_to_the_service() {
        assert_eq!(relative("/services/web", "/services/web/dc1/a"), "dc1/a");
        assert_eq!(relative("/services/web", "/elsewhere/x"), "/elsewhere/x");
    }
}
