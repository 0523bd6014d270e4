//! One answer as text: the library's response as `Debug` prints it (every field of the
//! protobuf message inside), or the refusal's gRPC code and message, with what differs
//! between two servers blanked and large byte strings summarized.

use std::fmt::Debug;

/// Header fields that name the server, not the answer: blanked.
const SERVER_FIELDS: [&str; 3] = ["cluster_id: ", "member_id: ", "raft_term: "];

/// A byte string longer than this is printed as its length and a hash.
const BYTES_SHOWN_MAX: usize = 64;

/// A call's outcome as text: `ok ...` with the response, `refused CODE: message` for a
/// gRPC status, `error ...` for the library's own errors (its message names no server).
pub fn answer<T: Debug>(outcome: Result<T, etcd_client::Error>) -> String {
    match outcome {
        Ok(response) => blank(format!("ok {response:?}")),
        Err(etcd_client::Error::GRpcStatus(status)) => {
            format!("refused {:?}: {}", status.code(), status.message())
        }
        Err(other) => format!("error {other}"),
    }
}

/// `text` with the number after the first of each of [`SERVER_FIELDS`] replaced by `_`,
/// and every list of more than [`BYTES_SHOWN_MAX`] numbers (a key or value) by its
/// summary. The first header is the response's own, which the server fills in; the
/// headers of a transaction's responses inside it are the keyspace's, ids all zero in
/// etcd, and compare as they are.
pub fn blank(text: String) -> String {
    let mut out = String::with_capacity(text.len().min(1 << 16));
    let mut blanked = [false; SERVER_FIELDS.len()];
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let field = SERVER_FIELDS.iter().position(|f| rest.starts_with(*f));
        if let Some(i) = field.filter(|&i| !blanked[i]) {
            blanked[i] = true;
            out.push_str(SERVER_FIELDS[i]);
            out.push('_');
            rest = rest[SERVER_FIELDS[i].len()..].trim_start_matches(|c: char| c.is_ascii_digit());
        } else if rest.starts_with('[') {
            let (bytes, after) = byte_list(rest);
            match bytes {
                Some(bytes) if bytes.len() > BYTES_SHOWN_MAX => {
                    out.push_str(&format!(
                        "<{} bytes, fnv {:016x}>",
                        bytes.len(),
                        fnv(&bytes)
                    ));
                    rest = after;
                }
                _ => {
                    out.push('[');
                    rest = &rest[1..];
                }
            }
        } else {
            let c = rest.chars().next().expect("not empty");
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// A `Debug` list of bytes at the start of `text` (`[1, 2, 3]`) and the text after it.
fn byte_list(text: &str) -> (Option<Vec<u8>>, &str) {
    let Some(end) = text.find(']') else {
        return (None, text);
    };
    let inner = &text[1..end];
    if inner.is_empty() {
        return (Some(Vec::new()), &text[end + 1..]);
    }
    let bytes: Option<Vec<u8>> = inner.split(", ").map(|n| n.parse().ok()).collect();
    (bytes, &text[end + 1..])
}

/// FNV-1a, 64 bits: enough to tell two large values apart in a failure message.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[test]
fn server_ids_are_blanked_and_long_byte_strings_summarized() {
    let text = "Header { cluster_id: 17, member_id: 9, revision: 4, raft_term: 2 } \
                kv: [97, 98] value: [LIST] inner: cluster_id: 0"
        .replace("[LIST]", &format!("{:?}", vec![7u8; 100]));
    assert_eq!(
        blank(text),
        format!(
            "Header {{ cluster_id: _, member_id: _, revision: 4, raft_term: _ }} kv: [97, 98] \
             value: <100 bytes, fnv {:016x}> inner: cluster_id: 0",
            fnv(&[7; 100])
        )
    );
    assert_eq!(
        blank("events: [], x: [Some(1)]".into()),
        "events: [], x: [Some(1)]"
    );
}
