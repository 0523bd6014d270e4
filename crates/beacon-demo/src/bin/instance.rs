//! `beacon-instance`: one instance of a demo service, registered in the registry.
//!
//! Every request gets `200` with the instance id as the body, after `--delay-ms`; with
//! `--fail-every N`, every Nth request gets `500` instead. The first line on stdout is
//! `listening on <addr>`, so a test that asked for port 0 learns the port.
//! With `--grpc` it serves gRPC's health service instead, tagging every answer with
//! its id. SIGTERM or Ctrl-C deregisters and exits; SIGKILL leaves the key to expire.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::http::StatusCode;
use beacon_client::{Client, InstanceInfo, Registration, RegistrationConfig, Registry, V3Client};
use clap::Parser;

/// One instance of a demo service.
#[derive(Debug, Parser)]
#[command(name = "beacon-instance")]
struct Args {
    /// Address to serve on (port 0: any free port)
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Service name to register under
    #[arg(long, default_value = "demo")]
    service: String,
    /// Datacenter to register in
    #[arg(long, default_value = "dc1")]
    datacenter: String,
    /// Instance id [default: the port]
    #[arg(long)]
    id: Option<String>,
    /// Registry endpoints, comma-separated
    #[arg(long, default_value = "http://127.0.0.1:2379", value_delimiter = ',')]
    endpoints: Vec<String>,
    /// The registry API: 2 (a key with a TTL) or 3 (a key with a lease kept alive)
    #[arg(long, default_value = "2", value_parser = ["2", "3"])]
    api: String,
    /// Registration TTL in seconds
    #[arg(long, default_value_t = 10)]
    ttl: u64,
    /// Added to every answer, in milliseconds
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Answer 500 to every Nth request (0: never)
    #[arg(long, default_value_t = 0)]
    fail_every: u64,
    /// Serve without registering
    #[arg(long)]
    no_register: bool,
    /// Serve gRPC's health service (tonic-health) instead of HTTP/1.1; every answer
    /// carries the instance id in the `x-instance-id` metadata
    #[arg(long)]
    grpc: bool,
}

struct Behaviour {
    id: String,
    delay: Duration,
    fail_every: u64,
    served: AtomicU64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    println!("listening on {addr}");
    let id = args.id.clone().unwrap_or_else(|| addr.port().to_string());
    let behaviour = Arc::new(Behaviour {
        id: id.clone(),
        delay: Duration::from_millis(args.delay_ms),
        fail_every: args.fail_every,
        served: AtomicU64::new(0),
    });
    let app = axum::Router::new().fallback(move || answer(behaviour.clone()));
    let registration = if args.no_register {
        None
    } else {
        let timeout = Duration::from_secs(2);
        let registry: Registry = if args.api == "3" {
            V3Client::new(args.endpoints.clone(), timeout)?.into()
        } else {
            Client::new(args.endpoints.clone(), timeout)?.into()
        };
        let info = InstanceInfo::new(addr.ip().to_string(), addr.port());
        let config = RegistrationConfig::new(&args.service, &args.datacenter, &id, info)
            .with_ttl(Duration::from_secs(args.ttl.max(1)));
        let registration = Registration::register(registry, config).await?;
        println!("registered {}", registration.key());
        Some(registration)
    };
    if args.grpc {
        serve_grpc(listener, &id).await?;
    } else {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown())
            .await?;
    }
    if let Some(registration) = registration {
        registration.deregister().await?;
    }
    Ok(())
}

async fn serve_grpc(listener: tokio::net::TcpListener, id: &str) -> anyhow::Result<()> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let id = axum::http::HeaderValue::from_str(id).context("instance id as metadata")?;
    let tag = tower::util::MapResponseLayer::new(move |mut resp: axum::http::Response<_>| {
        resp.headers_mut().insert("x-instance-id", id.clone());
        resp
    });
    tonic::transport::Server::builder()
        .layer(tag)
        .add_service(health)
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            shutdown(),
        )
        .await?;
    Ok(())
}

async fn answer(b: Arc<Behaviour>) -> (StatusCode, String) {
    let n = b.served.fetch_add(1, Ordering::Relaxed) + 1;
    if !b.delay.is_zero() {
        tokio::time::sleep(b.delay).await;
    }
    if b.fail_every > 0 && n.is_multiple_of(b.fail_every) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{} failed\n", b.id),
        );
    }
    (StatusCode::OK, format!("{}\n", b.id))
}

async fn shutdown() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
