//! etcd's v3 protocol: the messages and gRPC services of etcd 3.4.23's `etcdserverpb`,
//! `mvccpb`, `authpb`, `v3electionpb` and `v3lockpb`,
//! generated at build time from `proto/` (our own definitions with etcd's names and
//! field numbers; see the file's header).

/// Package `mvccpb` (with grpc-gateway's JSON as serde impls): a key's value at a revision, and change events.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
    include!(concat!(env!("OUT_DIR"), "/mvccpb.serde.rs"));
}

/// Package `authpb`: users, roles and permissions as the Auth service sends them.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod authpb {
    tonic::include_proto!("authpb");
    include!(concat!(env!("OUT_DIR"), "/authpb.serde.rs"));
}

/// Package `etcdserverpb`: requests, responses and the services' server and client code,
/// and grpc-gateway's JSON of each message as serde impls.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
    include!(concat!(env!("OUT_DIR"), "/etcdserverpb.serde.rs"));
}

/// Package `v3electionpb`: the Election service (campaigns, leaders, observers).
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v3electionpb {
    tonic::include_proto!("v3electionpb");
    include!(concat!(env!("OUT_DIR"), "/v3electionpb.serde.rs"));
}

/// Package `v3lockpb`: the Lock service.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v3lockpb {
    tonic::include_proto!("v3lockpb");
    include!(concat!(env!("OUT_DIR"), "/v3lockpb.serde.rs"));
}

/// Package `beaconpb`: Beacon's own messages, for the Raft log only (a v3 write and the
/// answer to it), never for clients.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod beaconpb {
    tonic::include_proto!("beaconpb");
}

/// The `range_end` that makes a request cover every key starting with `prefix`
/// (etcd's `clientv3.GetPrefixRangeEnd`): the prefix with its last byte below 0xff
/// incremented and the rest cut; `"\0"` (every key from `prefix` on) when every byte
/// is 0xff, the empty prefix included.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_ends_are_etcds() {
        assert_eq!(prefix_end(b"/services/web/"), b"/services/web0");
        assert_eq!(prefix_end(b"bench/w/"), b"bench/w0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
        assert_eq!(prefix_end(b""), b"\0");
    }
}
