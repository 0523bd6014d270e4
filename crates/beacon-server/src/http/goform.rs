//! Go's `net/http` form parsing (`Request.ParseForm`) and `strconv` spellings, because
//! etcd's v2 API is defined by them: which bodies are read, body values before query
//! values, the first value wins, and the exact error texts that become error 210.

use std::collections::HashMap;

use beacon_api::ByteString;

use super::gopath::unescape;

/// What [`Form::value`] reads for a value that is not UTF-8. Only `value` and
/// `prevValue` keep their bytes ([`Form::bytes`]); every other field is a flag, a number
/// or a name, and a value with such bytes fails to parse as any of them, as in Go.
const NOT_UTF8: &str = "\u{fffd}";

/// Parsed form values: for each key, its values, body values before query values.
/// Values are bytes (Go strings). Names are text: they are only ever compared with
/// ASCII field names, which no lossy conversion of other bytes can produce.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Form {
    values: HashMap<String, Vec<ByteString>>,
}

impl Form {
    /// The first value of `key` (Go's `FormValue`), or "" when absent.
    pub fn value(&self, key: &str) -> &str {
        self.first(key).unwrap_or("")
    }

    /// The first value of `key`, when the key is present at all.
    pub fn first(&self, key: &str) -> Option<&str> {
        self.first_bytes(key)
            .map(|v| v.as_str().unwrap_or(NOT_UTF8))
    }

    /// The first value of `key` as the bytes sent, or empty when absent.
    pub fn bytes(&self, key: &str) -> ByteString {
        self.first_bytes(key).cloned().unwrap_or_default()
    }

    fn first_bytes(&self, key: &str) -> Option<&ByteString> {
        self.values.get(key).and_then(|v| v.first())
    }

    /// Whether the key appeared, even with an empty value.
    pub fn has(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }

    fn append(&mut self, other: Form) {
        for (k, mut v) in other.values {
            self.values.entry(k).or_default().append(&mut v);
        }
    }
}

/// What Go says when the form body is over its limit.
pub const POST_TOO_LARGE: &str = "http: POST too large";

/// Go's `url.ParseQuery`: pairs split on `&`; a `;` in a pair is an error (Go ≥ 1.17);
/// undecodable pairs are skipped. Returns the values and the first error, as Go does.
pub fn parse_query(query: &(impl AsRef<[u8]> + ?Sized)) -> (Form, Option<String>) {
    let mut form = Form::default();
    let mut err: Option<String> = None;
    for pair in query.as_ref().split(|b| *b == b'&') {
        if pair.contains(&b';') {
            err.get_or_insert_with(|| "invalid semicolon separator in query".to_string());
            continue;
        }
        if pair.is_empty() {
            continue;
        }
        let (k, v) = match pair.iter().position(|b| *b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &b""[..]),
        };
        let k = match unescape(k, true) {
            Ok(k) => k,
            Err(e) => {
                err.get_or_insert_with(|| e.to_string());
                continue;
            }
        };
        let v = match unescape(v, true) {
            Ok(v) => v,
            Err(e) => {
                err.get_or_insert_with(|| e.to_string());
                continue;
            }
        };
        // Values stay bytes: `k%FF` and `k%FE` are different values in Go.
        let k = String::from_utf8_lossy(&k).into_owned();
        form.values.entry(k).or_default().push(v.into());
    }
    (form, err)
}

/// Whether Go's `ParseForm` reads the body for this method.
pub fn method_has_form_body(method: &http::Method) -> bool {
    method == http::Method::POST || method == http::Method::PUT || method == http::Method::PATCH
}

/// The media type of a `Content-Type` value, checked as Go's `mime.ParseMediaType`
/// checks it (parameters are not validated). A missing header is
/// `application/octet-stream`, as in Go.
pub fn media_type(content_type: Option<&str>) -> Result<String, String> {
    let ct = content_type.unwrap_or("application/octet-stream");
    let base = ct.split(';').next().unwrap_or("");
    let mt = base.trim().to_ascii_lowercase();
    // Go's `isTokenChar`: printable ASCII but the separators. A match, not a search
    // of the separators' string: it runs for every byte of every form request's type.
    let is_token = |b: &u8| {
        b.is_ascii_graphic()
            && !matches!(
                b,
                b'(' | b')'
                    | b'<'
                    | b'>'
                    | b'@'
                    | b','
                    | b';'
                    | b':'
                    | b'\\'
                    | b'"'
                    | b'/'
                    | b'['
                    | b']'
                    | b'?'
                    | b'='
            )
    };
    let first_len = mt.bytes().take_while(is_token).count();
    if first_len == 0 {
        return Err("mime: no media type".into());
    }
    let rest = &mt[first_len..];
    if rest.is_empty() {
        return Ok(mt);
    }
    let Some(rest) = rest.strip_prefix('/') else {
        return Err("mime: expected slash after first token".into());
    };
    let sub_len = rest.bytes().take_while(is_token).count();
    if sub_len == 0 {
        return Err("mime: expected token after slash".into());
    }
    if sub_len != rest.len() {
        return Err("mime: unexpected content after media subtype".into());
    }
    Ok(mt)
}

