//! `--auto-compaction-mode` and `--auto-compaction-retention`, read as etcd 3.4 reads
//! them (`embed.Config.Validate`, `embed`'s `parseCompactionRetention`) into what the
//! compactor keeps (`crate::compactor`), or `None` when nothing is compacted.

use std::time::Duration;

use beacon_api::go_duration;

use crate::compactor::Retention;

const HOUR_NS: i64 = 3_600_000_000_000;

/// The compactor's retention, or `None` (a retention of 0: etcd's default, "off").
///
/// As etcd: a whole number that is not negative (Go's `Atoi`: an optional sign, then
/// digits) is hours in periodic mode and a revision count in revision mode; anything
/// else is a Go duration, in either mode (in revision mode, its nanoseconds are the
/// count). An empty mode, which etcd's checks let through, reads a whole number as no
/// retention at all, and refuses any other non-zero one when the compactor is made.
pub(super) fn parse(mode: &str, retention: &str) -> Result<Option<Retention>, String> {
    // etcd checks the mode whatever the retention, even "0".
    if !matches!(mode, "" | "periodic" | "revision") {
        return Err(format!("unknown auto-compaction-mode {mode:?}"));
    }
    // etcd: "AutoCompactionRetention defaults to "0" if not set".
    let retention = if retention.is_empty() { "0" } else { retention };
    let amount = match retention.parse::<i64>() {
        Ok(n) if n >= 0 => match mode {
            "revision" => n,
            // Go's Duration multiplication wraps past 292 years; so does this.
            "periodic" => n.wrapping_mul(HOUR_NS),
            _ => 0,
        },
        _ => signed_go_duration_ns(retention)
            .map_err(|e| format!("error parsing CompactionRetention: {e}"))?,
    };
    if amount == 0 {
        return Ok(None);
    }
    match mode {
        "revision" => Ok(Some(Retention::Revisions(amount))),
        "periodic" => {
            // etcd divides the interval by ten and then the retention by the result:
            // under 10ns that is a division by zero, and etcd 3.4 panics at start.
            if amount.unsigned_abs() < 10 {
                return Err(format!(
                    "--auto-compaction-retention={retention}: a periodic retention must be \
                     at least 10ns (etcd 3.4 panics on a shorter one: integer divide by zero)"
                ));
            }
            let magnitude = Duration::from_nanos(amount.unsigned_abs());
            Ok(Some(if amount > 0 {
                Retention::Periodic(magnitude)
            } else {
                Retention::PeriodicNegative(magnitude)
            }))
        }
        // etcd's words, its mode printed after them (here, none).
        _ => Err("unsupported compaction mode ".to_string()),
    }
}

/// Go's `time.ParseDuration`, sign included, in nanoseconds.
fn signed_go_duration_ns(text: &str) -> Result<i64, String> {
    let too_long = || format!("time: invalid duration {text:?}");
    match text.strip_prefix('-') {
        Some(magnitude) => {
            // Checks the sign as Go does ("-+1s" and "--1s" are refused) and words the
            // errors with the whole text.
            go_duration::parse_flag(text)?;
            let ns = go_duration::parse(magnitude)?.as_nanos();
            i64::try_from(ns).map(|ns| -ns).map_err(|_| too_long())
        }
        None => {
            let ns = go_duration::parse(text)?.as_nanos();
            i64::try_from(ns).map_err(|_| too_long())
        }
    }
}
