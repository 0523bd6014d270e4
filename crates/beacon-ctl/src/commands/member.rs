//! `member list`: one line per member, marking the leader.

use crate::cli::{Global, KeyArgs};
use crate::context::Ctx;
use crate::fail::{exit, CmdResult, Fail, DEADLINE_EXCEEDED};

/// Runs `member list`.
pub async fn list(g: &Global, a: &KeyArgs) -> CmdResult {
    if !a.args.is_empty() {
        return Err(Fail::line(exit::BAD_ARGS, "No arguments accepted"));
    }
    let ctx = Ctx::synced(g).await?;
    // etcdctl prints these errors bare, not through its `Error:` handler.
    let members = match crate::context::within(ctx.total_timeout, ctx.client.members()).await {
        Err(_) => return Err(Fail::line(exit::BAD_ARGS, DEADLINE_EXCEEDED)),
        Ok(Err(e)) => return Err(Fail::line(exit::BAD_ARGS, e)),
        Ok(Ok(m)) => m,
    };
    let leader = match crate::context::within(ctx.total_timeout, ctx.client.leader()).await {
        Err(_) => {
            let text = format!("Failed to get leader:  {DEADLINE_EXCEEDED}");
            return Err(Fail::line(exit::BAD_ARGS, text));
        }
        Ok(Err(e)) => {
            let text = format!("Failed to get leader:  {e}");
            return Err(Fail::line(exit::BAD_ARGS, text));
        }
        Ok(Ok(l)) => l,
    };
    for m in members {
        if m.name.is_empty() {
            println!("{}[unstarted]: peerURLs={}", m.id, m.peer_urls.join(","));
        } else {
            println!(
                "{}: name={} peerURLs={} clientURLs={} isLeader={}",
                m.id,
                m.name,
                m.peer_urls.join(","),
                m.client_urls.join(","),
                m.id == leader.id
            );
        }
    }
    Ok(())
}
