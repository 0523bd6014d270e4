//! `get <key>`: print a key's value; a directory is an error.

use beacon_client::GetOptions;

use super::key_arg;
use crate::cli::{GetArgs, Global};
use crate::context::Ctx;
use crate::fail::{exit, CmdResult, Fail};

/// Runs `get`.
pub async fn run(g: &Global, a: &GetArgs) -> CmdResult {
    let key = key_arg(&a.args)?;
    let ctx = Ctx::synced(g).await?;
    let opts = GetOptions {
        sorted: a.sort,
        quorum: a.quorum,
        ..GetOptions::default()
    };
    let resp = ctx.call(ctx.client.get(key, &opts)).await?;
    if let Some(node) = resp.node().filter(|n| n.dir) {
        return Err(Fail::line(
            exit::BAD_ARGS,
            format!("{}: is a directory", node.key),
        ));
    }
    ctx.print(&resp);
    Ok(())
}
