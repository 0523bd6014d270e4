//! A gRPC channel to a server's client port, for the v3 tests.

use tonic::transport::Channel;

/// A gRPC request carrying `token` as etcd's clients send it (the `token` metadata).
pub fn with_token<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("token", token.parse().expect("a token is ASCII"));
    request
}

/// A connected channel to `url` (a server's client URL); panics if it cannot connect,
/// which a test started the server for.
pub async fn grpc_channel(url: &str) -> Channel {
    Channel::from_shared(url.to_string())
        .expect("a URL")
        .connect()
        .await
        .expect("gRPC connects")
}
