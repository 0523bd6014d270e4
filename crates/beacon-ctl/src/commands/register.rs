//! `register SERVICE ADDR --ttl N`: keep an instance registered, refreshing its TTL every
//! ttl/3 (re-creating the key if it expired meanwhile), and remove it on Ctrl-C/SIGTERM.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use beacon_client::{DeleteOptions, ErrorCode, SetOptions};

use super::service::{service_dir, Instance};
use crate::cli::{Global, RegisterArgs};
use crate::context::Ctx;
use crate::fail::{exit, CmdResult, Fail, DEADLINE_EXCEEDED};
use crate::signals::shutdown;

/// Runs `register`.
pub async fn run(g: &Global, a: &RegisterArgs) -> CmdResult {
    if a.ttl == 0 {
        return Err(Fail::error(exit::BAD_ARGS, "--ttl must be at least 1"));
    }
    let instance = Instance::from_addr(&a.addr).map_err(|e| Fail::error(exit::BAD_ARGS, e))?;
    let id = a.id.clone().unwrap_or_else(random_id);
    let key = format!(
        "{}/{}/{}",
        service_dir(&a.service),
        a.datacenter.trim_matches('/'),
        id
    );
    let value = serde_json::to_string(&instance).map_err(|e| Fail::error(exit::BAD_ARGS, e))?;
    let ctx = Ctx::synced(g).await?;
    let create = SetOptions {
        ttl: Some(a.ttl),
        ..SetOptions::default()
    };
    ctx.call(ctx.client.set(&key, &value, &create)).await?;
    println!("registered {key}");

    // A third of the TTL leaves two more tries before the key expires.
    let period = Duration::from_millis(a.ttl.saturating_mul(1000) / 3);
    let keep_alive = async {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            ticker.tick().await;
            let refreshed =
                crate::context::within(ctx.total_timeout, ctx.client.refresh(&key, a.ttl));
            match refreshed.await {
                Ok(Ok(_)) => {}
                // The key expired (we were paused, or the cluster was away): register anew.
                Ok(Err(e)) if e.is_code(ErrorCode::KeyNotFound) => {
                    match ctx.call(ctx.client.set(&key, &value, &create)).await {
                        Ok(_) => eprintln!("re-registered {key}"),
                        Err(fail) => eprint!("{}", fail.stderr),
                    }
                }
                // Anything else is retried at the next tick, while the TTL still runs.
                Ok(Err(e)) => eprint!("{}", Fail::client(exit::SERVER_ERROR, &e).stderr),
                Err(_) => eprintln!("Error:  {DEADLINE_EXCEEDED}"),
            }
        }
    };
    tokio::select! {
        () = keep_alive => {}
        () = shutdown() => {}
    }
    let plain = DeleteOptions::default();
    let deleted = crate::context::within(ctx.total_timeout, ctx.client.delete(&key, &plain));
    match deleted.await {
        Ok(Ok(_)) => {}
        // Already expired: nothing left to remove.
        Ok(Err(e)) if e.is_code(ErrorCode::KeyNotFound) => {}
        Ok(Err(e)) => return Err(Fail::client(exit::SERVER_ERROR, &e)),
        Err(_) => return Err(Fail::error(exit::SERVER_ERROR, DEADLINE_EXCEEDED)),
    }
    println!("deregistered {key}");
    Ok(())
}

/// 16 hex digits from std's randomly keyed hasher, the time and the pid.
fn random_id() -> String {
    let mut h = RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(nanos);
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}
