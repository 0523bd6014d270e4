//! `discover SERVICE`: print a service's live instances, then follow them. Output lines
//! are `+ <dc>/<id> <host:port>` when an instance appears or changes and `- <dc>/<id>`
//! when it goes; the first lines are the instances found at start.

use std::collections::BTreeMap;
use std::time::Duration;

use beacon_api::{Action, Event, NodeExtern};
use beacon_client::{ErrorCode, GetOptions, WatchOptions};

use super::service::{display_value, service_dir};
use crate::cli::{DiscoverArgs, Global};
use crate::context::Ctx;
use crate::fail::{exit, CmdResult, Fail};
use crate::signals::shutdown;

/// Pause before watching again after the cluster could not be reached.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// Instance key -> stored value.
type Instances = BTreeMap<String, String>;

/// Runs `discover`.
pub async fn run(g: &Global, a: &DiscoverArgs) -> CmdResult {
    let dir = service_dir(&a.service);
    let ctx = Ctx::synced(g).await?;
    let (mut instances, index) = list(&ctx, &dir).await?;
    for (key, value) in &instances {
        println!("+ {} {}", relative(&dir, key), display_value(value));
    }
    if a.once {
        return Ok(());
    }
    let opts = WatchOptions {
        recursive: true,
        wait_index: Some(index + 1),
        timeout: None,
    };
    let mut watcher = ctx.client.watcher(&dir, opts);
    let follow = async {
        loop {
            match watcher.next().await {
                Ok(resp) => apply(&dir, &mut instances, &resp.event),
                // The history moved past us: list again and report the difference.
                Err(e) if e.is_code(ErrorCode::EventIndexCleared) => {
                    let (fresh, index) = list(&ctx, &dir).await?;
                    print_diff(&dir, &instances, &fresh);
                    instances = fresh;
                    watcher.set_wait_index(Some(index + 1));
                }
                Err(e @ beacon_client::Error::Etcd { .. }) => {
                    return Err(Fail::client(exit::SERVER_ERROR, &e));
                }
                Err(e) => {
                    eprint!("{}", Fail::client(exit::SERVER_ERROR, &e).stderr);
                    tokio::time::sleep(RETRY_DELAY).await;
                }
            }
        }
    };
    tokio::select! {
        result = follow => result,
        () = shutdown() => Ok(()),
    }
}

/// The instances under `dir` and the etcd index they were read at.
async fn list(ctx: &Ctx, dir: &str) -> Result<(Instances, u64), Fail> {
    let opts = GetOptions {
        recursive: true,
        sorted: true,
        quorum: true,
    };
    let got = crate::context::within(ctx.total_timeout, ctx.client.get(dir, &opts)).await;
    match got {
        Ok(Ok(resp)) => {
            let mut instances = Instances::new();
            if let Some(node) = resp.node() {
                collect(node, &mut instances);
            }
            Ok((instances, resp.etcd_index))
        }
        // No instance was ever registered: an empty set, as of the error's index.
        Ok(Err(beacon_client::Error::Etcd { error, .. }))
            if error.code == ErrorCode::KeyNotFound =>
        {
            Ok((Instances::new(), error.index))
        }
        Ok(Err(e)) => Err(Fail::client(exit::SERVER_ERROR, &e)),
        Err(_) => Err(Fail::error(
            exit::SERVER_ERROR,
            crate::fail::DEADLINE_EXCEEDED,
        )),
    }
}

fn collect(node: &NodeExtern, into: &mut Instances) {
    if node.dir {
        for child in &node.nodes {
            collect(child, into);
        }
    } else {
        into.insert(node.key.clone(), node.value.clone().unwrap_or_default());
    }
}

/// Applies one watch event to the set, printing what changed.
fn apply(dir: &str, instances: &mut Instances, event: &Event) {
    let Some(node) = &event.node else { return };
    match event.action {
        Action::Set | Action::Create | Action::Update | Action::CompareAndSwap => {
            if node.dir {
                return;
            }
            let value = node.value.clone().unwrap_or_default();
            if instances.get(&node.key) != Some(&value) {
                println!("+ {} {}", relative(dir, &node.key), display_value(&value));
                instances.insert(node.key.clone(), value);
            }
        }
        Action::Delete | Action::Expire | Action::CompareAndDelete => {
            let prefix = format!("{}/", node.key);
            let gone: Vec<String> = instances
                .keys()
                .filter(|k| **k == node.key || k.starts_with(&prefix))
                .cloned()
                .collect();
            for key in gone {
                instances.remove(&key);
                println!("- {}", relative(dir, &key));
            }
        }
        Action::Get => {}
    }
}

fn print_diff(dir: &str, old: &Instances, new: &Instances) {
    for key in old.keys().filter(|k| !new.contains_key(*k)) {
        println!("- {}", relative(dir, key));
    }
    for (key, value) in new {
        if old.get(key) != Some(value) {
            println!("+ {} {}", relative(dir, key), display_value(value));
        }
    }
}

/// `dc1/i-1` for `/services/web/dc1/i-1`.
fn relative<'a>(dir: &str, key: &'a str) -> &'a str {
    key.strip_prefix(dir)
        .map_or(key, |rest| rest.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: Action, key: &str, value: Option<&str>, dir: bool) -> Event {
        Event {
            action,
            node: Some(NodeExtern {
                key: key.into(),
                value: value.map(str::to_string),
                dir,
                ..Default::default()
            }),
            prev_node: None,
            etcd_index: 0,
            refresh: false,
        }
    }

    #[test]
    fn events_add_and_remove_instances() {
        let dir = "/services/web";
        let mut set = Instances::new();
        apply(
            dir,
            &mut set,
            &event(Action::Set, "/services/web/dc1/a", Some("x"), false),
        );
        apply(
            dir,
            &mut set,
            &event(Action::Create, "/services/web/dc1/b", Some("y"), false),
        );
        apply(
            dir,
            &mut set,
            &event(Action::Create, "/services/web/dc2/c", Some("z"), false),
        );
        assert_eq!(set.len(), 3);
        apply(
            dir,
            &mut set,
            &event(Action::Expire, "/services/web/dc1/a", None, false),
        );
        assert!(!set.contains_key("/services/web/dc1/a"));
        apply(
            dir,
            &mut set,
            &event(Action::Delete, "/services/web/dc2", None, true),
        );
        assert_eq!(set.keys().collect::<Vec<_>>(), vec!["/services/web/dc1/b"]);
        assert_eq!(relative(dir, "/services/web/dc1/b"), "dc1/b");
    }
}
