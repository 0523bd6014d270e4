//! etcd v2's error table: code, message and HTTP status, in one place.

use serde::Serialize;

use crate::byte_string::ByteString;

/// An etcd v2 error code, as sent in the `errorCode` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize, Serialize)]
#[serde(into = "u16", try_from = "u16")]
#[repr(u16)]
pub enum ErrorCode {
    KeyNotFound = 100,
    TestFailed = 101,
    NotFile = 102,
    NoMorePeer = 103,
    NotDir = 104,
    NodeExist = 105,
    KeyIsPreserved = 106,
    RootReadOnly = 107,
    DirNotEmpty = 108,
    ExistingPeerAddr = 109,
    Unauthorized = 110,

    ValueRequired = 200,
    PrevValueRequired = 201,
    TtlNaN = 202,
    IndexNaN = 203,
    ValueOrTtlRequired = 204,
    TimeoutNaN = 205,
    NameRequired = 206,
    IndexOrValueRequired = 207,
    IndexValueMutex = 208,
    InvalidField = 209,
    InvalidForm = 210,
    RefreshValue = 211,
    RefreshTtlRequired = 212,

    RaftInternal = 300,
    LeaderElect = 301,

    WatcherCleared = 400,
    EventIndexCleared = 401,
}

impl ErrorCode {
    /// Every code, for tests that walk the table.
    pub const ALL: [ErrorCode; 28] = [
        Self::KeyNotFound,
        Self::TestFailed,
        Self::NotFile,
        Self::NoMorePeer,
        Self::NotDir,
        Self::NodeExist,
        Self::KeyIsPreserved,
        Self::RootReadOnly,
        Self::DirNotEmpty,
        Self::ExistingPeerAddr,
        Self::Unauthorized,
        Self::ValueRequired,
        Self::PrevValueRequired,
        Self::TtlNaN,
        Self::IndexNaN,
        Self::ValueOrTtlRequired,
        Self::TimeoutNaN,
        Self::NameRequired,
        Self::IndexOrValueRequired,
        Self::IndexValueMutex,
        Self::InvalidField,
        Self::InvalidForm,
        Self::RefreshValue,
        Self::RefreshTtlRequired,
        Self::RaftInternal,
        Self::LeaderElect,
        Self::WatcherCleared,
        Self::EventIndexCleared,
    ];

    /// The numeric code.
    pub fn code(self) -> u16 {
        self as u16
    }

    /// etcd's fixed message for the code (the `message` field).
    pub fn message(self) -> &'static str {
        match self {
            Self::KeyNotFound => "Key not found",
            Self::TestFailed => "Compare failed",
            Self::NotFile => "Not a file",
            Self::NoMorePeer => "Reached the max number of peers in the cluster",
            Self::NotDir => "Not a directory",
            Self::NodeExist => "Key already exists",
            Self::KeyIsPreserved => "The prefix of given key is a keyword in etcd",
            Self::RootReadOnly => "Root is read only",
            Self::DirNotEmpty => "Directory not empty",
            Self::ExistingPeerAddr => "Peer address has existed",
            Self::Unauthorized => "The request requires user authentication",
            Self::ValueRequired => "Value is Required in POST form",
            Self::PrevValueRequired => "PrevValue is Required in POST form",
            Self::TtlNaN => "The given TTL in POST form is not a number",
            Self::IndexNaN => "The given index in POST form is not a number",
            Self::ValueOrTtlRequired => "Value or TTL is required in POST form",
            Self::TimeoutNaN => "The given timeout in POST form is not a number",
            Self::NameRequired => "Name is required in POST form",
            Self::IndexOrValueRequired => "Index or value is required",
            Self::IndexValueMutex => "Index and value cannot both be specified",
            Self::InvalidField => "Invalid field",
            Self::InvalidForm => "Invalid POST form",
            Self::RefreshValue => "Value provided on refresh",
            Self::RefreshTtlRequired => "A TTL must be provided on refresh",
            Self::RaftInternal => "Raft Internal Error",
            Self::LeaderElect => "During Leader Election",
            Self::WatcherCleared => "watcher is cleared due to etcd recovery",
            Self::EventIndexCleared => "The event in requested index is outdated and cleared",
        }
    }

    /// The HTTP status etcd answers with; codes not in etcd's table get 400.
    pub fn http_status(self) -> u16 {
        match self {
            Self::KeyNotFound => 404,
            Self::NotFile | Self::DirNotEmpty => 403,
            Self::Unauthorized => 401,
            Self::TestFailed | Self::NodeExist => 412,
            Self::RaftInternal | Self::LeaderElect => 500,
            _ => 400,
        }
    }
}

