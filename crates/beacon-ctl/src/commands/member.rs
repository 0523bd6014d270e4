//! `member list|add|remove|update`, printing what etcdctl (v2) prints.

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
    let members = bounded(&ctx, ctx.client.members()).await?;
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

/// A call bounded by the command's total timeout; its error as the text etcdctl shows.
async fn error_text<T>(
    ctx: &Ctx,
    call: impl std::future::Future<Output = Result<T, beacon_client::Error>>,
) -> Result<T, String> {
    match crate::context::within(ctx.total_timeout, call).await {
        Err(_) => Err(DEADLINE_EXCEEDED.to_string()),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(v)) => Ok(v),
    }
}

/// The same, failing with that text alone on a line.
async fn bounded<T>(
    ctx: &Ctx,
    call: impl std::future::Future<Output = Result<T, beacon_client::Error>>,
) -> Result<T, Fail> {
    error_text(ctx, call)
        .await
        .map_err(|e| Fail::line(exit::BAD_ARGS, e))
}

/// Runs `member add <name> <peerURL>`: adds the member, then prints the settings it
/// must start with.
pub async fn add(g: &Global, a: &KeyArgs) -> CmdResult {
    let [name, url] = a.args.as_slice() else {
        return Err(Fail::line(
            exit::BAD_ARGS,
            "Provide a name and a single member peerURL",
        ));
    };
    let url = beacon_api::peer_url::check(url).map_err(|e| Fail::line(exit::BAD_ARGS, e))?;
    let ctx = Ctx::synced(g).await?;
    let added = bounded(&ctx, ctx.client.add_member(std::slice::from_ref(&url))).await?;
    println!("Added member named {name} with ID {} to cluster", added.id);
    let members = bounded(&ctx, ctx.client.members()).await?;
    let conf: Vec<String> = members
        .iter()
        .flat_map(|m| {
            let n = if m.id == added.id { name } else { &m.name };
            m.peer_urls.iter().map(move |u| format!("{n}={u}"))
        })
        .collect();
    println!();
    println!("ETCD_NAME={}", go_quote(name));
    println!("ETCD_INITIAL_CLUSTER={}", go_quote(&conf.join(",")));
    println!("ETCD_INITIAL_CLUSTER_STATE=\"existing\"");
    Ok(())
}

/// Runs `member remove <memberID>`: checks the id against the member list first, as
/// etcdctl does, and points at the id when given a name.
pub async fn remove(g: &Global, a: &KeyArgs) -> CmdResult {
    let [id] = a.args.as_slice() else {
        return Err(Fail::line(exit::BAD_ARGS, "Provide a single member ID"));
    };
    let ctx = Ctx::synced(g).await?;
    let members = error_text(&ctx, ctx.client.members()).await.map_err(|e| {
        let text = format!("Error while verifying ID against known members: {e}");
        Fail::line(exit::BAD_ARGS, text)
    })?;
    let mut stderr = String::new();
    for m in members.iter().filter(|m| m.name == *id) {
        stderr.push_str(&format!(
            "Found a member named {}; if this is correct, please use its ID, eg:\n\tetcdctl member remove {}\n\
             For more details, read the documentation at https://github.com/etcd-io/etcd/blob/master/Documentation/runtime-configuration.md#remove-a-member\n\n",
            m.name, m.id
        ));
    }
    if !members.iter().any(|m| m.id == *id) {
        stderr.push_str(&format!(
            "Couldn't find a member in the cluster with an ID of {id}.\n"
        ));
        return Err(Fail::raw(exit::BAD_ARGS, stderr));
    }
    eprint!("{stderr}");
    error_text(&ctx, ctx.client.remove_member(id))
        .await
        .map_err(|e| {
            let text = format!("Received an error trying to remove member {id}: {e}");
            Fail::raw(exit::BAD_ARGS, text)
        })?;
    println!("Removed member {id} from cluster");
    Ok(())
}

/// Runs `member update <memberID> <peerURLs>` (comma-separated URLs).
pub async fn update(g: &Global, a: &KeyArgs) -> CmdResult {
    let [id, urls] = a.args.as_slice() else {
        return Err(Fail::line(
            exit::BAD_ARGS,
            "Provide an ID and a list of comma separated peerURL (0xabcd http://example.com,http://example1.com)",
        ));
    };
    let urls = urls
        .split(',')
        .map(beacon_api::peer_url::check)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Fail::line(exit::BAD_ARGS, e))?;
    let ctx = Ctx::synced(g).await?;
    bounded(&ctx, ctx.client.update_member(id, &urls)).await?;
    println!("Updated member with ID {id} in cluster");
    Ok(())
}

/// Go's `%q` for the plain strings names and URLs are: JSON's quoting agrees with it
/// on printable ASCII.
fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}
