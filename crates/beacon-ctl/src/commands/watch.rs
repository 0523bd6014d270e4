//! `watch <key>`: print the next change (every change with `--forever`) until Ctrl-C.

use beacon_client::{Response, WatchOptions};

use super::key_arg;
use crate::cli::{Global, WatchArgs};
use crate::context::Ctx;
use crate::fail::{exit, CmdResult, Fail};

/// Runs `watch`.
pub async fn run(g: &Global, a: &WatchArgs) -> CmdResult {
    let key = key_arg(&a.args)?;
    let ctx = Ctx::synced(g).await?;
    follow_files(
        &ctx,
        key,
        a.recursive,
        a.after_index,
        |_| {},
        |resp| {
            if a.recursive {
                if let Some(node) = resp.node() {
                    println!("[{}] {}", resp.event.action.as_str(), node.key);
                }
            }
            ctx.print(resp);
            Ok(a.forever)
        },
    )
    .await
}

/// Watches `key` from `--after-index` and hands every change of a file to `on_file`
/// until it returns `Ok(false)` or fails; directory changes go to `on_dir`. Ctrl-C
/// ends it with success, as in etcdctl. Shared by `watch` and `exec-watch`.
pub async fn follow_files(
    ctx: &Ctx,
    key: &str,
    recursive: bool,
    after: u64,
    on_dir: impl Fn(&str),
    mut on_file: impl FnMut(&Response) -> Result<bool, Fail>,
) -> CmdResult {
    let opts = WatchOptions {
        recursive,
        wait_index: after_index(after),
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
                on_dir(&node.key.to_string());
                continue;
            }
            if !on_file(&resp)? {
                return Ok(());
            }
        }
    };
    tokio::select! {
        result = follow => result,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// `--after-index N` watches from N+1; 0 means from the next change.
pub fn after_index(after: u64) -> Option<u64> {
    (after > 0).then(|| after.saturating_add(1))
}
