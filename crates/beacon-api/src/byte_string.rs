//! `ByteString`: a key or value as etcd holds it, a Go string, i.e. bytes that are
//! usually, but not always, UTF-8. `PUT /v2/keys/k%FF` and `k%FE` are two keys in etcd;
//! any lossy conversion to a Rust `String` would merge them, so keys and values stay
//! bytes from the URL to the tree, the log, the snapshot and the history, and become
//! text only where etcd's JSON is written ([`crate::go_json`]).
//!
//! Serde (the Raft log, snapshots, peer messages): valid UTF-8 is a JSON string, as
//! every key and value written before this type existed; anything else is
//! `{"bytes":[...]}`. Both read back, and so does a plain array of bytes.

use std::borrow::{Borrow, Cow};
use std::fmt;
use std::ops::Deref;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// Bytes compared, ordered and hashed as bytes: Go's string order.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteString(Vec<u8>);

impl ByteString {
    /// An empty string.
    pub const fn new() -> ByteString {
        ByteString(Vec::new())
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The text, when the bytes are UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// The text, with each invalid sequence replaced by U+FFFD: for logs and for
    /// callers that read etcd's JSON (always UTF-8), never for anything stored.
    pub fn to_str_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }

    /// The bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl Deref for ByteString {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Borrow<[u8]> for ByteString {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for ByteString {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for ByteString {
    fn from(bytes: Vec<u8>) -> Self {
        ByteString(bytes)
    }
}

impl From<&[u8]> for ByteString {
    fn from(bytes: &[u8]) -> Self {
        ByteString(bytes.to_vec())
    }
}

impl From<String> for ByteString {
    fn from(s: String) -> Self {
        ByteString(s.into_bytes())
    }
}

impl From<&String> for ByteString {
    fn from(s: &String) -> Self {
        ByteString(s.as_bytes().to_vec())
    }
}

impl From<&str> for ByteString {
    fn from(s: &str) -> Self {
        ByteString(s.as_bytes().to_vec())
    }
}

impl From<&ByteString> for ByteString {
    fn from(s: &ByteString) -> Self {
        s.clone()
    }
}

impl PartialEq<str> for ByteString {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<&str> for ByteString {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<[u8]> for ByteString {
    fn eq(&self, other: &[u8]) -> bool {
        self.0 == other
    }
}

/// Lossy: for messages and logs.
impl fmt::Display for ByteString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_str_lossy())
    }
}

/// Quoted; invalid bytes as `\xNN`, so that distinct strings print distinctly.
impl fmt::Debug for ByteString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                write!(f, "{}", c.escape_debug())?;
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        f.write_str("\"")
    }
}

impl Serialize for ByteString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.as_str() {
            Some(text) => s.serialize_str(text),
            None => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry("bytes", &self.0)?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for ByteString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ByteStringVisitor)
    }
}

struct ByteStringVisitor;

impl<'de> Visitor<'de> for ByteStringVisitor {
    type Value = ByteString;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, an array of bytes or {\"bytes\":[...]}")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteString, E> {
        Ok(v.into())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<ByteString, E> {
        Ok(v.into())
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<ByteString, E> {
        Ok(v.into())
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<ByteString, E> {
        Ok(v.into())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ByteString, A::Error> {
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
        while let Some(b) = seq.next_element::<u8>()? {
            bytes.push(b);
        }
        Ok(ByteString(bytes))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ByteString, A::Error> {
        let mut bytes = None;
        while let Some(field) = map.next_key::<String>()? {
            if field != "bytes" {
                return Err(de::Error::unknown_field(&field, &["bytes"]));
            }
            bytes = Some(map.next_value::<Vec<u8>>()?);
        }
        bytes
            .map(ByteString)
            .ok_or_else(|| de::Error::missing_field("bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_is_a_json_string_and_other_bytes_are_not_merged() {
        let text = ByteString::from("/k");
        assert_eq!(serde_json::to_string(&text).unwrap(), "\"/k\"");
        let ff = ByteString::from(b"/k\xff".as_slice());
        let fe = ByteString::from(b"/k\xfe".as_slice());
        assert_ne!(ff, fe);
        let json = serde_json::to_string(&ff).unwrap();
        assert_eq!(json, r#"{"bytes":[47,107,255]}"#);
        assert_eq!(serde_json::from_str::<ByteString>(&json).unwrap(), ff);
        assert_eq!(
            serde_json::from_str::<ByteString>("[47,107,254]").unwrap(),
            fe
        );
        assert_eq!(serde_json::from_str::<ByteString>("\"/k\"").unwrap(), text);
        assert_eq!(format!("{ff:?}"), r#""/k\xff""#);
        // Go's order is byte order.
        assert!(fe < ff && text < fe);
    }
}
