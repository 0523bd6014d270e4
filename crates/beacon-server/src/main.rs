//! The `beacon` binary: parse flags, set up logging, run until SIGINT or SIGTERM.

use std::process::ExitCode;

use beacon_server::config::{Config, ConfigError, LogFormat};
use beacon_server::log_sinks::LogSinks;

// Every request allocates (headers, JSON, log entries); with glibc's malloc, allocation
// and its consolidation were a fifth of the CPU on the write path under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    disable_transparent_huge_pages();
    let config = match Config::from_args(std::env::args_os()) {
        Ok(c) => c,
        // clap prints --help itself and exits 0; usage errors exit 2.
        Err(ConfigError::Clap(e)) => e.exit(),
        Err(ConfigError::Version(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("beacon: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    // As etcd, a file --log-outputs names that cannot be opened stops the start.
    let sinks = match LogSinks::open(&config.log_outputs) {
        Ok(sinks) => sinks,
        Err(e) => {
            eprintln!("beacon: {e}");
            return ExitCode::from(2);
        }
    };
    let ansi = sinks.is_terminal();
    let lines = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(config.log_level)),
        )
        .with_writer(sinks);
    match config.log_format {
        LogFormat::Text => lines.with_ansi(ansi).init(),
        // One object a line, the event's fields beside `message` rather than nested, as
        // a log shipper reads etcd's zap lines.
        LogFormat::Json => lines.json().flatten_event(true).init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("beacon: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(beacon_server::run(config, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        // Logged once, where every other line goes: the reason is the last line a
        // refused start prints.
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Turns transparent huge pages off for this process, before the first request.
///
/// mimalloc asks for huge pages on its arenas (`MADV_HUGEPAGE`, honoured where the
/// kernel's THP mode is `madvise` or `always`) and returns memory it has not used for a
/// while (`MADV_DONTNEED`). Under steady writes the two together cost a whole zeroed
/// 2 MiB page each time a purged range is touched again: 12-15% of a single member's
/// CPU at 64 connections was the kernel's `clear_page_erms` below huge-page faults
/// (the commit that added this has the before and after). Databases commonly advise
/// the same. The flag is checked at each fault, so it also covers the arenas mimalloc
/// reserved before `main`.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    {
        if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
            // Not fatal: the server is correct either way, only slower under writes.
            eprintln!("beacon: could not turn off transparent huge pages: {e}");
        }
    }
}

/// Resolves on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
