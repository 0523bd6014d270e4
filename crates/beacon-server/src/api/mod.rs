//! Endpoints outside the v2 key space: `/version` and `/health`.

pub mod health;
pub mod metrics;
pub mod version;
