//! JSON as Go writes it, for answers that must be byte-equal to etcd's.

use serde::Serialize;

/// `message` as JSON the way Go's `encoding/json` writes it (etcd's v2 handlers, its
/// gateway): it escapes `<`, `>`, `&`, U+2028 and U+2029 in strings, and writes
/// backspace and form feed as `\u0008` and `\u000c`, where serde_json writes them as
/// they are or as `\b`, `\f`. Outside strings serde_json's output has none of these,
/// so one pass over it does.
pub fn go_json<M: Serialize + ?Sized>(message: &M) -> Result<Vec<u8>, serde_json::Error> {
    let plain = serde_json::to_vec(message)?;
    let mut out = Vec::with_capacity(plain.len());
    let mut at = 0;
    while let Some(&b) = plain.get(at) {
        let (escaped, taken): (&[u8], usize) = match (b, plain.get(at + 1..at + 3)) {
            (b'\\', Some([b'b', ..])) => (b"\\u0008", 2),
            (b'\\', Some([b'f', ..])) => (b"\\u000c", 2),
            // Any other escape is Go's too; its second byte is never one of ours.
            (b'\\', _) => (&plain[at..(at + 2).min(plain.len())], 2),
            (b'<', _) => (b"\\u003c", 1),
            (b'>', _) => (b"\\u003e", 1),
            (b'&', _) => (b"\\u0026", 1),
            (0xe2, Some([0x80, 0xa8])) => (b"\\u2028", 3),
            (0xe2, Some([0x80, 0xa9])) => (b"\\u2029", 3),
            _ => (&plain[at..at + 1], 1),
        };
        out.extend_from_slice(escaped);
        at += taken;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_as_gos_encoder_escapes_them() {
        let written = go_json("a<b>&c \u{8}\u{c}\n\\b \u{2028}\u{2029} é").unwrap();
        assert_eq!(
            String::from_utf8(written).unwrap(),
            r#""a\u003cb\u003e\u0026c \u0008\u000c\n\\b \u2028\u2029 é""#
        );
    }
}
