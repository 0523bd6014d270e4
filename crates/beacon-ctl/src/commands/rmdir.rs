//! `rmdir <key>`: delete an empty directory (or a key).

use beacon_client::DeleteOptions;

use super::key_arg;
use super::rm::print_delete;
use crate::cli::{Global, KeyArgs};
use crate::context::Ctx;
use crate::fail::CmdResult;

/// Runs `rmdir`.
pub async fn run(g: &Global, a: &KeyArgs) -> CmdResult {
    let key = key_arg(&a.args)?;
    let ctx = Ctx::synced(g).await?;
    let opts = DeleteOptions {
        dir: true,
        ..DeleteOptions::default()
    };
    let resp = ctx.call(ctx.client.delete(key, &opts)).await?;
    print_delete(&ctx, &resp);
    Ok(())
}
