//! Go's `time.ParseDuration` syntax (`2s`, `500ms`, `1m30s`, `1.5h`), which etcd's
//! duration flags take, and etcdctl's `--timeout` and `--total-timeout`.

use std::time::Duration;

/// Parses a Go duration; negative durations are not accepted.
pub fn parse(text: &str) -> Result<Duration, String> {
    let bad = || format!("time: invalid duration {text:?}");
    let body = text.strip_prefix('+').unwrap_or(text);
    if body == "0" {
        return Ok(Duration::ZERO);
    }
    if body.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    let mut rest = body;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("time: missing unit in duration {text:?}"))?;
        let number: f64 = rest[..number_len].parse().map_err(|_| bad())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            unit => return Err(format!("time: unknown unit {unit:?} in duration {text:?}")),
        };
        total += number * nanos_per_unit;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_nanos(total as u64))
}

/// A duration flag of etcd's server. Go takes a negative duration too, and each of
/// etcd's duration flags that Beacon has reads one as it reads 0 (its default, or no
/// threshold at all), so a negative duration is 0 here.
pub fn parse_flag(text: &str) -> Result<Duration, String> {
    match text.strip_prefix('-') {
        // Go takes one sign, not two.
        Some(magnitude) if !magnitude.starts_with('+') => {
            parse(magnitude)
                .map_err(|e| e.replace(&format!("{magnitude:?}"), &format!("{text:?}")))?;
            Ok(Duration::ZERO)
        }
        Some(_) => Err(format!("time: invalid duration {text:?}")),
        None => parse(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("1ns"), Ok(Duration::from_nanos(1)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert!(parse("5").is_err());
        assert!(parse("x").is_err());
        assert!(parse("-1s").is_err());
    }

    #[test]
    fn a_negative_flag_reads_as_zero() {
        assert_eq!(parse_flag("-1s"), Ok(Duration::ZERO));
        assert_eq!(parse_flag("-0"), Ok(Duration::ZERO));
        assert_eq!(parse_flag("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(
            parse_flag("-5"),
            Err("time: missing unit in duration \"-5\"".to_string())
        );
        assert!(parse_flag("-+1s").is_err());
        assert!(parse_flag("--1s").is_err());
    }
}
