//! The seed's `discover.js`, with the client library: print `service_a`'s instances in
//! `datacenter_x` whenever they change.
//!
//! ```sh
//! cargo run -p beacon-demo --example discover -- [ENDPOINT]
//! ```
//! The seed lists, then watches, and would miss changes made between the two or lost
//! to a history gap; `Discovery` resumes from the listing's index and re-lists when the
//! history has moved on.

use std::collections::BTreeMap;
use std::time::Duration;

use beacon_client::{Client, Discovery, DiscoveryConfig};
use futures_util::StreamExt;
use tower::discover::Change;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoint = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:2379".into());
    let client = Client::new(vec![endpoint], Duration::from_secs(2))?;
    let prefix = "/services/service_a/datacenter_x";
    let mut discovery = Discovery::start(client, prefix, DiscoveryConfig::default());
    let mut instances = BTreeMap::new();
    while let Some(Ok(change)) = discovery.next().await {
        match change {
            Change::Insert(key, i) => {
                instances.insert(key, format!("{}:{}", i.info.hostname, i.info.port));
            }
            Change::Remove(key) => {
                instances.remove(&key);
            }
        }
        println!("{instances:#?}");
    }
    Ok(())
}