impl From<ErrorCode> for u16 {
    fn from(code: ErrorCode) -> u16 {
        code.code()
    }
}

impl TryFrom<u16> for ErrorCode {
    type Error = String;
    fn try_from(value: u16) -> Result<Self, String> {
        ErrorCode::ALL
            .into_iter()
            .find(|c| c.code() == value)
            .ok_or_else(|| format!("unknown etcd error code {value}"))
    }
}

/// An etcd v2 error as it travels on the wire: `{"errorCode","message","cause","index"}`.
/// Its serde form is that wire form, so clients parse error bodies straight into it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, serde::Deserialize)]
#[serde(into = "WireError", try_from = "WireError")]
#[error("{} ({cause})", code.message())]
pub struct EtcdError {
    /// What went wrong.
    pub code: ErrorCode,
    /// The key or field concerned; omitted from JSON when empty. Bytes: it may name a
    /// key or value that is not UTF-8.
    pub cause: ByteString,
    /// The store's etcd index when the error happened (0 for request errors).
    pub index: u64,
}

impl EtcdError {
    /// An error raised by the store at `index`.
    pub fn new(code: ErrorCode, cause: impl Into<ByteString>, index: u64) -> Self {
        EtcdError {
            code,
            cause: cause.into(),
            index,
        }
    }

    /// An error found while parsing a request, before the store is asked (index 0).
    pub fn request(code: ErrorCode, cause: impl Into<ByteString>) -> Self {
        Self::new(code, cause, 0)
    }

    /// The JSON body etcd sends, including its trailing newline.
    /// Written as Go escapes it (see [`crate::go_json`]).
    pub fn to_json_line(&self) -> String {
        let mut line = format!("{{\"errorCode\":{},\"message\":", self.code.code());
        crate::go_json::string(&mut line, self.code.message().as_bytes());
        if !self.cause.is_empty() {
            line.push_str(",\"cause\":");
            crate::go_json::string(&mut line, self.cause.as_bytes());
        }
        line.push_str(&format!(",\"index\":{}}}\n", self.index));
        line
    }
}

fn no_bytes(s: &ByteString) -> bool {
    s.is_empty()
}

/// The wire shape of [`EtcdError`]; `message` is implied by the code when reading.
#[derive(Serialize, serde::Deserialize)]
struct WireError {
    #[serde(rename = "errorCode")]
    error_code: u16,
    #[serde(default)]
    message: String,
    #[serde(default, skip_serializing_if = "no_bytes")]
    cause: ByteString,
    #[serde(default)]
    index: u64,
}

impl From<EtcdError> for WireError {
    fn from(e: EtcdError) -> WireError {
        WireError {
            error_code: e.code.code(),
            message: e.code.message().to_string(),
            cause: e.cause,
            index: e.index,
        }
    }
}

impl TryFrom<WireError> for EtcdError {
    type Error = String;
    fn try_from(w: WireError) -> Result<EtcdError, String> {
        Ok(EtcdError::new(
            ErrorCode::try_from(w.error_code)?,
            w.cause,
            w.index,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_statuses_match_etcd() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::try_from(code.code()), Ok(code));
            assert!(!code.message().is_empty());
        }
        assert_eq!(ErrorCode::KeyNotFound.http_status(), 404);
        assert_eq!(ErrorCode::NodeExist.http_status(), 412);
        assert_eq!(ErrorCode::DirNotEmpty.http_status(), 403);
        assert_eq!(ErrorCode::EventIndexCleared.http_status(), 400);
    }

    #[test]
    fn error_json_omits_empty_cause() {
        let e = EtcdError::new(ErrorCode::KeyNotFound, "/foo", 7);
        assert_eq!(
            e.to_json_line(),
            "{\"errorCode\":100,\"message\":\"Key not found\",\"cause\":\"/foo\",\"index\":7}\n"
        );
        let parsed: EtcdError = serde_json::from_str(&e.to_json_line()).unwrap();
        assert_eq!(parsed, e, "the wire form reads back");
        let e = EtcdError::request(ErrorCode::TtlNaN, "");
        assert_eq!(
            e.to_json_line(),
            "{\"errorCode\":202,\"message\":\"The given TTL in POST form is not a number\",\"index\":0}\n"
        );
    }
}
