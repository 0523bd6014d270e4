//! etcd's v2 proxy flags (`--proxy` and the five `--proxy-*` timings), read into the
//! settings `crate::proxy` runs with.

use std::time::Duration;

/// `--proxy`: whether this process is a member or a proxy, and which kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyMode {
    /// `off`: a member (etcd's default).
    Off,
    /// `on`: a proxy that forwards every request.
    On,
    /// `readonly`: a proxy that forwards GET requests alone.
    Readonly,
}

/// The proxy's settings, etcd's defaults when not given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProxySettings {
    /// `--proxy`.
    pub mode: ProxyMode,
    /// `--proxy-failure-wait`: how long an endpoint that failed is skipped.
    pub failure_wait: Duration,
    /// `--proxy-refresh-interval`: how often the members' client URLs are asked again.
    pub refresh_interval: Duration,
    /// `--proxy-dial-timeout`; `None`: no bound (0).
    pub dial_timeout: Option<Duration>,
    /// `--proxy-write-timeout`: each write to a member; `None`: no bound (0).
    pub write_timeout: Option<Duration>,
    /// `--proxy-read-timeout`: each read from a member; `None`: no bound (0, etcd's
    /// default, which a watch needs).
    pub read_timeout: Option<Duration>,
}

impl Default for ProxySettings {
    fn default() -> ProxySettings {
        ProxySettings {
            mode: ProxyMode::Off,
            failure_wait: Duration::from_millis(5000),
            refresh_interval: Duration::from_millis(30000),
            dial_timeout: Some(Duration::from_millis(1000)),
            write_timeout: Some(Duration::from_millis(5000)),
            read_timeout: None,
        }
    }
}

/// `--proxy`'s value as etcd's selective flag takes it; its refusal in etcd's words,
/// which name where it came from (`flag -proxy`, or `ETCD_PROXY`).
pub(super) fn parse_mode(value: &str, source: &str) -> Result<ProxyMode, String> {
    match value {
        "off" => Ok(ProxyMode::Off),
        "on" => Ok(ProxyMode::On),
        "readonly" => Ok(ProxyMode::Readonly),
        other => Err(format!(
            "invalid value {other:?} for {source}: invalid value"
        )),
    }
}

/// Milliseconds as the proxy's transport takes them: 0 is no bound.
pub(super) fn timeout_ms(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_etcds_three() {
        let flag = "flag -proxy";
        assert_eq!(parse_mode("off", flag), Ok(ProxyMode::Off));
        assert_eq!(parse_mode("on", flag), Ok(ProxyMode::On));
        assert_eq!(parse_mode("readonly", flag), Ok(ProxyMode::Readonly));
        assert_eq!(
            parse_mode("On", flag).unwrap_err(),
            "invalid value \"On\" for flag -proxy: invalid value"
        );
        assert_eq!(
            parse_mode("x", "ETCD_PROXY").unwrap_err(),
            "invalid value \"x\" for ETCD_PROXY: invalid value"
        );
    }

    #[test]
    fn zero_is_no_timeout() {
        assert_eq!(timeout_ms(0), None);
        assert_eq!(timeout_ms(5), Some(Duration::from_millis(5)));
    }
}
