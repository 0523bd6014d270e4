//! `cluster-health`: ask every member's `/health` and sum up; `--forever` repeats every
//! ten seconds until Ctrl-C.

use std::time::Duration;

use crate::cli::{ClusterHealthArgs, Global};
use crate::context::Ctx;
use crate::fail::{exit, CmdResult, Fail};

/// etcdctl's pause between two checks with `--forever`.
const FOREVER_INTERVAL: Duration = Duration::from_secs(10);

/// Runs `cluster-health`.
pub async fn run(g: &Global, a: &ClusterHealthArgs) -> CmdResult {
    let ctx = Ctx::unsynced(g)?;
    let check = async {
        let members = match ctx.client.members().await {
            Ok(m) => m,
            Err(e) => {
                println!("cluster may be unhealthy: failed to list members");
                return Err(Fail::client(exit::SERVER_ERROR, &e));
            }
        };
        loop {
            let mut healthy = 0;
            for m in &members {
                if m.client_urls.is_empty() {
                    println!(
                        "member {} is unreachable: no available published client urls",
                        m.id
                    );
                    continue;
                }
                let mut checked = false;
                for url in &m.client_urls {
                    match ctx.client.health_at(url).await {
                        Err(e) => println!(
                            "failed to check the health of member {} on {url}: {}",
                            m.id,
                            go_get_error(url, &e)
                        ),
                        Ok(h) => {
                            checked = true;
                            if h.healthy {
                                println!(
                                    "member {} is healthy: got healthy result from {url}",
                                    m.id
                                );
                                healthy += 1;
                            } else {
                                println!(
                                    "member {} is unhealthy: got unhealthy result from {url}",
                                    m.id
                                );
                            }
                            break;
                        }
                    }
                }
                if !checked {
                    println!(
                        "member {} is unreachable: [{}] are all unreachable",
                        m.id,
                        m.client_urls.join(" ")
                    );
                }
            }
            if healthy == members.len() {
                println!("cluster is healthy");
            } else if healthy == 0 {
                println!("cluster is unavailable");
            } else {
                println!("cluster is degraded");
            }
            if !a.forever {
                if healthy == members.len() {
                    return Ok(());
                }
                return Err(Fail::raw(exit::CLUSTER_NOT_HEALTHY, ""));
            }
            print!("\nnext check after 10 second...\n\n");
            tokio::time::sleep(FOREVER_INTERVAL).await;
        }
    };
    tokio::select! {
        result = check => result,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// Go's `http.Client.Get` error text: `Get "<url>/health": <cause>`.
fn go_get_error(url: &str, err: &beacon_client::Error) -> String {
    match err {
        beacon_client::Error::Unavailable(errors) if errors.0.len() == 1 => {
            format!("Get \"{url}/health\": {}", errors.0[0])
        }
        other => other.to_string(),
    }
}
