//! What every command starts from: a client over the chosen endpoints (synchronized
//! with the cluster's member list unless `--no-sync`), the printer, the total timeout.

use std::future::Future;
use std::time::Duration;

use beacon_client::{Client, Registry, V3Client};

use crate::cli::Global;
use crate::fail::{exit, Fail, DEADLINE_EXCEEDED};
use crate::output::{printer_for, Printer};

/// Where beaconctl connects when told nothing.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:2379";

/// A command's surroundings.
pub struct Ctx {
    /// The client.
    pub client: Client,
    /// The printer for `--output`.
    pub printer: Box<dyn Printer>,
    /// The bound on one command's calls (watches aside).
    pub total_timeout: Duration,
}

impl Ctx {
    /// A context whose client first learns the cluster's client URLs, as etcdctl's does.
    pub async fn synced(global: &Global) -> Result<Ctx, Fail> {
        let ctx = Ctx::unsynced(global)?;
        if !global.no_sync {
            match within(ctx.total_timeout, ctx.client.sync()).await {
                Err(_) => return Err(Fail::error(exit::BAD_CONNECTION, DEADLINE_EXCEEDED)),
                Ok(Err(e)) if e.is_connection_error() => {
                    return Err(Fail::client(exit::BAD_CONNECTION, &e))
                }
                // Like etcdctl, other sync failures leave the given endpoints in place.
                Ok(_) => {}
            }
        }
        Ok(ctx)
    }

    /// A synced context for v2; for v3 the endpoints as given, as etcdctl v3 uses them
    /// (the member list is v2's, and a v3 client follows no other).
    pub async fn for_api(global: &Global) -> Result<Ctx, Fail> {
        if global.v3() {
            Ctx::unsynced(global)
        } else {
            Ctx::synced(global).await
        }
    }

    /// A context over the given endpoints as they are.
    pub fn unsynced(global: &Global) -> Result<Ctx, Fail> {
        let endpoints = endpoints(global);
        let client = Client::with_tls(endpoints, global.timeout, Some(&global.tls()))
            .map_err(|e| Fail::line(exit::BAD_ARGS, e))?;
        Ok(Ctx {
            client,
            printer: printer_for(&global.output),
            total_timeout: global.total_timeout,
        })
    }

    /// The registry as `--api` says to reach it: this context's v2 client, or a v3
    /// client of the same endpoints.
    pub fn registry(&self, global: &Global) -> Result<Registry, Fail> {
        if !global.v3() {
            return Ok(Registry::V2(self.client.clone()));
        }
        V3Client::with_tls(endpoints(global), global.timeout, Some(&global.tls()))
            .map(Registry::V3)
            .map_err(|e| Fail::line(exit::BAD_ARGS, e))
    }

    /// Runs one call under the total timeout; failures are etcdctl's server error.
    pub async fn call<T>(
        &self,
        fut: impl Future<Output = Result<T, beacon_client::Error>>,
    ) -> Result<T, Fail> {
        match within(self.total_timeout, fut).await {
            Err(_) => Err(Fail::error(exit::SERVER_ERROR, DEADLINE_EXCEEDED)),
            Ok(Err(e)) => Err(Fail::client(exit::SERVER_ERROR, &e)),
            Ok(Ok(v)) => Ok(v),
        }
    }

    /// Prints a key's answer with the chosen printer.
    pub fn print(&self, resp: &beacon_client::Response) {
        let mut out = std::io::stdout().lock();
        // A closed stdout (e.g. `| head`) is not the command's failure.
        let _ = self.printer.response(resp, &mut out);
    }
}

/// `fut` under a deadline that, like Go's context, also fails an answer that came in
/// after it passed (tokio's timer alone misses deadlines shorter than its tick).
pub async fn within<T>(deadline: Duration, fut: impl Future<Output = T>) -> Result<T, Elapsed> {
    let start = tokio::time::Instant::now();
    let out = tokio::time::timeout(deadline, fut)
        .await
        .map_err(|_| Elapsed)?;
    if start.elapsed() > deadline {
        return Err(Elapsed);
    }
    Ok(out)
}

/// The deadline of [`within`] passed.
#[derive(Debug)]
pub struct Elapsed;

/// The endpoints from the flags and environment, in etcdctl's order of precedence
/// (clap reads each flag's variable when the flag is absent).
fn endpoints(global: &Global) -> Vec<String> {
    let chosen = [&global.endpoints, &global.endpoint, &global.peers]
        .into_iter()
        .flatten()
        .find(|s| !s.is_empty())
        .map_or(DEFAULT_ENDPOINT, String::as_str);
    chosen.split(',').map(str::to_string).collect()
}
