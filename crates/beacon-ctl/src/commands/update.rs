//! `update <key> <value>`: set a key that must already exist.

use beacon_client::{PrevExist, SetOptions};

use super::{key_arg, ttl_opt, value_arg};
use crate::cli::{Global, TtlArgs};
use crate::context::Ctx;
use crate::fail::CmdResult;

/// Runs `update`.
pub async fn run(g: &Global, a: &TtlArgs) -> CmdResult {
    let key = key_arg(&a.args)?;
    let value = value_arg(&a.args)?;
    let ctx = Ctx::synced(g).await?;
    let opts = SetOptions {
        ttl: ttl_opt(a.ttl),
        prev_exist: Some(PrevExist::Exists),
        ..SetOptions::default()
    };
    let resp = ctx.call(ctx.client.set(key, &value, &opts)).await?;
    ctx.print(&resp);
    Ok(())
}
