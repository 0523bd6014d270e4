//! `/v2/stats/{self,store,leader}` in etcd's JSON shapes.

use axum::response::Response;
use http::StatusCode;
use serde::Serialize;

use super::error::etcd_error;
use crate::cluster::id_hex;
use crate::consensus::read_store;
use crate::http::{full, json_message, method_not_allowed, APPLICATION_JSON};
use crate::state::AppState;

/// Serves `which` (`self`, `store` or `leader`); all are GET only.
pub async fn serve(state: &AppState, method: &http::Method, which: &str) -> Response {
    if method != http::Method::GET {
        return method_not_allowed(Some("GET"));
    }
    match which {
        "store" => {
            // The store's counters include this member's acknowledged writes.
            if let Err(e) = super::keys::read_caught_up(state).await {
                return etcd_error(&e);
            }
            let stats = match read_store(state.consensus.store()) {
                Ok(store) => store.stats(),
                Err(e) => return etcd_error(&e),
            };
            full(
                StatusCode::OK,
                Some(APPLICATION_JSON),
                serde_json::to_string(&stats).unwrap_or_default(),
            )
        }
        "self" => full(StatusCode::OK, Some(APPLICATION_JSON), self_stats(state)),
        _ => leader_stats(state),
    }
}

#[derive(Serialize)]
struct LeaderInfo {
    leader: String,
    uptime: String,
    #[serde(rename = "startTime")]
    start_time: String,
}

#[derive(Serialize)]
struct SelfStats<'a> {
    name: &'a str,
    id: String,
    state: &'static str,
    #[serde(rename = "startTime")]
    start_time: String,
    #[serde(rename = "leaderInfo")]
    leader_info: LeaderInfo,
    #[serde(rename = "recvAppendRequestCnt")]
    recv_append_request_cnt: u64,
    #[serde(rename = "sendAppendRequestCnt")]
    send_append_request_cnt: u64,
}

/// etcd's `ServerStats`. Append counters and rates are not tracked yet (0, and the
/// rate fields are omitted, as etcd omits them when zero).
fn self_stats(state: &AppState) -> String {
    let status = state.status_noting_leader();
    let seen = *state.leader_seen.lock().unwrap_or_else(|p| p.into_inner());
    let uptime_ns = state.now_ns().saturating_sub(seen.since_ns).max(0);
    let stats = SelfStats {
        name: &state.cluster.local_name,
        id: id_hex(state.cluster.local_id),
        state: if status.is_leader() {
            "StateLeader"
        } else {
            "StateFollower"
        },
        start_time: beacon_api::time::rfc3339_nano(state.start_ns),
        leader_info: LeaderInfo {
            leader: seen.leader.map(id_hex).unwrap_or_default(),
            uptime: go_duration(u64::try_from(uptime_ns).unwrap_or(0)),
            start_time: beacon_api::time::rfc3339_nano(seen.since_ns),
        },
        recv_append_request_cnt: 0,
        send_append_request_cnt: 0,
    };
    serde_json::to_string(&stats).unwrap_or_default()
}

/// etcd's `LeaderStats` on the leader; 403 elsewhere.
fn leader_stats(state: &AppState) -> Response {
    let status = state.status();
    if !status.is_leader() {
        return json_message(StatusCode::FORBIDDEN, "not current leader");
    }
    let measured = state.consensus.follower_stats();
    let followers: std::collections::BTreeMap<String, FollowerStats> = state
        .consensus
        .members()
        .iter()
        .filter(|m| m.id != state.cluster.local_id)
        .map(|m| {
            let f = measured.get(&m.id).cloned().unwrap_or_default();
            let stats = FollowerStats {
                latency: LatencyStats {
                    current: GoFloat(f.current_ms),
                    average: GoFloat(f.average_ms),
                    standard_deviation: GoFloat(f.standard_deviation_ms),
                    minimum: GoFloat(f.minimum_ms),
                    maximum: GoFloat(f.maximum_ms),
                },
                counts: CountsStats {
                    fail: f.fail,
                    success: f.success,
                },
            };
            (id_hex(m.id), stats)
        })
        .collect();
    let body = LeaderStats {
        leader: id_hex(state.cluster.local_id),
        followers,
    };
    full(
        StatusCode::OK,
        Some(APPLICATION_JSON),
        serde_json::to_string(&body).unwrap_or_default(),
    )
}

#[derive(Serialize)]
struct LeaderStats {
    leader: String,
    followers: std::collections::BTreeMap<String, FollowerStats>,
}

#[derive(Serialize)]
struct FollowerStats {
    latency: LatencyStats,
    counts: CountsStats,
}

/// Milliseconds, as etcd's float64 fields.
#[derive(Serialize)]
struct LatencyStats {
    current: GoFloat,
    average: GoFloat,
    #[serde(rename = "standardDeviation")]
    standard_deviation: GoFloat,
    minimum: GoFloat,
    maximum: GoFloat,
}

/// A float printed as Go's encoding/json prints a float64: whole numbers without a
/// fraction (`0`, and etcd's starting minimum `9223372036854775808`), others shortest.
struct GoFloat(f64);

impl Serialize for GoFloat {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.fract() == 0.0 && (0.0..1.8e19).contains(&v) {
            serializer.serialize_u64(v as u64)
        } else {
            serializer.serialize_f64(v)
        }
    }
}

#[derive(Serialize)]
struct CountsStats {
    fail: u64,
    success: u64,
}

/// Go's `time.Duration.String` for a non-negative duration in nanoseconds:
/// `2m49.439997413s`, `1h0m0s`, `1.5ms`, `0s`.
pub fn go_duration(ns: u64) -> String {
    fn frac(value: u64, unit: u64) -> String {
        let whole = value / unit;
        let rest = value % unit;
        if rest == 0 {
            return whole.to_string();
        }
        let digits = unit.ilog10() as usize;
        let f = format!("{rest:0digits$}");
        format!("{whole}.{}", f.trim_end_matches('0'))
    }
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}µs", frac(ns, 1_000));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", frac(ns, 1_000_000));
    }
    let secs_ns = ns % 60_000_000_000;
    let total_min = ns / 60_000_000_000;
    let (h, m) = (total_min / 60, total_min % 60);
    let s = format!("{}s", frac(secs_ns, 1_000_000_000));
    if h > 0 {
        format!("{h}h{m}m{s}")
    } else if m > 0 {
        format!("{m}m{s}")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::go_duration;

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(5), "5ns");
        assert_eq!(go_duration(1_500), "1.5µs");
        assert_eq!(go_duration(1_500_000), "1.5ms");
        assert_eq!(go_duration(169_439_997_413), "2m49.439997413s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(1_000_000_000), "1s");
        assert_eq!(go_duration(60_000_000_000), "1m0s");
    }
}
