//! The service registry layout shared by `register` and `discover`: an instance lives at
//! `/services/<service>/<datacenter>/<id>` with value `{"hostname":..,"port":".."}`.

use serde::{Deserialize, Serialize};

/// An instance's value; the port is a string, as the registry's readers expect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// Host name or address.
    pub hostname: String,
    /// Port, as a decimal string.
    pub port: String,
}

impl Instance {
    /// Splits `host:port` (`[v6]:port` too); the port must be a number.
    pub fn from_addr(addr: &str) -> Result<Instance, String> {
        let bad = || format!("invalid address {addr:?}: want host:port");
        let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(bad());
        }
        Ok(Instance {
            hostname: host.to_string(),
            port: port.to_string(),
        })
    }

    /// `host:port` for display (`[v6]:port` for IPv6 addresses).
    pub fn addr(&self) -> String {
        if self.hostname.contains(':') {
            format!("[{}]:{}", self.hostname, self.port)
        } else {
            format!("{}:{}", self.hostname, self.port)
        }
    }
}

/// The directory holding a service's instances.
pub fn service_dir(service: &str) -> String {
    format!("/services/{}", service.trim_matches('/'))
}

/// How an instance's stored value is shown: `host:port`, or the raw value if it is not
/// an instance record.
pub fn display_value(value: &str) -> String {
    serde_json::from_str::<Instance>(value).map_or_else(|_| value.to_string(), |i| i.addr())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_split_into_host_and_string_port() {
        let i = Instance::from_addr("10.0.0.1:8080").expect("valid");
        assert_eq!(
            serde_json::to_string(&i).expect("json"),
            r#"{"hostname":"10.0.0.1","port":"8080"}"#
        );
        assert_eq!(
            Instance::from_addr("[::1]:80").expect("v6").addr(),
            "[::1]:80"
        );
        assert!(Instance::from_addr("nohost").is_err());
        assert!(Instance::from_addr("h:notaport").is_err());
        assert!(Instance::from_addr(":80").is_err());
    }

    #[test]
    fn values_display_as_addresses() {
        assert_eq!(display_value(r#"{"hostname":"h","port":"1"}"#), "h:1");
        assert_eq!(display_value("raw"), "raw");
    }
}
