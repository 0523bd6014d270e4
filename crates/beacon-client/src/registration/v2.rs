//! Registration through the v2 API: a key with a TTL, refreshed with `refresh=true`.

use beacon_api::ErrorCode;
use tokio::sync::oneshot;

use super::RegistrationConfig;
use crate::client::Client;
use crate::error::Error;
use crate::options::{DeleteOptions, SetOptions};

/// A key being kept.
pub(super) struct Kept {
    client: Client,
    key: String,
    value: String,
}

/// The graceful stop: delete the key if it still holds this instance's value.
#[derive(Debug)]
pub(super) struct Leave {
    client: Client,
    key: String,
    value: String,
}

impl Kept {
    /// Writes the key with its TTL.
    pub(super) async fn register(
        client: Client,
        config: &RegistrationConfig,
    ) -> Result<Kept, Error> {
        let kept = Kept {
            client,
            key: config.key(),
            value: config.info.to_json(),
        };
        write(&kept.client, &kept.key, &kept.value, config.ttl_secs()).await?;
        Ok(kept)
    }

    /// Refreshes the key until `stopped` fires, writing it again if it expired.
    pub(super) async fn refresh(
        self,
        config: RegistrationConfig,
        mut stopped: oneshot::Receiver<()>,
    ) -> Leave {
        let Kept { client, key, value } = self;
        let ttl = config.ttl_secs();
        let retry = config.retry_every.min(config.refresh_every);
        let mut wait = config.refresh_every;
        loop {
            tokio::select! {
                _ = &mut stopped => return Leave { client, key, value },
                () = tokio::time::sleep(wait) => {}
            }
            let outcome = match client.refresh(&key, ttl).await {
                Err(e) if e.is_code(ErrorCode::KeyNotFound) => {
                    tracing::warn!(%key, "registration expired; registering again");
                    write(&client, &key, &value, ttl).await
                }
                other => other.map(|_| ()),
            };
            wait = match outcome {
                Ok(()) => config.refresh_every,
                Err(e) => {
                    tracing::warn!(%key, error = %e, "refreshing the registration failed");
                    retry
                }
            };
        }
    }
}

impl Leave {
    pub(super) async fn run(self) -> Result<(), Error> {
        let opts = DeleteOptions {
            prev_value: Some(self.value.clone()),
            ..DeleteOptions::default()
        };
        match self.client.delete(&self.key, &opts).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_code(ErrorCode::KeyNotFound) || e.is_code(ErrorCode::TestFailed) => {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

async fn write(client: &Client, key: &str, value: &str, ttl: u64) -> Result<(), Error> {
    let opts = SetOptions {
        ttl: Some(ttl),
        ..SetOptions::default()
    };
    client.set(key, value, &opts).await.map(|_| ())
}
