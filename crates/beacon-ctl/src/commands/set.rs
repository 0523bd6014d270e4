//! `set <key> <value>`: set a key, optionally only if its value or index matches.

use beacon_client::SetOptions;

use super::{key_arg, ttl_opt, value_arg};
use crate::cli::{Global, SetArgs};
use crate::context::Ctx;
use crate::fail::CmdResult;

/// Runs `set`.
pub async fn run(g: &Global, a: &SetArgs) -> CmdResult {
    let key = key_arg(&a.args)?;
    let value = value_arg(&a.args)?;
    let ctx = Ctx::synced(g).await?;
    let opts = SetOptions {
        ttl: ttl_opt(a.ttl),
        prev_value: Some(a.swap_with_value.clone()).filter(|v| !v.is_empty()),
        prev_index: Some(a.swap_with_index).filter(|i| *i != 0),
        ..SetOptions::default()
    };
    let resp = ctx.call(ctx.client.set(key, &value, &opts)).await?;
    ctx.print(&resp);
    Ok(())
}
