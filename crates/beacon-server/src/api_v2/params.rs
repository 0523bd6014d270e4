//! etcd's `parseKeyRequest`: form fields of a `/v2/keys` request checked in etcd's
//! order, with etcd's error codes and causes.

use beacon_api::{ByteString, ErrorCode, EtcdError};
use beacon_store::{KeysRequest, Method as StoreMethod};

use crate::http::goform::{parse_bool, parse_uint64, Form};

/// A parsed `/v2/keys` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyParams {
    /// The key, rooted and cleaned (`/` for the root); bytes, as in etcd.
    pub key: ByteString,
    /// `value` (first value; body before query); bytes, as in etcd.
    pub value: ByteString,
    /// `dir`.
    pub dir: bool,
    /// `prevValue`; "" when absent; bytes, as in etcd.
    pub prev_value: ByteString,
    /// `prevIndex`; 0 when absent.
    pub prev_index: u64,
    /// `prevExist`, when given.
    pub prev_exist: Option<bool>,
    /// `wait`.
    pub wait: bool,
    /// `waitIndex`; 0 when absent.
    pub wait_index: u64,
    /// `recursive`.
    pub recursive: bool,
    /// `sorted`.
    pub sorted: bool,
    /// `quorum`.
    pub quorum: bool,
    /// `stream`.
    pub stream: bool,
    /// `ttl` in seconds, when given and non-empty.
    pub ttl_s: Option<u64>,
    /// `refresh`, when given.
    pub refresh: Option<bool>,
    /// `noValueOnSuccess`.
    pub no_value_on_success: bool,
}

fn invalid(code: ErrorCode, cause: &str) -> EtcdError {
    EtcdError::request(code, cause)
}

/// `getUint64`: absent is 0; present must parse (first value only).
fn get_uint64(form: &Form, key: &str) -> Result<u64, ()> {
    match form.first(key) {
        None => Ok(0),
        Some(v) => parse_uint64(v).ok_or(()),
    }
}

/// `getBool`: absent is false; present must be one of Go's spellings.
fn get_bool(form: &Form, key: &str) -> Result<bool, ()> {
    match form.first(key) {
        None => Ok(false),
        Some(v) => parse_bool(v).ok_or(()),
    }
}

/// Validates a keys request for `method` on `key` (already rooted and cleaned).
pub fn parse_key_params(
    method: &http::Method,
    key: ByteString,
    form: &Form,
) -> Result<KeyParams, EtcdError> {
    let quoted = |name: &str| format!("invalid value for \"{name}\"");
    let prev_index = get_uint64(form, "prevIndex")
        .map_err(|()| invalid(ErrorCode::IndexNaN, &quoted("prevIndex")))?;
    let wait_index = get_uint64(form, "waitIndex")
        .map_err(|()| invalid(ErrorCode::IndexNaN, &quoted("waitIndex")))?;
    let flag = |name: &str| {
        get_bool(form, name).map_err(|()| invalid(ErrorCode::InvalidField, &quoted(name)))
    };
    let recursive = flag("recursive")?;
    let sorted = flag("sorted")?;
    let wait = flag("wait")?;
    let dir = flag("dir")?;
    let quorum = flag("quorum")?;
    let stream = flag("stream")?;
    if wait && method != http::Method::GET {
        return Err(invalid(
            ErrorCode::InvalidField,
            "\"wait\" can only be used with GET requests",
        ));
    }
    let prev_value = form.bytes("prevValue");
    if form.has("prevValue") && prev_value.is_empty() {
        return Err(invalid(
            ErrorCode::PrevValueRequired,
            "\"prevValue\" cannot be empty",
        ));
    }
    let no_value_on_success = flag("noValueOnSuccess")?;
    // An empty ttl is the same as none, as in etcd.
    let ttl_s = if form.value("ttl").is_empty() {
        None
    } else {
        Some(get_uint64(form, "ttl").map_err(|()| invalid(ErrorCode::TtlNaN, &quoted("ttl")))?)
    };
    // etcd's cause for prevExist and refresh is not quoted.
    let prev_exist = match form.first("prevExist") {
        None => None,
        Some(v) => Some(
            parse_bool(v)
                .ok_or_else(|| invalid(ErrorCode::InvalidField, "invalid value for prevExist"))?,
        ),
    };
    let refresh = match form.first("refresh") {
        None => None,
        Some(v) => Some(
            parse_bool(v)
                .ok_or_else(|| invalid(ErrorCode::InvalidField, "invalid value for refresh"))?,
        ),
    };
    if refresh == Some(true) {
        if form.has("value") && !form.value("value").is_empty() {
            return Err(invalid(
                ErrorCode::RefreshValue,
                "A value was provided on a refresh",
            ));
        }
        if ttl_s.is_none() {
            return Err(invalid(ErrorCode::RefreshTtlRequired, "No TTL value set"));
        }
    }
    Ok(KeyParams {
        key,
        value: form.bytes("value"),
        dir,
        prev_value,
        prev_index,
        prev_exist,
        wait,
        wait_index,
        recursive,
        sorted,
        quorum,
        stream,
        ttl_s,
        refresh,
        no_value_on_success,
    })
}

