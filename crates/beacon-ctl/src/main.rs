//! `beaconctl`: etcdctl v2's commands (same flags, output, messages and exit codes) over
//! `beacon-client`, plus `register` and `discover` for service discovery.

mod cli;
mod commands;
mod context;
mod fail;
mod go_json;
mod output;
mod proxy;
mod signals;

use std::io::Write;

use clap::Parser;

fn main() {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // etcdctl exits 1 on usage errors (0 for --help and --version).
            let code = if e.use_stderr() {
                fail::exit::BAD_ARGS
            } else {
                0
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error:  {e:#}");
            fail::exit::BAD_ARGS
        }
    };
    std::process::exit(code);
}

fn run(cli: cli::Cli) -> anyhow::Result<i32> {
    // Long-running commands log to stderr (instance changes, ejections, failed
    // refreshes); the others print only etcdctl's output.
    let serving = matches!(cli.command, cli::Command::Proxy(_));
    let default_level = if serving { "info" } else { "warn" };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_level.into()),
        )
        .init();
    // The proxy runs its own worker threads (see commands/proxy.rs).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(commands::run(cli));
    let _ = std::io::stdout().flush();
    Ok(match result {
        Ok(()) => 0,
        Err(fail) => {
            eprint!("{}", fail.stderr);
            fail.code
        }
    })
}
