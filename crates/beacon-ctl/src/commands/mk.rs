//! `mk <key> <value>`: create a key that must not exist, or with `--in-order` a new
//! key under the directory `<key>`.

use beacon_client::{PrevExist, SetOptions};

use super::{key_arg, ttl_opt, value_arg};
use crate::cli::{Global, MkArgs};
use crate::context::Ctx;
use crate::fail::CmdResult;

/// Runs `mk`.
pub async fn run(g: &Global, a: &MkArgs) -> CmdResult {
    let key = key_arg(&a.args)?;
    let value = value_arg(&a.args)?;
    let ctx = Ctx::synced(g).await?;
    let ttl = ttl_opt(a.ttl);
    let resp = if a.in_order {
        ctx.call(ctx.client.create_in_order(key, &value, ttl))
            .await?
    } else {
        let opts = SetOptions {
            ttl,
            prev_exist: Some(PrevExist::Absent),
            ..SetOptions::default()
        };
        ctx.call(ctx.client.set(key, &value, &opts)).await?
    };
    ctx.print(&resp);
    Ok(())
}