/// Go's `ParseForm` for a request whose body (if any) was already read. `body` is
/// `Err(())` when it was over [`crate::limits::REQUEST_BODY_BYTES_MAX`].
/// Returns the form, or the first error's text (etcd's cause for error 210).
pub fn parse_form(
    method: &http::Method,
    content_type: Option<&str>,
    body: Result<&[u8], ()>,
    raw_query: &str,
) -> Result<Form, String> {
    let mut form = Form::default();
    let mut err: Option<String> = None;
    if method_has_form_body(method) {
        let mt = media_type(content_type);
        let mt = match mt {
            Ok(mt) => mt,
            Err(e) => {
                err = Some(e);
                String::new()
            }
        };
        if mt == "application/x-www-form-urlencoded" {
            let body = body.map_err(|()| POST_TOO_LARGE.to_string())?;
            let (post, e) = parse_query(body);
            if err.is_none() {
                err = e;
            }
            form = post;
        }
    }
    let (query, e) = parse_query(raw_query);
    if err.is_none() {
        err = e;
    }
    form.append(query);
    match err {
        Some(e) => Err(e),
        None => Ok(form),
    }
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.ParseUint(s, 10, 64)`: ASCII digits only, no sign, no overflow.
pub fn parse_uint64(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bools_are_gos_spellings() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        for bad in ["", "yes", "tRUE", " true", "2"] {
            assert_eq!(parse_bool(bad), None, "{bad}");
        }
    }

    #[test]
    fn uints_are_gos() {
        assert_eq!(parse_uint64("0"), Some(0));
        assert_eq!(parse_uint64("007"), Some(7));
        assert_eq!(parse_uint64("18446744073709551615"), Some(u64::MAX));
        for bad in [
            "",
            "-1",
            "+1",
            "1_0",
            "18446744073709551616",
            " 1",
            "1.0",
            "abc",
        ] {
            assert_eq!(parse_uint64(bad), None, "{bad}");
        }
    }

    #[test]
    fn body_values_come_before_query_values() {
        let f = parse_form(
            &http::Method::PUT,
            Some("application/x-www-form-urlencoded"),
            Ok(b"value=body"),
            "value=query&ttl=5",
        )
        .unwrap();
        assert_eq!(f.value("value"), "body");
        assert_eq!(f.value("ttl"), "5");
        assert!(!f.has("dir"));
    }

    #[test]
    fn delete_and_get_bodies_are_not_forms() {
        let f = parse_form(
            &http::Method::DELETE,
            Some("application/x-www-form-urlencoded"),
            Ok(b"recursive=true"),
            "",
        )
        .unwrap();
        assert!(!f.has("recursive"));
        // A JSON body on PUT is simply not a form.
        let f = parse_form(
            &http::Method::PUT,
            Some("application/json"),
            Ok(b"{\"value\":1}"),
            "",
        )
        .unwrap();
        assert!(!f.has("value"));
    }

    #[test]
    fn errors_have_gos_text() {
        let e = |ct: Option<&str>, body: &[u8], q: &str| {
            parse_form(&http::Method::PUT, ct, Ok(body), q).unwrap_err()
        };
        let form = Some("application/x-www-form-urlencoded");
        assert_eq!(e(form, b"value=%zz", ""), "invalid URL escape \"%zz\"");
        assert_eq!(
            e(form, b"", "a=1;b=2"),
            "invalid semicolon separator in query"
        );
        assert_eq!(e(Some(";x"), b"", ""), "mime: no media type");
        assert_eq!(
            parse_form(&http::Method::PUT, form, Err(()), "").unwrap_err(),
            "http: POST too large"
        );
        // Query errors are reported for every method.
        assert_eq!(
            parse_form(&http::Method::GET, None, Ok(b""), "value=%zz").unwrap_err(),
            "invalid URL escape \"%zz\""
        );
    }

    #[test]
    fn values_keep_bytes_that_are_not_utf8() {
        let f = parse_form(
            &http::Method::PUT,
            Some("application/x-www-form-urlencoded"),
            Ok(b"value=%FF&prevValue=%FE&ttl=%FF"),
            "",
        )
        .unwrap();
        assert_eq!(f.bytes("value"), b"\xff"[..]);
        assert_eq!(f.bytes("prevValue"), b"\xfe"[..]);
        // Flags and numbers read such a value as text that parses as nothing.
        assert_eq!(f.value("ttl"), "\u{fffd}");
        assert_eq!(parse_uint64(f.value("ttl")), None);
        // A raw (unescaped) byte in the body is kept too.
        let (f, err) = parse_query(b"value=a\xffb");
        assert!(err.is_none());
        assert_eq!(f.bytes("value"), b"a\xffb"[..]);
    }

    #[test]
    fn plus_and_empty_pairs() {
        let (f, err) = parse_query("a=x+y&&b&c=");
        assert!(err.is_none());
        assert_eq!(f.value("a"), "x y");
        assert!(f.has("b") && f.has("c"));
        assert_eq!(f.value("b"), "");
    }
}
