//! A caller of the demo service through the client library: discovery, balancing,
//! failure accrual and retries in a few lines.
//!
//! ```sh
//! cargo run -p beacon-demo --example caller -- [ENDPOINT] [SERVICE] [REQUESTS]
//! ```
//! Sends REQUESTS (default 50) GETs, one every 100 ms, and prints which instance
//! answered each; at the end, how many each instance answered and its standing.

use std::collections::BTreeMap;
use std::time::Duration;

use beacon_client::balance::{BalanceConfig, HttpClient};
use beacon_client::Client;
use bytes::Bytes;
use http_body_util::BodyExt;
use tower::ServiceExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    let endpoint = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:2379".into());
    let service = args.next().unwrap_or_else(|| "demo".into());
    let requests: usize = args.next().map_or(Ok(50), |n| n.parse())?;

    // The registry, and a client balanced over the instances under /services/<service>/.
    let registry = Client::new(vec![endpoint], Duration::from_secs(2))?;
    let client = HttpClient::for_service(registry, &service, BalanceConfig::default())?;

    let mut answered = BTreeMap::<String, usize>::new();
    for i in 0..requests {
        let request = http::Request::get("/hello").body(Bytes::new())?;
        match client.clone().oneshot(request).await {
            Ok(response) => {
                let status = response.status();
                let body = response.into_body().collect().await?.to_bytes();
                let id = String::from_utf8_lossy(&body).trim().to_string();
                println!("request {i:3}: {status} from {id}");
                *answered.entry(id).or_default() += 1;
            }
            Err(e) => println!("request {i:3}: failed: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("\nanswers per instance: {answered:?}");
    for state in client.instances() {
        println!("{}: {:?}", state.key, state.health);
    }
    Ok(())
}
