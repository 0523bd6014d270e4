//! `beacon-bench`: the load generator of bench/run. Each subcommand runs one workload
//! against one server URL and prints its result as one JSON object on stdout; `report`
//! turns the collected results into bench/RESULTS.md's tables.

mod chaos;
mod churn;
mod client;
mod failover;
mod fanout;
mod histogram;
mod keys;
mod load;
mod memory;
mod null_server;
mod ports;
mod preload;
mod procfs;
mod report;
mod server_log;
mod unary;
mod v3;
mod v3_keys;
mod v3_leases;
mod v3_watch;
mod wait;
mod watch;

use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use serde_json::Value;

use crate::client::Target;

#[derive(Parser)]
#[command(about = "Load generator for the Beacon vs etcd benchmark (see bench/run)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The server a workload runs against.
#[derive(clap::Args)]
struct Server {
    /// Client URL, e.g. http://127.0.0.1:2379 (loopback only).
    #[arg(long)]
    url: String,
    /// Server process id, to read its CPU time and memory from /proc.
    #[arg(long)]
    pid: Option<u32>,
}

#[derive(Subcommand)]
enum Command {
    /// PUT, GET or quorum GET at a fixed concurrency for a fixed time.
    Load {
        #[command(flatten)]
        server: Server,
        #[command(flatten)]
        args: load::LoadArgs,
    },
    /// v3 Put, Range or serializable Range over gRPC at a fixed concurrency.
    V3 {
        #[command(flatten)]
        server: Server,
        #[command(flatten)]
        args: v3::V3Args,
    },
    /// v3 watch fan-out: many watchers of one prefix over many streams, then Puts.
    V3Watch {
        #[command(flatten)]
        server: Server,
        #[command(flatten)]
        args: v3_watch::V3WatchArgs,
    },
    /// v3 memory per key: many keys loaded in Txns (needs --pid).
    V3Keys {
        #[command(flatten)]
        server: Server,
        #[command(flatten)]
        args: v3_keys::V3KeysArgs,
    },
    /// v3 leases of one TTL granted together, then the time until all are revoked.
    V3Leases {
        #[command(flatten)]
        server: Server,
        #[command(flatten)]
        args: v3_leases::V3LeasesArgs,
    },
    /// GETs through a proxy (bench/chaos): success rate, latency, share per instance id.
    Chaos {
        /// The proxy's URL, e.g. http://127.0.0.1:8080 (loopback only).
        #[arg(long)]
        url: String,
        #[command(flatten)]
        args: chaos::ChaosArgs,
    },
    /// TTL keys refreshed by many instances, watched by many watchers; expiry delay.
    Churn {
        #[command(flatten)]
        server: Server,
        #[command(flatten)]
        args: churn::ChurnArgs,
    },
    /// Many idle watchers (memory), then one write and the time to the last watcher.
    Fanout {
        #[command(flatten)]
        server: Server,
        #[command(flatten)]
        args: fanout::FanoutArgs,
    },
    /// Memory of the server with many keys (needs --pid).
    Memory {
        #[command(flatten)]
        server: Server,
        #[command(flatten)]
        args: memory::MemoryArgs,
    },
    /// SIGKILL of a cluster's leader under writes; time until writes are acked again.
    Failover {
        #[command(flatten)]
        args: failover::FailoverArgs,
    },
    /// Prints the client URL of the member that leads (waits up to 20 s for one).
    Leader {
        /// Every member's client URL, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        urls: Vec<String>,
    },
    /// Waits until the server is ready for a benchmark.
    WaitReady {
        #[command(flatten)]
        server: Server,
        #[arg(long, default_value_t = 60)]
        timeout_seconds: u64,
    },
    /// Waits until GET of a key succeeds; prints the seconds since --since-epoch-ns.
    WaitKey {
        #[command(flatten)]
        server: Server,
        #[arg(long)]
        path: String,
        #[arg(long)]
        since_epoch_ns: u128,
        #[arg(long, default_value_t = 600)]
        timeout_seconds: u64,
    },
    /// A server that answers every request at once: the floor under every figure.
    NullServer {
        /// Loopback address to listen on, e.g. 127.0.0.1:2379.
        #[arg(long)]
        listen: std::net::SocketAddr,
    },
    /// Prints N free loopback ports, space-separated.
    FreePorts {
        #[arg(default_value_t = 2)]
        n: usize,
    },
    /// Renders the results file (JSON lines) as Markdown tables on stdout.
    Report {
        #[arg(long)]
        results: std::path::PathBuf,
    },
    /// Renders the "Targets of issue 15" table from bench/run's and bench/cluster's
    /// results files (JSON lines; a missing file counts as empty).
    Targets {
        #[arg(long, required = true)]
        results: Vec<std::path::PathBuf>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Command::NullServer { listen } = cli.command {
        return null_server::run(listen);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let output = runtime.block_on(execute(cli.command))?;
    println!("{output}");
    // Watch connections still open at the end are abandoned, not awaited.
    runtime.shutdown_background();
    Ok(())
}

async fn execute(command: Command) -> Result<String> {
    let json = |v: Value| Ok(v.to_string());
    match command {
        Command::V3 { server, args } => json(v3::run(&server.url, &args, server.pid).await?),
        Command::V3Watch { server, args } => {
            json(v3_watch::run(&server.url, &args, server.pid).await?)
        }
        Command::V3Keys { server, args } => {
            let pid = server.pid.context("v3-keys needs --pid")?;
            json(v3_keys::run(&server.url, &args, pid).await?)
        }
        Command::V3Leases { server, args } => {
            json(v3_leases::run(&server.url, &args, server.pid).await?)
        }
        Command::Load { server, args } => {
            json(load::run(&Target::parse(&server.url)?, &args, server.pid).await?)
        }
        Command::Chaos { url, args } => json(chaos::run(&Target::parse(&url)?, &args).await?),
        Command::Churn { server, args } => {
            json(churn::run(&Target::parse(&server.url)?, &args, server.pid).await?)
        }
        Command::Fanout { server, args } => {
            json(fanout::run(&Target::parse(&server.url)?, &args, server.pid).await?)
        }
        Command::Memory { server, args } => {
            let pid = server.pid.context("memory needs --pid")?;
            json(memory::run(&Target::parse(&server.url)?, &args, pid).await?)
        }
        Command::WaitReady {
            server,
            timeout_seconds,
        } => json(
            wait::ready(
                &Target::parse(&server.url)?,
                Duration::from_secs(timeout_seconds),
            )
            .await?,
        ),
        Command::WaitKey {
            server,
            path,
            since_epoch_ns,
            timeout_seconds,
        } => {
            let target = Target::parse(&server.url)?;
            json(
                wait::key(
                    &target,
                    &path,
                    since_epoch_ns,
                    Duration::from_secs(timeout_seconds),
                )
                .await?,
            )
        }
        Command::Failover { args } => json(failover::run(&args).await?),
        Command::Leader { urls } => {
            let (_, url) = failover::wait_leader(&urls, Duration::from_secs(20)).await?;
            Ok(url)
        }
        Command::NullServer { .. } => unreachable!("served before the runtime starts"),
        Command::FreePorts { n } => ports::free(n),
        Command::Report { results } => {
            let text = std::fs::read_to_string(&results)
                .with_context(|| format!("reading {}", results.display()))?;
            report::render(&text)
        }
        Command::Targets { results } => {
            let texts = results
                .iter()
                .filter(|path| path.exists())
                .map(|path| {
                    std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))
                })
                .collect::<Result<Vec<_>>>()?;
            report::render_issue15(&texts)
        }
    }
}
