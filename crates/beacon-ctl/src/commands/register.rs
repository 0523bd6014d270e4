//! `register SERVICE ADDR --ttl N`: keep an instance registered with the client
//! library's [`Registration`] (refreshed every ttl/3, re-created if it expired
//! meanwhile), and remove it on Ctrl-C/SIGTERM. With `--api 3` the key is put with a
//! lease of the TTL that is kept alive.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use beacon_client::{InstanceInfo, Registration, RegistrationConfig};

use crate::cli::{Global, RegisterArgs};
use crate::context::Ctx;
use crate::fail::{exit, CmdResult, Fail};
use crate::signals::shutdown;

/// Runs `register`.
pub async fn run(g: &Global, a: &RegisterArgs) -> CmdResult {
    if a.ttl == 0 {
        return Err(Fail::error(exit::BAD_ARGS, "--ttl must be at least 1"));
    }
    let info = InstanceInfo::from_addr(&a.addr).map_err(|e| Fail::error(exit::BAD_ARGS, e))?;
    let id = a.id.clone().unwrap_or_else(random_id);
    let config = RegistrationConfig::new(
        a.service.trim_matches('/'),
        a.datacenter.trim_matches('/'),
        id,
        info,
    )
    .with_ttl(Duration::from_secs(a.ttl));
    let ctx = Ctx::for_api(g).await?;
    let registration = ctx
        .call(Registration::register(ctx.registry(g)?, config))
        .await?;
    let key = registration.key().to_string();
    println!("registered {key}");
    shutdown().await;
    ctx.call(registration.deregister()).await?;
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
