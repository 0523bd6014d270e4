//! What a PUT workload's id says: how many members, how many connections, which member the
//! load went to and the `--snapshot-count` both servers ran with.
//!
//! bench/run names its PUT loads `put-c64` and `put-c64-s10000`; bench/cluster names them
//! `c3-put-c64-leader` and `c3-put-c64-follower-s10000`. An id without `-sN` ran at the
//! default snapshot count, which keeps the ids of results from before issue 15 valid.

/// etcd 3.4's default `--snapshot-count`, and Beacon's.
pub const DEFAULT_SNAPSHOT_COUNT: u64 = 100_000;

/// Which member a PUT load was sent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Route {
    /// The only member of a single-member cluster.
    Sole,
    Leader,
    /// A follower, which forwards every write to the leader.
    Follower,
}

/// One PUT load, as its id describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PutPoint {
    pub members: u32,
    pub connections: u64,
    pub route: Route,
    pub snapshot_count: u64,
}

impl PutPoint {
    /// Parses a PUT workload id; `None` for any other workload.
    pub fn parse(workload: &str) -> Option<PutPoint> {
        let (members, rest) = match workload.strip_prefix("c3-") {
            Some(rest) => (3, rest),
            None => (1, workload),
        };
        let mut parts = rest.split('-');
        if parts.next()? != "put" {
            return None;
        }
        let connections = parts.next()?.strip_prefix('c')?.parse().ok()?;
        let mut point = PutPoint {
            members,
            connections,
            route: Route::Sole,
            snapshot_count: DEFAULT_SNAPSHOT_COUNT,
        };
        for part in parts {
            match part {
                "leader" if members > 1 => point.route = Route::Leader,
                "follower" if members > 1 => point.route = Route::Follower,
                _ => point.snapshot_count = part.strip_prefix('s')?.parse().ok()?,
            }
        }
        if members > 1 && point.route == Route::Sole {
            return None;
        }
        Some(point)
    }

    /// The id bench/run or bench/cluster gives this load.
    pub fn id(&self) -> String {
        let mut id = match self.members {
            1 => format!("put-c{}", self.connections),
            n => format!("c{n}-put-c{}", self.connections),
        };
        match self.route {
            Route::Sole => {}
            Route::Leader => id.push_str("-leader"),
            Route::Follower => id.push_str("-follower"),
        }
        if self.snapshot_count != DEFAULT_SNAPSHOT_COUNT {
            id.push_str(&format!("-s{}", self.snapshot_count));
        }
        id
    }

    /// "1 connection" or "N connections".
    pub fn connections_text(&self) -> String {
        match self.connections {
            1 => "1 connection".to_string(),
            n => format!("{n} connections"),
        }
    }

    /// ", --snapshot-count N" unless it is the default.
    pub fn snapshot_text(&self) -> String {
        if self.snapshot_count == DEFAULT_SNAPSHOT_COUNT {
            String::new()
        } else {
            format!(", --snapshot-count {}", self.snapshot_count)
        }
    }

    /// The heading of its table in RESULTS.md.
    pub fn title(&self) -> String {
        let (conns, snap) = (self.connections_text(), self.snapshot_text());
        match self.route {
            Route::Sole => format!("v2 PUT, {conns}{snap}"),
            Route::Leader => format!(
                "{} members: v2 PUT to the leader, {conns}{snap}",
                self.members
            ),
            Route::Follower => format!(
                "{} members: v2 PUT through a follower, {conns}{snap}",
                self.members
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for id in [
            "put-c1",
            "put-c256-s10000",
            "c3-put-c16-leader",
            "c3-put-c64-follower-s10000",
        ] {
            assert_eq!(PutPoint::parse(id).map(|p| p.id()).as_deref(), Some(id));
        }
        let point = PutPoint::parse("c3-put-c64-follower-s10000").unwrap();
        assert_eq!(
            point,
            PutPoint {
                members: 3,
                connections: 64,
                route: Route::Follower,
                snapshot_count: 10_000
            }
        );
        assert_eq!(
            point.title(),
            "3 members: v2 PUT through a follower, 64 connections, --snapshot-count 10000"
        );
        assert_eq!(
            PutPoint::parse("put-c1").unwrap().title(),
            "v2 PUT, 1 connection"
        );
    }

    #[test]
    fn other_workloads_are_not_put_points() {
        for id in [
            "get-c16",
            "qget-c16",
            "c3-failover",
            "put",
            "put-cx",
            "c3-put-c16",
            "put-c16-x",
        ] {
            assert_eq!(PutPoint::parse(id), None, "{id}");
        }
    }
}
