//! The seed's `register.js`, with the client library: register an instance of
//! `service_a` in `datacenter_x` and keep it registered until Ctrl-C.
//!
//! ```sh
//! cargo run -p beacon-demo --example register -- [ENDPOINT] [PORT]
//! ```
//! Unlike the seed (a plain set every 10 s with a 60 s TTL), the key has a 10 s TTL
//! refreshed every 3 s without waking watchers, comes back if it expired during a
//! registry outage, and is deleted on Ctrl-C.

use std::time::Duration;

use beacon_client::{Client, InstanceInfo, Registration, RegistrationConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let endpoint = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:2379".into());
    let port: u16 = args.next().map_or(Ok(3000), |p| p.parse())?;
    let client = Client::new(vec![endpoint], Duration::from_secs(2))?;
    let id = format!("{}-{port}", std::process::id());
    let info = InstanceInfo::new("127.0.0.1", port);
    let config = RegistrationConfig::new("service_a", "datacenter_x", id, info);
    let registration = Registration::register(client, config).await?;
    println!("Registered with etcd as {}", registration.key());
    tokio::signal::ctrl_c().await?;
    registration.deregister().await?;
    println!("Deregistered");
    Ok(())
}
