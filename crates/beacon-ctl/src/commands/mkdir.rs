//! `mkdir <key>` (the directory must not exist) and `setdir <key>` (it may): both make
//! a directory and print nothing in the simple format.

use beacon_client::{PrevExist, SetOptions};

use super::{key_arg, ttl_opt};
use crate::cli::{Global, TtlArgs};
use crate::context::Ctx;
use crate::fail::CmdResult;

/// Which of the two commands runs.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// `mkdir`: create only.
    Create,
    /// `setdir`: create or set.
    Set,
}

/// Runs `mkdir` or `setdir`.
pub async fn run(g: &Global, a: &TtlArgs, mode: Mode) -> CmdResult {
    let key = key_arg(&a.args)?;
    let ctx = Ctx::synced(g).await?;
    let opts = SetOptions {
        ttl: ttl_opt(a.ttl),
        dir: true,
        prev_exist: match mode {
            Mode::Create => Some(PrevExist::Absent),
            Mode::Set => None,
        },
        ..SetOptions::default()
    };
    let resp = ctx.call(ctx.client.set(key, "", &opts)).await?;
    if !ctx.printer.is_simple() {
        ctx.print(&resp);
    }
    Ok(())
}
