//! `exec-watch <key> -- <command> [args...]`: run a command on every change of the key,
//! with the change in `ETCD_WATCH_*` variables; runs until Ctrl-C.

use beacon_client::Response;

use super::watch::follow_files;
use crate::cli::{ExecWatchArgs, Global};
use crate::context::Ctx;
use crate::fail::{exit, CmdResult, Fail};

/// Runs `exec-watch`.
pub async fn run(g: &Global, a: &ExecWatchArgs) -> CmdResult {
    let required = || Fail::error(exit::BAD_ARGS, "key and command to exec required");
    let (key, command) = split_args(&a.args).ok_or_else(required)?;
    let ctx = Ctx::synced(g).await?;
    let ignore_dir = |key: &str| eprintln!("Ignored dir {key} change");
    follow_files(&ctx, &key, a.recursive, a.after_index, ignore_dir, |resp| {
        spawn(&command, resp)?;
        Ok(true)
    })
    .await
}

/// The key and the command. etcdctl's rule: with a `--` after the key, the command
/// follows it; without one, the key is the last argument.
fn split_args(args: &[String]) -> Option<(String, Vec<String>)> {
    if args.len() < 2 {
        return None;
    }
    let separator = args.iter().skip(1).position(|s| s == "--");
    let (key, command) = if let Some(i) = separator {
        let mut rest = args[1..].to_vec();
        rest.remove(i);
        (args[0].clone(), rest)
    } else {
        let (last, rest) = args.split_last()?;
        (last.clone(), rest.to_vec())
    };
    (!command.is_empty()).then_some((key, command))
}

/// Starts the command for one event without waiting for it, as etcdctl does.
fn spawn(command: &[String], resp: &Response) -> Result<(), Fail> {
    let node = resp.node().cloned().unwrap_or_default();
    let mut cmd = tokio::process::Command::new(&command[0]);
    cmd.args(&command[1..])
        .env("ETCD_WATCH_ACTION", resp.event.action.as_str())
        .env("ETCD_WATCH_MODIFIED_INDEX", node.modified_index.to_string())
        .env("ETCD_WATCH_KEY", node.key.to_string())
        .env(
            "ETCD_WATCH_VALUE",
            node.value.map(|v| v.to_string()).unwrap_or_default(),
        );
    match cmd.spawn() {
        Ok(mut child) => {
            // Reaped in the background so a slow command does not hold up the watch.
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Fail::raw(
            exit::BAD_ARGS,
            format!("exec: {:?}: executable file not found in $PATH", command[0]),
        )),
        Err(e) => Err(Fail::raw(exit::BAD_ARGS, e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn key_first_with_separator_else_last() {
        assert_eq!(
            split_args(&strings(&["/k", "--", "sh", "-c", "x"])),
            Some(("/k".into(), strings(&["sh", "-c", "x"])))
        );
        assert_eq!(
            split_args(&strings(&["echo", "hi", "/k"])),
            Some(("/k".into(), strings(&["echo", "hi"])))
        );
        assert_eq!(split_args(&strings(&["/k"])), None);
        assert_eq!(split_args(&strings(&["/k", "--"])), None);
    }
}
