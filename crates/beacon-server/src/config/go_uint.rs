//! Go's `flag.UintVar` syntax (`strconv.ParseUint(s, 0, 64)`), which etcd's unsigned
//! flags take: decimal, `0x`/`0o`/`0b` prefixes, a leading `0` for octal (`010` is 8),
//! and `_` between digits; no sign.

/// Parses an unsigned flag value as Go does; `Err` has Go's flag package's words.
pub(super) fn parse(text: &str) -> Result<u64, String> {
    let refused = || "parse error".to_string();
    let bytes = text.as_bytes();
    let (radix, digits) = match bytes {
        [] => return Err(refused()),
        [b'0', p, _, ..] if p.eq_ignore_ascii_case(&b'x') => (16, &text[2..]),
        [b'0', p, _, ..] if p.eq_ignore_ascii_case(&b'o') => (8, &text[2..]),
        [b'0', p, _, ..] if p.eq_ignore_ascii_case(&b'b') => (2, &text[2..]),
        [b'0', ..] => (8, &text[1..]),
        _ => (10, text),
    };
    if digits.contains('_') && !underscores_ok(text) {
        return Err(refused());
    }
    let digits: String = digits.chars().filter(|&c| c != '_').collect();
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(refused());
    }
    if digits.is_empty() {
        // "0" alone; a prefix without digits ("0x") never gets here with radix 8.
        return if radix == 8 { Ok(0) } else { Err(refused()) };
    }
    u64::from_str_radix(&digits, radix).map_err(|_| "value out of range".to_string())
}

/// Go's `underscoreOK`: each `_` sits between digits (a base prefix counts as one).
fn underscores_ok(text: &str) -> bool {
    let bytes = text.as_bytes();
    let hex = bytes.len() >= 2 && bytes[0] == b'0' && bytes[1].eq_ignore_ascii_case(&b'x');
    let prefixed = bytes.len() >= 2
        && bytes[0] == b'0'
        && matches!(bytes[1].to_ascii_lowercase(), b'b' | b'o' | b'x');
    let (mut after_digit, mut after_underscore) = (prefixed, false);
    for &c in &bytes[if prefixed { 2 } else { 0 }..] {
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            (after_digit, after_underscore) = (true, false);
        } else if c == b'_' {
            if !after_digit {
                return false;
            }
            (after_digit, after_underscore) = (false, true);
        } else {
            if after_underscore {
                return false;
            }
            (after_digit, after_underscore) = (false, false);
        }
    }
    !after_underscore
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn go_takes_prefixes_octal_and_underscores() {
        assert_eq!(parse("2048"), Ok(2048));
        assert_eq!(parse("0"), Ok(0));
        assert_eq!(parse("010"), Ok(8), "a leading 0 is octal");
        assert_eq!(parse("0x800"), Ok(2048));
        assert_eq!(parse("0X80_0"), Ok(2048));
        assert_eq!(parse("0o4000"), Ok(2048));
        assert_eq!(parse("0b1_0000_0000_000"), Ok(2048));
        assert_eq!(parse("1_572_864"), Ok(1_572_864));
        assert_eq!(parse("0x_800"), Ok(2048), "after a prefix");
        assert_eq!(parse("18446744073709551615"), Ok(u64::MAX));
        for refused in ["", "+5", "-1", "0x", "1__0", "_1", "1_", "08", "12a", " 1"] {
            assert!(parse(refused).is_err(), "{refused:?}");
        }
        assert_eq!(
            parse("18446744073709551616").unwrap_err(),
            "value out of range"
        );
    }
}
