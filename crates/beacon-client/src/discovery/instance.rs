//! What an instance publishes about itself: the seed's JSON value, read leniently.
//!
//! The seed's scripts write `{"hostname": "...", "port": "..."}` with the port as a
//! string. Registrations written by other tools may carry more fields (`weight`, `zone`,
//! `tags`, or anything else); unknown ones are ignored so old callers keep working when
//! registrations grow, and a number port is accepted as well as a string.

use serde::{Deserialize, Serialize};

/// One registered instance of a service.
#[derive(Clone, Debug, PartialEq)]
pub struct Instance {
    /// The registry key, e.g. `/services/api/dc1/4f1c`.
    pub key: String,
    /// What the instance published.
    pub info: InstanceInfo,
}

/// The value of an instance's key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceInfo {
    /// Where the instance listens: a host name or an IP address.
    pub hostname: String,
    /// The port, written as a string as the seed writes it.
    #[serde(deserialize_with = "port_from_string_or_number")]
    pub port: String,
    /// A relative weight, for balancers that use one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    /// The zone the instance runs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Free-form labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

impl InstanceInfo {
    /// An instance at `hostname:port` with no optional fields.
    pub fn new(hostname: impl Into<String>, port: u16) -> InstanceInfo {
        InstanceInfo {
            hostname: hostname.into(),
            port: port.to_string(),
            weight: None,
            zone: None,
            tags: Vec::new(),
        }
    }

    /// An instance at `host:port` (`[v6]:port` too); the port must be a number.
    pub fn from_addr(addr: &str) -> Result<InstanceInfo, String> {
        let bad = || format!("invalid address {addr:?}: want host:port");
        let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port: u16 = port.parse().map_err(|_| bad())?;
        if host.is_empty() {
            return Err(bad());
        }
        Ok(InstanceInfo::new(host, port))
    }

    /// Reads a registry value; `None` when it is not an instance's JSON.
    pub fn parse(value: &str) -> Option<InstanceInfo> {
        serde_json::from_str(value).ok()
    }

    /// The JSON written to the registry.
    pub fn to_json(&self) -> String {
        // A struct of strings, numbers and a list of strings always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// `host:port` as an HTTP authority, IPv6 addresses bracketed; `None` when the
    /// published host or port cannot address anything.
    pub fn authority(&self) -> Option<http::uri::Authority> {
        let port: u16 = self.port.trim().parse().ok().filter(|p| *p != 0)?;
        let host = self.hostname.trim();
        if host.is_empty() {
            return None;
        }
        let text = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        text.parse().ok()
    }
}

fn port_from_string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Port {
        Text(String),
        Number(u64),
    }
    Ok(match Port::deserialize(d)? {
        Port::Text(s) => s,
        Port::Number(n) => n.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_value_parses() {
        let info = InstanceInfo::parse(r#"{"hostname":"127.0.0.1","port":"3000"}"#).unwrap();
        assert_eq!(info, InstanceInfo::new("127.0.0.1", 3000));
        assert_eq!(info.authority().unwrap().as_str(), "127.0.0.1:3000");
    }

    #[test]
    fn extra_fields_and_number_ports_are_accepted() {
        let info = InstanceInfo::parse(
            r#"{"hostname":"::1","port":8080,"weight":2.5,"zone":"a","tags":["x"],"owner":"ops"}"#,
        )
        .unwrap();
        assert_eq!(info.port, "8080");
        assert_eq!(info.weight, Some(2.5));
        assert_eq!(info.authority().unwrap().as_str(), "[::1]:8080");
    }

    #[test]
    fn unusable_values_are_refused() {
        assert!(InstanceInfo::parse("not json").is_none());
        assert!(InstanceInfo::parse(r#"{"hostname":"h"}"#).is_none());
        let zero = InstanceInfo::parse(r#"{"hostname":"h","port":"0"}"#).unwrap();
        assert!(zero.authority().is_none());
        let words = InstanceInfo::parse(r#"{"hostname":"h","port":"http"}"#).unwrap();
        assert!(words.authority().is_none());
    }

    #[test]
    fn addresses_split_into_host_and_port() {
        let v4 = InstanceInfo::from_addr("10.0.0.1:8080").unwrap();
        assert_eq!(v4, InstanceInfo::new("10.0.0.1", 8080));
        let v6 = InstanceInfo::from_addr("[::1]:80").unwrap();
        assert_eq!(v6.authority().unwrap().as_str(), "[::1]:80");
        assert!(InstanceInfo::from_addr("nohost").is_err());
        assert!(InstanceInfo::from_addr("h:notaport").is_err());
        assert!(InstanceInfo::from_addr(":80").is_err());
    }

    #[test]
    fn the_written_json_is_the_seeds_shape() {
        assert_eq!(
            InstanceInfo::new("10.0.0.1", 3000).to_json(),
            r#"{"hostname":"10.0.0.1","port":"3000"}"#
        );
    }
}
