//! Every knob of the balancer in one place, with Finagle's defaults.
//!
//! The defaults are chosen so that one bad instance among a few is noticed within a
//! handful of requests, yet a burst of errors from a healthy fleet never ejects more than
//! the panic threshold allows.

use std::time::Duration;

use super::error::BalanceError;

/// How the balancer picks, watches and retries instances.
#[derive(Debug, Clone, PartialEq)]
pub struct BalanceConfig {
    /// Deadline of one attempt, from entering the balancer to the response head.
    pub attempt_timeout: Duration,
    /// How long a request waits for discovery's first instance after the client is built.
    pub startup_wait: Duration,
    /// Requests waiting at once for an instance to take them; more fail at once.
    pub waiting_requests_max: usize,
    /// Instance changes queued between discovery and the balancer.
    pub discover_changes_max: usize,
    /// Above this fraction of untrusted instances, every instance is used (panic mode).
    pub panic_threshold: f64,
    /// Round-trip time assumed for an instance that has not answered yet (peak EWMA).
    ///
    /// Set near the fleet's usual latency: much higher, and a new instance loses every p2c
    /// comparison until the estimate decays; much lower, and it draws a burst of requests
    /// before its first answer.
    pub load_default_rtt: Duration,
    /// How fast the peak EWMA forgets an old round-trip time.
    pub load_decay: Duration,
    /// When an instance stops being trusted and how it earns trust back.
    pub accrual: AccrualConfig,
    /// Which failed requests are tried again, and how many.
    pub retry: RetryConfig,
    /// How long an idle pooled connection is kept (HTTP only).
    pub pool_idle_timeout: Duration,
    /// Idle pooled connections kept per instance (HTTP only).
    pub pool_idle_per_instance_max: usize,
}

impl Default for BalanceConfig {
    fn default() -> Self {
        Self {
            attempt_timeout: Duration::from_secs(2),
            startup_wait: Duration::from_secs(1),
            waiting_requests_max: 1024,
            discover_changes_max: 1024,
            panic_threshold: 0.5,
            load_default_rtt: Duration::from_millis(30),
            load_decay: Duration::from_secs(10),
            accrual: AccrualConfig::default(),
            retry: RetryConfig::default(),
            pool_idle_timeout: Duration::from_secs(90),
            pool_idle_per_instance_max: 256,
        }
    }
}

impl BalanceConfig {
    /// Rejects values tower would panic on or that make the balancer useless.
    pub fn validate(&self) -> Result<(), BalanceError> {
        let bad = |what: &'static str| Err(BalanceError::InvalidConfig(what));
        if self.attempt_timeout.is_zero() {
            return bad("attempt_timeout must be positive");
        }
        if self.waiting_requests_max == 0 || self.discover_changes_max == 0 {
            return bad("waiting_requests_max and discover_changes_max must be positive");
        }
        if !(0.0..=1.0).contains(&self.panic_threshold) {
            return bad("panic_threshold must be within 0..=1");
        }
        self.accrual.validate()?;
        self.retry.validate()
    }
}

/// Failure accrual: when an instance is ejected and how it comes back.
#[derive(Debug, Clone, PartialEq)]
pub struct AccrualConfig {
    /// Failures in a row that eject an instance.
    pub consecutive_failures_max: u32,
    /// Success rate over the window under which an instance is ejected.
    pub success_rate_min: f64,
    /// The sliding window the success rate is measured over (whole seconds).
    pub window: Duration,
    /// Requests the window must hold before its success rate counts.
    pub window_requests_min: u32,
    /// How long an ejected instance waits before its probe.
    pub backoff: BackoffConfig,
}

impl Default for AccrualConfig {
    fn default() -> Self {
        Self {
            consecutive_failures_max: 5,
            success_rate_min: 0.8,
            window: Duration::from_secs(30),
            window_requests_min: 10,
            backoff: BackoffConfig::default(),
        }
    }
}

/// The window is a ring of one-second buckets; this bounds its memory.
pub(crate) const WINDOW_SECONDS_MAX: u64 = 600;

impl AccrualConfig {
    fn validate(&self) -> Result<(), BalanceError> {
        let bad = |what: &'static str| Err(BalanceError::InvalidConfig(what));
        if self.consecutive_failures_max == 0 {
            return bad("consecutive_failures_max must be positive");
        }
        if !(0.0..=1.0).contains(&self.success_rate_min) {
            return bad("success_rate_min must be within 0..=1");
        }
        if self.window.as_secs() == 0 || self.window.as_secs() > WINDOW_SECONDS_MAX {
            return bad("window must be between 1 s and 600 s");
        }
        self.backoff.validate()
    }
}

/// Exponential backoff with jitter between an ejection and its probe.
#[derive(Debug, Clone, PartialEq)]
pub struct BackoffConfig {
    /// Wait after the first ejection.
    pub initial: Duration,
    /// Factor applied after every failed probe.
    pub multiplier: f64,
    /// The longest wait, jitter included.
    pub max: Duration,
    /// Fraction of the wait drawn at random either way, so instances do not probe in step.
    pub jitter: f64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            multiplier: 2.0,
            max: Duration::from_secs(30),
            jitter: 0.2,
        }
    }
}

impl BackoffConfig {
    fn validate(&self) -> Result<(), BalanceError> {
        let bad = |what: &'static str| Err(BalanceError::InvalidConfig(what));
        if self.multiplier < 1.0 || !self.multiplier.is_finite() {
            return bad("backoff multiplier must be at least 1");
        }
        if !(0.0..1.0).contains(&self.jitter) {
            return bad("backoff jitter must be within 0..1");
        }
        if self.initial > self.max {
            return bad("backoff initial must not exceed max");
        }
        Ok(())
    }
}

/// Retries: which requests, how many attempts, and the budget they draw from.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    /// Attempts per request, the first included.
    pub attempts_max: usize,
    /// How long a deposit into the retry budget counts (1 s to 60 s, tower's bounds).
    pub budget_ttl: Duration,
    /// Retries allowed per second even without traffic.
    pub budget_min_per_sec: u32,
    /// Retries allowed as a fraction of first attempts.
    pub budget_ratio: f32,
    /// Response statuses after which an idempotent request is retried (default: 503).
    pub retry_statuses: Vec<u16>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            attempts_max: 3,
            budget_ttl: Duration::from_secs(10),
            budget_min_per_sec: 10,
            budget_ratio: 0.2,
            retry_statuses: vec![503],
        }
    }
}

impl RetryConfig {
    fn validate(&self) -> Result<(), BalanceError> {
        let bad = |what: &'static str| Err(BalanceError::InvalidConfig(what));
        if self.attempts_max == 0 {
            return bad("attempts_max must be positive");
        }
        // TpsBudget::new asserts these; a config must not be able to panic the client.
        if self.budget_ttl < Duration::from_secs(1) || self.budget_ttl > Duration::from_secs(60) {
            return bad("budget_ttl must be between 1 s and 60 s");
        }
        if !(0.0..=1000.0).contains(&self.budget_ratio) {
            return bad("budget_ratio must be within 0..=1000");
        }
        if self.budget_min_per_sec >= i32::MAX as u32 {
            return bad("budget_min_per_sec is too large");
        }
        Ok(())
    }
}
