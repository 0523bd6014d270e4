//! gRPC calls whose message is whatever bytes the generator made: a codec that writes
//! them as they are into tonic's length-prefixed frame and hands back the answer's
//! bytes undecoded, so that the server's own decoding is what the bytes meet.

use std::time::Duration;

use bytes::{Buf as _, BufMut as _};
use futures_util::StreamExt as _;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::{Code, Status};

#[derive(Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

/// A call's message, path, token and deadline.
pub struct Call<'a> {
    pub path: &'static str,
    pub body: Vec<u8>,
    pub token: Option<&'a str>,
    /// Sent as `grpc-timeout` and waited for, plus a margin.
    pub deadline: Duration,
}

fn request<T>(message: T, call: &Call<'_>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = call.token {
        request
            .metadata_mut()
            .insert("token", token.parse().expect("a token is ASCII"));
    }
    request.set_timeout(call.deadline);
    request
}

/// How long past its deadline a call may take to be answered.
const MARGIN: Duration = Duration::from_secs(3);

/// A unary call: its answer's bytes or its status; `None` if nothing came in time.
pub async fn unary(channel: &Channel, call: Call<'_>) -> Option<Result<Vec<u8>, Status>> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    let path = http::uri::PathAndQuery::from_static(call.path);
    let answer = async {
        grpc.ready()
            .await
            .map_err(|e| Status::unknown(e.to_string()))?;
        grpc.unary(request(call.body.clone(), &call), path, RawCodec)
            .await
            .map(tonic::Response::into_inner)
    };
    tokio::time::timeout(call.deadline + MARGIN, answer)
        .await
        .ok()
}

/// One message on a Watch stream kept open: the first answer's bytes, or its status
/// (a request that creates nothing may get no answer: `Ok(None)` after the deadline).
pub async fn watch_once(
    channel: &Channel,
    call: Call<'_>,
) -> Option<Result<Option<Vec<u8>>, Status>> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    let path = http::uri::PathAndQuery::from_static(call.path);
    let sent =
        futures_util::stream::iter([call.body.clone()]).chain(futures_util::stream::pending());
    let answer = async {
        grpc.ready()
            .await
            .map_err(|e| Status::unknown(e.to_string()))?;
        let mut answers = grpc
            .streaming(request(sent, &call), path, RawCodec)
            .await?
            .into_inner();
        match tokio::time::timeout(call.deadline, answers.message()).await {
            Ok(first) => first,
            Err(_) => Ok(None),
        }
    };
    match tokio::time::timeout(call.deadline + MARGIN, answer).await {
        Ok(Err(s)) if s.code() == Code::Cancelled || s.code() == Code::DeadlineExceeded => {
            Some(Ok(None))
        }
        Ok(answer) => Some(answer),
        Err(_) => None,
    }
}
