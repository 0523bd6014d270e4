//! `ls [key]`: list a directory (the root by default), `-r` at every depth, `-p`
//! marking directories with a trailing slash.

use beacon_client::GetOptions;

use crate::cli::{Global, LsArgs};
use crate::context::Ctx;
use crate::fail::CmdResult;

/// Runs `ls`.
pub async fn run(g: &Global, a: &LsArgs) -> CmdResult {
    let key = a.args.first().map_or("/", String::as_str);
    let ctx = Ctx::synced(g).await?;
    let opts = GetOptions {
        recursive: a.recursive,
        sorted: a.sort,
        quorum: a.quorum,
    };
    let resp = ctx.call(ctx.client.get(key, &opts)).await?;
    let mut out = std::io::stdout().lock();
    let _ = ctx.printer.listing(&resp, a.p, &mut out);
    Ok(())
}
