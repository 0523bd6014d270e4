//! How `discover` shows an instance: an instance lives at
//! `/services/<service>/<datacenter>/<id>` with value `{"hostname":..,"port":".."}`.

use beacon_client::InstanceInfo;

/// How an instance's stored value is shown: `host:port`, or the raw value if it is not
/// an instance record.
pub fn display_value(value: &str) -> String {
    InstanceInfo::parse(value)
        .and_then(|i| i.authority())
        .map_or_else(|| value.to_string(), |a| a.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_display_as_addresses() {
        assert_eq!(display_value(r#"{"hostname":"h","port":"1"}"#), "h:1");
        assert_eq!(display_value(r#"{"hostname":"::1","port":"1"}"#), "[::1]:1");
        assert_eq!(display_value("raw"), "raw");
    }
}
