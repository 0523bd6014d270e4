//! `updatedir <key>`: update an existing directory (its TTL); silent in simple format.

use beacon_client::{PrevExist, SetOptions};

use super::{key_arg, ttl_opt};
use crate::cli::{Global, TtlArgs};
use crate::context::Ctx;
use crate::fail::CmdResult;

/// Runs `updatedir`.
pub async fn run(g: &Global, a: &TtlArgs) -> CmdResult {
    let key = key_arg(&a.args)?;
    let ctx = Ctx::synced(g).await?;
    let opts = SetOptions {
        ttl: ttl_opt(a.ttl),
        dir: true,
        prev_exist: Some(PrevExist::Exists),
        ..SetOptions::default()
    };
    let resp = ctx.call(ctx.client.set(key, "", &opts)).await?;
    if !ctx.printer.is_simple() {
        ctx.print(&resp);
    }
    Ok(())
}
