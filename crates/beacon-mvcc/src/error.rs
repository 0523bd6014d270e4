//! The keyspace's refusals, with etcd's messages (clients match them by text).

/// Why a request was refused; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MvccError {
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRevision,
    #[error("etcdserver: key not found")]
    KeyNotFound,
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    #[error("etcdserver: lease already exists")]
    LeaseExists,
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    #[error("etcdserver: value is provided")]
    ValueProvided,
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    #[error("etcdserver: corrupt cluster")]
    Corrupt,
    /// Auth refused it (etcd's words are `AuthError`'s).
    #[error(transparent)]
    Auth(#[from] beacon_auth::AuthError),
    /// The disk under the keyspace failed; not one of etcd's answers (etcd panics).
    #[error("etcdserver: the v3 store's disk failed: {0}")]
    Storage(String),
}

/// The gRPC status code etcd answers each refusal with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    InvalidArgument,
    OutOfRange,
    NotFound,
    FailedPrecondition,
    ResourceExhausted,
    DataLoss,
    Internal,
    PermissionDenied,
    Unauthenticated,
    Unknown,
}

impl MvccError {
    pub fn code(&self) -> Code {
        match self {
            MvccError::Compacted | MvccError::FutureRevision | MvccError::LeaseTtlTooLarge => {
                Code::OutOfRange
            }
            MvccError::LeaseExists => Code::FailedPrecondition,
            MvccError::LeaseNotFound => Code::NotFound,
            MvccError::KeyNotFound
            | MvccError::EmptyKey
            | MvccError::ValueProvided
            | MvccError::LeaseProvided
            | MvccError::TooManyOps
            | MvccError::DuplicateKey => Code::InvalidArgument,
            MvccError::NoSpace => Code::ResourceExhausted,
            MvccError::Corrupt => Code::DataLoss,
            MvccError::Storage(_) => Code::Internal,
            MvccError::Auth(e) => match e.grpc_code() {
                3 => Code::InvalidArgument,
                7 => Code::PermissionDenied,
                16 => Code::Unauthenticated,
                9 => Code::FailedPrecondition,
                _ => Code::Unknown,
            },
        }
    }
}
