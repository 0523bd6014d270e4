//! A gRPC channel to a server's client port, for the v3 tests.

use tonic::transport::Channel;

/// A connected channel to `url` (a server's client URL); panics if it cannot connect,
/// which a test started the server for.
pub async fn grpc_channel(url: &str) -> Channel {
    Channel::from_shared(url.to_string())
        .expect("a URL")
        .connect()
        .await
        .expect("gRPC connects")
}
