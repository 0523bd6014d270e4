//! One file per command; `run` dispatches and the helpers here read positional arguments
//! the way etcdctl does.

mod cluster_health;
mod discover;
mod exec_watch;
mod get;
mod ls;
mod member;
mod mk;
mod mkdir;
mod proxy;
mod register;
mod rm;
mod rmdir;
mod service;
mod set;
mod snapshot;
mod update;
mod updatedir;
mod watch;

use std::io::Read;

use crate::cli::{Cli, Command, MemberCommand, SnapshotCommand};
use crate::fail::{exit, CmdResult, Fail};

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> CmdResult {
    let g = &cli.global;
    let service = matches!(
        cli.command,
        Command::Register(_) | Command::Discover(_) | Command::Proxy(_)
    );
    // `snapshot` is etcdctl v3's own command, and contacts no endpoint.
    let offline = matches!(cli.command, Command::Snapshot { .. });
    if g.v3() && !service && !offline {
        // etcdctl 3.4 is the v3 command line; beaconctl's key and member commands are
        // v2's, and would silently write to the other keyspace.
        return Err(Fail::error(
            exit::BAD_ARGS,
            "only register, discover and proxy speak the v3 API (--api 3, ETCDCTL_API=3); use etcdctl 3.4 for v3 keys and members",
        ));
    }
    match &cli.command {
        Command::ClusterHealth(a) => cluster_health::run(g, a).await,
        Command::Mk(a) => mk::run(g, a).await,
        Command::Mkdir(a) => mkdir::run(g, a, mkdir::Mode::Create).await,
        Command::Setdir(a) => mkdir::run(g, a, mkdir::Mode::Set).await,
        Command::Updatedir(a) => updatedir::run(g, a).await,
        Command::Rm(a) => rm::run(g, a).await,
        Command::Rmdir(a) => rmdir::run(g, a).await,
        Command::Get(a) => get::run(g, a).await,
        Command::Ls(a) => ls::run(g, a).await,
        Command::Set(a) => set::run(g, a).await,
        Command::Update(a) => update::run(g, a).await,
        Command::Watch(a) => watch::run(g, a).await,
        Command::ExecWatch(a) => exec_watch::run(g, a).await,
        Command::Member { command } => match command {
            MemberCommand::List(a) => member::list(g, a).await,
            MemberCommand::Add(a) => member::add(g, a).await,
            MemberCommand::Remove(a) => member::remove(g, a).await,
            MemberCommand::Update(a) => member::update(g, a).await,
        },
        Command::Register(a) => register::run(g, a).await,
        Command::Discover(a) => discover::run(g, a).await,
        Command::Proxy(a) => proxy::run(g, a).await,
        Command::Snapshot { command } => match command {
            SnapshotCommand::Status(a) => snapshot::status(a),
            SnapshotCommand::Restore(a) => snapshot::restore(a),
        },
    }
}

/// The first positional argument, or etcdctl's `key required`.
fn key_arg(args: &[String]) -> Result<&str, Fail> {
    args.first()
        .map(String::as_str)
        .ok_or_else(|| Fail::error(exit::BAD_ARGS, "key required"))
}

/// The value: the second positional argument, else all of stdin (etcdctl's
/// `argOrStdin`); nothing at all is `value required`.
fn value_arg(args: &[String]) -> Result<String, Fail> {
    if let Some(v) = args.get(1) {
        return Ok(v.clone());
    }
    let mut bytes = Vec::new();
    let read = std::io::stdin().read_to_end(&mut bytes);
    if read.is_err() || bytes.is_empty() {
        return Err(Fail::error(exit::BAD_ARGS, "value required"));
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// etcdctl sends a TTL only when positive.
fn ttl_opt(ttl: i64) -> Option<u64> {
    u64::try_from(ttl).ok().filter(|t| *t > 0)
}
