//! Compiles `proto/` with protox (a protobuf compiler in Rust: no system `protoc`) and
//! generates the messages with prost and the gRPC services with tonic, then, from the
//! same descriptors, the serde impls of etcd's messages with proto3's JSON mapping
//! (pbjson-build) for the JSON gateway.

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "etcdserverpb/rpc.proto",
        "mvccpb/kv.proto",
        "authpb/auth.proto",
        "beaconpb/internal.proto",
        "v3electionpb/v3election.proto",
        "v3lockpb/v3lock.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed=proto/{file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    let encoded = descriptors.encode_to_vec();
    tonic_prost_build::configure()
        .build_client(true)
        .build_transport(false)
        .compile_fds(descriptors)?;
    // grpc-gateway's JSON as etcd 3.4 configures it: the .proto's field names, and a
    // field the message does not have is ignored.
    pbjson_build::Builder::new()
        .register_descriptors(&encoded)?
        .preserve_proto_field_names()
        .ignore_unknown_fields()
        .build(&[
            ".etcdserverpb",
            ".mvccpb",
            ".authpb",
            ".v3electionpb",
            ".v3lockpb",
        ])?;
    Ok(())
}
