//! Compiles `proto/` with protox (a protobuf compiler in Rust: no system `protoc`) and
//! generates the messages with prost and the gRPC services with tonic.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "etcdserverpb/rpc.proto",
        "mvccpb/kv.proto",
        "beaconpb/internal.proto",
        "v3electionpb/v3election.proto",
        "v3lockpb/v3lock.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed=proto/{file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_transport(false)
        .compile_fds(descriptors)?;
    Ok(())
}
