//! Registration through the v3 API: the key put with a lease, the lease kept alive on
//! its keep-alive stream.

use tokio::sync::oneshot;
use tonic::Code;

use super::RegistrationConfig;
use crate::error::Error;
use crate::v3::{moves_on, KeepAliveStream, V3Client};

/// A key being kept, with its lease.
pub(super) struct Kept {
    client: V3Client,
    key: Vec<u8>,
    value: Vec<u8>,
    /// The TTL asked for, in seconds.
    ttl: u64,
    lease: i64,
}

/// The graceful stop: revoke the lease, which deletes the key if it is still the lease's.
#[derive(Debug)]
pub(super) struct Leave {
    client: V3Client,
    lease: i64,
}

impl Kept {
    /// Grants a lease of the TTL and puts the key with it.
    pub(super) async fn register(
        client: V3Client,
        config: &RegistrationConfig,
    ) -> Result<Kept, Error> {
        let key = config.key().into_bytes();
        let value = config.info.to_json().into_bytes();
        let ttl = config.ttl_secs();
        let lease = grant_and_put(&client, &key, &value, ttl).await?;
        Ok(Kept {
            client,
            key,
            value,
            ttl,
            lease,
        })
    }

    /// Keeps the lease alive until `stopped` fires; when it is gone, grants a new one
    /// and puts the key again.
    pub(super) async fn refresh(
        mut self,
        config: RegistrationConfig,
        mut stopped: oneshot::Receiver<()>,
    ) -> Leave {
        let retry = config.retry_every.min(config.refresh_every);
        let mut wait = config.refresh_every;
        let mut stream = None;
        loop {
            tokio::select! {
                _ = &mut stopped => return Leave { client: self.client, lease: self.lease },
                () = tokio::time::sleep(wait) => {}
            }
            // One round is bounded, so a member that stopped answering costs one retry.
            let round = tokio::time::timeout(self.client.timeout(), self.keep(&mut stream));
            let outcome = match round.await {
                Ok(outcome) => outcome,
                Err(_) => {
                    if let Some(s) = stream.take() {
                        self.client.failed(s.at);
                    }
                    Err("no keep-alive answer within the timeout".to_string())
                }
            };
            wait = match outcome {
                Ok(()) => config.refresh_every,
                Err(e) => {
                    let key = String::from_utf8_lossy(&self.key);
                    tracing::warn!(%key, error = %e, "keeping the registration alive failed");
                    retry
                }
            };
        }
    }

    /// One keep-alive on the stream (opened if there is none), or a new lease and put
    /// when the lease has expired.
    async fn keep(&mut self, stream: &mut Option<KeepAliveStream>) -> Result<(), String> {
        let answer = match stream {
            Some(s) => s.renew().await,
            None => {
                let mut opened = self
                    .client
                    .keep_alive(self.lease)
                    .await
                    .map_err(|e| e.to_string())?;
                // Opening sent the first keep-alive; this is its answer.
                let answer = opened.next().await;
                *stream = Some(opened);
                answer
            }
        };
        match answer {
            Ok(ttl) if ttl > 0 => Ok(()),
            Ok(_) => {
                // etcd answers TTL 0 for a lease it no longer has.
                *stream = None;
                let key = String::from_utf8_lossy(&self.key);
                tracing::warn!(%key, lease = self.lease, "registration expired; registering again");
                self.lease = grant_and_put(&self.client, &self.key, &self.value, self.ttl)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(())
            }
            Err(status) => {
                if let Some(s) = stream.take() {
                    if moves_on(&status) {
                        self.client.failed(s.at);
                    }
                }
                Err(status.message().to_string())
            }
        }
    }
}

impl Leave {
    pub(super) async fn run(self) -> Result<(), Error> {
        match self.client.revoke(self.lease).await {
            Err(Error::Grpc(status)) if status.code() == Code::NotFound => Ok(()),
            other => other,
        }
    }
}

/// Grants a lease of `ttl` seconds and puts the key with it; returns the lease. A lease
/// whose put failed is revoked (or left to expire if that fails too).
async fn grant_and_put(
    client: &V3Client,
    key: &[u8],
    value: &[u8],
    ttl: u64,
) -> Result<i64, Error> {
    let ttl = i64::try_from(ttl).unwrap_or(i64::MAX);
    let (lease, _) = client.grant(ttl).await?;
    if let Err(e) = client.put(key, value, lease).await {
        let _ = client.revoke(lease).await;
        return Err(e);
    }
    Ok(lease)
}
