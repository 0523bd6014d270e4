//! Registration: an instance keeps its key under `/services/<service>/<dc>/<id>` alive.
//!
//! The key is written with a TTL and refreshed at about a third of it with
//! `refresh=true`, which resets the TTL without waking watchers, so callers see no noise.
//! If the key is gone when a refresh arrives (it expired while the registry was
//! unreachable), it is written again. A graceful stop deletes the key only if it still
//! holds this instance's value, so a successor that took the same id is left alone.

use std::time::Duration;

use beacon_api::ErrorCode;
use tokio::sync::oneshot;

use crate::client::Client;
use crate::discovery::InstanceInfo;
use crate::error::Error;
use crate::options::{DeleteOptions, SetOptions};

/// What to register; `new` fills in the defaults.
#[derive(Clone, Debug)]
pub struct RegistrationConfig {
    /// The service name (the second path segment).
    pub service: String,
    /// The datacenter (the third path segment).
    pub datacenter: String,
    /// This instance's id (the last path segment).
    pub id: String,
    /// The value written.
    pub info: InstanceInfo,
    /// The key's TTL, in whole seconds as etcd keeps it (default 10 s).
    pub ttl: Duration,
    /// How often the TTL is reset (default a third of the TTL).
    pub refresh_every: Duration,
    /// The wait before trying again after a failed refresh (default 1 s, at most
    /// `refresh_every`).
    pub retry_every: Duration,
}

impl RegistrationConfig {
    /// An instance `id` of `service` in `datacenter` at `info`, with a 10 s TTL.
    pub fn new(
        service: impl Into<String>,
        datacenter: impl Into<String>,
        id: impl Into<String>,
        info: InstanceInfo,
    ) -> RegistrationConfig {
        let ttl = Duration::from_secs(10);
        RegistrationConfig {
            service: service.into(),
            datacenter: datacenter.into(),
            id: id.into(),
            info,
            ttl,
            refresh_every: ttl / 3,
            retry_every: Duration::from_secs(1),
        }
    }

    /// Sets the TTL and refreshes at a third of it.
    pub fn with_ttl(mut self, ttl: Duration) -> RegistrationConfig {
        self.ttl = ttl;
        self.refresh_every = ttl / 3;
        self
    }

    /// The registry key: `/services/<service>/<datacenter>/<id>`.
    pub fn key(&self) -> String {
        format!("/services/{}/{}/{}", self.service, self.datacenter, self.id)
    }

    fn ttl_secs(&self) -> u64 {
        self.ttl.as_secs().max(1)
    }
}

/// A live registration; refreshing stops when it is dropped (the key then expires) or
/// [`Registration::deregister`]ed (the key is deleted at once).
#[derive(Debug)]
pub struct Registration {
    key: String,
    client: Client,
    value: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Registration {
    /// Writes the key and starts refreshing it; fails if the first write fails.
    pub async fn register(
        client: Client,
        config: RegistrationConfig,
    ) -> Result<Registration, Error> {
        assert!(
            !config.refresh_every.is_zero(),
            "a refresh period of zero would spin"
        );
        let key = config.key();
        let value = config.info.to_json();
        write(&client, &key, &value, config.ttl_secs()).await?;
        tracing::info!(%key, ttl = config.ttl_secs(), "registered");
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(refresh_loop(
            client.clone(),
            key.clone(),
            value.clone(),
            config,
            stopped,
        ));
        Ok(Registration {
            key,
            client,
            value,
            stop: Some(stop),
            task,
        })
    }

    /// The registry key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Stops refreshing and deletes the key if it still holds this instance's value.
    pub async fn deregister(mut self) -> Result<(), Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Wait for the loop so that no refresh re-creates the key after the delete.
        let _ = (&mut self.task).await;
        let opts = DeleteOptions {
            prev_value: Some(self.value.clone()),
            ..DeleteOptions::default()
        };
        match self.client.delete(&self.key, &opts).await {
            Ok(_) => {
                tracing::info!(key = %self.key, "deregistered");
                Ok(())
            }
            Err(e) if e.is_code(ErrorCode::KeyNotFound) || e.is_code(ErrorCode::TestFailed) => {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn refresh_loop(
    client: Client,
    key: String,
    value: String,
    config: RegistrationConfig,
    mut stopped: oneshot::Receiver<()>,
) {
    let ttl = config.ttl_secs();
    let retry = config.retry_every.min(config.refresh_every);
    let mut wait = config.refresh_every;
    loop {
        tokio::select! {
            _ = &mut stopped => return,
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

async fn write(client: &Client, key: &str, value: &str, ttl: u64) -> Result<(), Error> {
    let opts = SetOptions {
        ttl: Some(ttl),
        ..SetOptions::default()
    };
    client.set(key, value, &opts).await.map(|_| ())
}
