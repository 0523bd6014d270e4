//! `watch <key>`: print the next change (every change with `--forever`) until Ctrl-C.

use beacon_client::WatchOptions;

use super::key_arg;
use crate::cli::{Global, WatchArgs};
use crate::context::Ctx;
use crate::fail::{exit, CmdResult, Fail};

/// Runs `watch`.
pub async fn run(g: &Global, a: &WatchArgs) -> CmdResult {
    let key = key_arg(&a.args)?;
    let ctx = Ctx::synced(g).await?;
    let opts = WatchOptions {
        recursive: a.recursive,
        wait_index: after_index(a.after_index),
        timeout: None,
    };
    let mut watcher = ctx.client.watcher(key, opts);
    let follow = async {
        loop {
            let resp = watcher
                .next()
                .await
                .map_err(|e| Fail::client(exit::SERVER_ERROR, &e))?;
            let Some(node) = resp.node() else { continue };
            if node.dir {
                continue;
            }
            if a.recursive {
                println!("[{}] {}", resp.event.action.as_str(), node.key);
            }
            ctx.print(&resp);
            if !a.forever {
                return Ok(());
            }
        }
    };
    tokio::select! {
        result = follow => result,
        // etcdctl exits 0 on Ctrl-C.
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// `--after-index N` watches from N+1; 0 means from the next change.
pub fn after_index(after: u64) -> Option<u64> {
    (after > 0).then(|| after.saturating_add(1))
}
