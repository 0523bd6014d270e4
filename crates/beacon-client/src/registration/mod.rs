//! Registration: an instance keeps its key under `/services/<service>/<dc>/<id>` alive,
//! through etcd's v2 API or its v3 API (the [`Registry`] says which).
//!
//! v2 ([`v2`]): the key is written with a TTL and refreshed at about a third of it with
//! `refresh=true`, which resets the TTL without waking watchers, so callers see no noise.
//! If the key is gone when a refresh arrives (it expired while the registry was
//! unreachable), it is written again. A graceful stop deletes the key only if it still
//! holds this instance's value, so a successor that took the same id is left alone.
//!
//! v3 ([`v3`]): the key is put with a lease of the TTL, and the lease is kept alive on
//! its keep-alive stream at about a third of the TTL (a keep-alive writes no key, so
//! watchers see nothing). If the lease is gone (it expired while the registry was
//! unreachable), a new one is granted and the key put again. A graceful stop revokes the
//! lease, which deletes the key only if it is still this lease's: a successor that put
//! the same id with its own lease is left alone.

mod v2;
mod v3;

use std::time::Duration;

use tokio::sync::oneshot;

use crate::client::Client;
use crate::discovery::InstanceInfo;
use crate::error::Error;
use crate::v3::V3Client;

/// Which API a registry is reached through: a v2 [`Client`] or a [`V3Client`]. Both
/// convert into it, so `Registration::register` and `Discovery::start` take either.
#[derive(Clone, Debug)]
pub enum Registry {
    /// etcd's v2 keys API over HTTP.
    V2(Client),
    /// etcd's v3 API over gRPC.
    V3(V3Client),
}

impl From<Client> for Registry {
    fn from(client: Client) -> Registry {
        Registry::V2(client)
    }
}

impl From<V3Client> for Registry {
    fn from(client: V3Client) -> Registry {
        Registry::V3(client)
    }
}

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
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Leave>,
}

/// What a graceful stop does once the refresh loop has ended.
#[derive(Debug)]
enum Leave {
    V2(v2::Leave),
    V3(v3::Leave),
}

impl Registration {
    /// Writes the key and starts refreshing it; fails if the first write fails.
    pub async fn register(
        registry: impl Into<Registry>,
        config: RegistrationConfig,
    ) -> Result<Registration, Error> {
        assert!(
            !config.refresh_every.is_zero(),
            "a refresh period of zero would spin"
        );
        let key = config.key();
        let (stop, stopped) = oneshot::channel();
        let task = match registry.into() {
            Registry::V2(client) => {
                let kept = v2::Kept::register(client, &config).await?;
                tokio::spawn(async move { Leave::V2(kept.refresh(config, stopped).await) })
            }
            Registry::V3(client) => {
                let kept = v3::Kept::register(client, &config).await?;
                tokio::spawn(async move { Leave::V3(kept.refresh(config, stopped).await) })
            }
        };
        tracing::info!(%key, "registered");
        Ok(Registration {
            key,
            stop: Some(stop),
            task,
        })
    }

    /// The registry key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Stops refreshing and deletes the key if it is still this instance's.
    pub async fn deregister(mut self) -> Result<(), Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Wait for the loop so that no refresh re-creates the key after the delete.
        let leave = match (&mut self.task).await {
            Ok(leave) => leave,
            // The loop panicked: nothing is known to delete; the key expires.
            Err(_) => return Ok(()),
        };
        match leave {
            Leave::V2(leave) => leave.run().await?,
            Leave::V3(leave) => leave.run().await?,
        }
        tracing::info!(key = %self.key, "deregistered");
        Ok(())
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.task.abort();
    }
}
