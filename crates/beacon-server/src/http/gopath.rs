//! Go's URL path rules as etcd's server applies them: percent-decoding, `ServeMux`
//! cleaning (which decides the 301 redirects) and re-escaping for `Location`. Paths are
//! bytes after decoding (Go strings): `%FF` and `%FE` must stay two different keys.

use beacon_api::ByteString;

/// A malformed percent-escape, rendered as Go's `url.EscapeError`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscapeError(pub Vec<u8>);

impl std::fmt::Display for EscapeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid URL escape {}", go_quote(&self.0))
    }
}

/// Percent-decodes `s`. `plus_is_space` is Go's query mode (`+` is a space); path
/// mode keeps `+`. Every `%` must be followed by two hex digits, as Go demands.
pub fn unescape(
    s: &(impl AsRef<[u8]> + ?Sized),
    plus_is_space: bool,
) -> Result<Vec<u8>, EscapeError> {
    let b = s.as_ref();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hi = b.get(i + 1).and_then(|c| hex_val(*c));
                let lo = b.get(i + 2).and_then(|c| hex_val(*c));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => {
                        out.push(hi << 4 | lo);
                        i += 3;
                    }
                    // Go reports at most the 3 bytes starting at the `%`.
                    _ => return Err(EscapeError(b[i..b.len().min(i + 3)].to_vec())),
                }
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Go's `path.Clean` for a rooted path: no empty or `.` segments, `..` resolved.
pub fn clean_rooted(p: &(impl AsRef<[u8]> + ?Sized)) -> ByteString {
    let p = p.as_ref();
    let mut parts: Vec<&[u8]> = Vec::new();
    for seg in p.split(|b| *b == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    let mut out = Vec::with_capacity(p.len() + 1);
    for s in &parts {
        out.push(b'/');
        out.extend_from_slice(s);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out.into()
}

/// Go's `ServeMux` `cleanPath`: rooted, cleaned, with a trailing slash kept.
/// A request whose path differs from this is answered with a 301 to it.
pub fn mux_clean(p: &(impl AsRef<[u8]> + ?Sized)) -> ByteString {
    let p = p.as_ref();
    let np = clean_rooted(p);
    if p.ends_with(b"/") && np != "/" {
        let mut with_slash = np.into_bytes();
        with_slash.push(b'/');
        return with_slash.into();
    }
    np
}

/// Escapes a path as Go's `url.URL.String` does for the `Location` of a redirect.
pub fn escape_path(p: &(impl AsRef<[u8]> + ?Sized)) -> String {
    let p = p.as_ref();
    let mut out = String::with_capacity(p.len());
    for &c in p {
        let keep = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'_'
                    | b'.'
                    | b'~'
                    | b'$'
                    | b'&'
                    | b'+'
                    | b','
                    | b'/'
                    | b':'
                    | b';'
                    | b'='
                    | b'@'
            );
        if keep {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

/// Go's `htmlEscape` (used in the body of a redirect).
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Go's `strconv.Quote`, close enough for error causes: printable text kept, the rest
/// escaped, invalid UTF-8 bytes as `\xNN`.
pub fn go_quote(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    for chunk in bytes.utf8_chunks() {
        for ch in chunk.valid().chars() {
            match ch {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{7}' => out.push_str("\\a"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                '\u{b}' => out.push_str("\\v"),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                    out.push_str(&format!("\\x{:02x}", c as u32))
                }
                c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_like_go() {
        assert_eq!(unescape("fo%6f", false).unwrap(), b"foo");
        assert_eq!(unescape("a+b", false).unwrap(), b"a+b");
        assert_eq!(unescape("a+b", true).unwrap(), b"a b");
        assert_eq!(
            unescape("%zz", true).unwrap_err().to_string(),
            "invalid URL escape \"%zz\""
        );
        assert_eq!(
            unescape("x%4", true).unwrap_err().to_string(),
            "invalid URL escape \"%4\""
        );
        assert_eq!(
            unescape("%", true).unwrap_err().to_string(),
            "invalid URL escape \"%\""
        );
        // Go quotes the 3 bytes from the `%`, even when that cuts a character.
        assert_eq!(
            unescape("%\u{e9}", true).unwrap_err().to_string(),
            "invalid URL escape \"%\u{e9}\""
        );
        assert_eq!(
            unescape("%\u{20ac}", true).unwrap_err().to_string(),
            "invalid URL escape \"%\\xe2\\x82\""
        );
    }

    #[test]
    fn mux_clean_like_go() {
        assert_eq!(mux_clean("/v2/keys//foo"), "/v2/keys/foo");
        assert_eq!(mux_clean("/v2/keys/a/../foo"), "/v2/keys/foo");
        assert_eq!(mux_clean("/v2/keys/.."), "/v2");
        assert_eq!(mux_clean("/v2/keys/foo//"), "/v2/keys/foo/");
        assert_eq!(mux_clean("/v2/keys/"), "/v2/keys/");
        assert_eq!(mux_clean("/../.."), "/");
        assert_eq!(mux_clean(""), "/");
        assert_eq!(clean_rooted("/"), "/");
        assert_eq!(clean_rooted("/a/b/"), "/a/b");
    }

    #[test]
    fn escape_like_go() {
        assert_eq!(escape_path("/v2/keys/a b!"), "/v2/keys/a%20b%21");
        assert_eq!(escape_path(b"/v2/keys/k\xff"), "/v2/keys/k%FF");
        assert_eq!(mux_clean(b"/v2/keys/k\xff//"), b"/v2/keys/k\xff/"[..]);
        assert_eq!(html_escape("<a&'\">"), "&lt;a&amp;&#39;&#34;&gt;");
    }
}