impl KeyParams {
    /// The store request for `method`, stamped with the receiving server's clock:
    /// `time_ns = now`, `expiration_ns = now + ttl` (saturating).
    pub fn to_store_request(&self, method: StoreMethod, now_ns: i64) -> KeysRequest {
        let mut r = KeysRequest::new(method, self.key.clone(), now_ns);
        r.value = self.value.clone();
        r.dir = self.dir;
        r.prev_value = self.prev_value.clone();
        r.prev_index = self.prev_index;
        r.prev_exist = self.prev_exist;
        r.expiration_ns = self.ttl_s.map(|ttl| {
            let ttl_ns = i64::try_from(ttl)
                .unwrap_or(i64::MAX)
                .saturating_mul(1_000_000_000);
            now_ns.saturating_add(ttl_ns)
        });
        r.refresh = self.refresh.unwrap_or(false);
        r.recursive = self.recursive;
        r.sorted = self.sorted;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::goform::parse_query;

    fn parse(method: http::Method, q: &str) -> Result<KeyParams, EtcdError> {
        let (form, err) = parse_query(q);
        assert!(err.is_none());
        parse_key_params(&method, "/k".into(), &form)
    }

    fn err(method: http::Method, q: &str) -> (u16, String) {
        let e = parse(method, q).unwrap_err();
        assert_eq!(e.index, 0);
        (e.code.code(), e.cause.to_string())
    }

    #[test]
    fn errors_match_etcd() {
        use http::Method as M;
        assert_eq!(
            err(M::PUT, "ttl=abc"),
            (202, "invalid value for \"ttl\"".into())
        );
        assert_eq!(
            err(M::PUT, "ttl=-1"),
            (202, "invalid value for \"ttl\"".into())
        );
        assert_eq!(
            err(M::PUT, "prevIndex="),
            (203, "invalid value for \"prevIndex\"".into())
        );
        assert_eq!(
            err(M::GET, "waitIndex=x"),
            (203, "invalid value for \"waitIndex\"".into())
        );
        assert_eq!(
            err(M::GET, "recursive=yes"),
            (209, "invalid value for \"recursive\"".into())
        );
        assert_eq!(
            err(M::PUT, "wait=true"),
            (209, "\"wait\" can only be used with GET requests".into())
        );
        assert_eq!(
            err(M::PUT, "prevValue="),
            (201, "\"prevValue\" cannot be empty".into())
        );
        assert_eq!(
            err(M::PUT, "prevExist=maybe"),
            (209, "invalid value for prevExist".into())
        );
        assert_eq!(
            err(M::PUT, "refresh=maybe"),
            (209, "invalid value for refresh".into())
        );
        assert_eq!(
            err(M::PUT, "refresh=true&value=1"),
            (211, "A value was provided on a refresh".into())
        );
        assert_eq!(
            err(M::PUT, "refresh=true"),
            (212, "No TTL value set".into())
        );
        assert_eq!(
            err(M::PUT, "noValueOnSuccess=x"),
            (209, "invalid value for \"noValueOnSuccess\"".into())
        );
        // Order: prevIndex is checked before the booleans.
        assert_eq!(err(M::PUT, "recursive=x&prevIndex=x").0, 203);
    }

    #[test]
    fn accepted_forms() {
        // The first value wins: the empty ttl means no TTL, so this refresh lacks one.
        assert_eq!(err(http::Method::PUT, "ttl=&refresh=T&ttl=5").0, 212);
        let p = parse(http::Method::PUT, "refresh=true&ttl=5&value=").unwrap();
        assert_eq!(p.refresh, Some(true));
        assert_eq!(p.ttl_s, Some(5));
        let p = parse(
            http::Method::GET,
            "wait=true&waitIndex=7&stream=1&recursive=t",
        )
        .unwrap();
        assert!(p.wait && p.stream && p.recursive);
        assert_eq!(p.wait_index, 7);
        let p = parse(http::Method::PUT, "dir=true&value=x").unwrap();
        assert!(p.dir);
        let req = p.to_store_request(StoreMethod::Put, 1_000);
        assert_eq!(req.expiration_ns, None);
        let p = parse(http::Method::PUT, "ttl=2").unwrap();
        assert_eq!(
            p.to_store_request(StoreMethod::Put, 1_000).expiration_ns,
            Some(2_000_001_000)
        );
        let p = parse(http::Method::PUT, "ttl=18446744073709551615").unwrap();
        assert_eq!(
            p.to_store_request(StoreMethod::Put, 1).expiration_ns,
            Some(i64::MAX)
        );
    }
}
