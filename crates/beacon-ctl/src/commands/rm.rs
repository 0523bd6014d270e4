//! `rm <key>`: delete a key, or with `--dir`/`--recursive` a directory, optionally only
//! if its value or index matches.

use beacon_client::DeleteOptions;

use super::key_arg;
use crate::cli::{Global, RmArgs};
use crate::context::Ctx;
use crate::fail::CmdResult;

/// Runs `rm`.
pub async fn run(g: &Global, a: &RmArgs) -> CmdResult {
    let key = key_arg(&a.args)?;
    let ctx = Ctx::synced(g).await?;
    let opts = DeleteOptions {
        dir: a.dir,
        recursive: a.recursive,
        prev_value: Some(a.with_value.clone()).filter(|v| !v.is_empty()),
        prev_index: Some(a.with_index).filter(|i| *i != 0),
    };
    let resp = ctx.call(ctx.client.delete(key, &opts)).await?;
    print_delete(&ctx, &resp);
    Ok(())
}

/// A deleted directory prints nothing in the simple format (it has no value).
pub fn print_delete(ctx: &Ctx, resp: &beacon_client::Response) {
    let dir = resp.node().is_some_and(|n| n.dir);
    if !dir || !ctx.printer.is_simple() {
        ctx.print(resp);
    }
}
