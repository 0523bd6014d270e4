//! etcd's v3 protocol: the messages and gRPC services of etcd 3.4.23's `etcdserverpb`
//! and `mvccpb`,
//! generated at build time from `proto/` (our own definitions with etcd's names and
//! field numbers; see the file's header).

/// Package `mvccpb`: a key's value at a revision, and change events.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

/// Package `etcdserverpb`: requests, responses and the services' server and client code.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

/// Package `beaconpb`: Beacon's own messages, for the Raft log only (a v3 write and the
/// answer to it), never for clients.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod beaconpb {
    tonic::include_proto!("beaconpb");
}
