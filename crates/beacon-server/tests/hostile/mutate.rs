//! Seeded mutations of a well-formed request: the bytes an attacker or a broken client
//! would send. Each mutation is small, so that most results are almost valid, which is
//! where parsers go wrong.

use beacon_testkit::SeededRng;

/// Fragments that mean something to an HTTP or etcd parser.
const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b"\0",
    b"%",
    b"%FF",
    b"%00",
    b"%C0%AF",
    b"&",
    b"=",
    b"?",
    b";",
    b"/",
    b"//",
    b"/_",
    b"\xff\xfe",
    b"\xf0\x9f\x98",
    b" ",
    b":",
    b"Transfer-Encoding: chunked\r\n",
    b"Content-Length: 0\r\n",
    b"Content-Length: 99999999\r\n",
    b"Connection: close\r\n",
    b"Host: b\r\n",
    b"Transfer-Encoding: gzip, chunked\r\n",
    b"Expect: 100-continue\r\n",
    b"ttl=",
    b"ttl=-9223372036854775808",
    b"waitIndex=18446744073709551615",
    b"prevIndex=0",
    b"dir=true",
    b"recursive=true",
    b"wait=true",
    b"stream=true",
    b"refresh=true",
    b"prevExist=false",
    b"value=",
    b"HTTP/1.0",
    b"HTTP/1.1",
    b"0\r\n\r\n",
    b"ffffffff\r\n",
];

/// One to four mutations of `base`.
pub fn mutate(rng: &mut SeededRng, base: &[u8]) -> Vec<u8> {
    let mut out = base.to_vec();
    for _ in 0..=rng.below(4) {
        mutate_once(rng, &mut out);
    }
    out
}

fn mutate_once(rng: &mut SeededRng, out: &mut Vec<u8>) {
    let at = rng.below(out.len() as u64 + 1) as usize;
    match rng.below(7) {
        // Flip one bit.
        0 if !out.is_empty() => {
            let i = at.min(out.len() - 1);
            out[i] ^= 1 << rng.below(8);
        }
        // Cut the request short.
        1 => out.truncate(at),
        // Remove a short range.
        2 => {
            let end = (at + rng.below(16) as usize).min(out.len());
            out.drain(at..end);
        }
        // Repeat a short range (many times, now and then).
        3 => {
            let end = (at + 1 + rng.below(16) as usize).min(out.len());
            let range = &out[at.min(end)..end];
            // A repeated `/` makes a key thousands of levels deep, and from then on every
            // recursive listing costs depth² bytes (as in etcd): the fixed corpus sends one
            // such key and deletes it; here depth stays in the hundreds.
            let many = if range.contains(&b'/') { 50 } else { 1_000 };
            let times = if rng.below(8) == 0 { many } else { 2 };
            let piece = range.repeat(times);
            out.splice(at.min(end)..at.min(end), piece);
        }
        // Insert a token.
        4 | 5 => {
            let token = TOKENS[rng.below(TOKENS.len() as u64) as usize];
            out.splice(at..at, token.iter().copied());
        }
        // Insert random bytes.
        _ => {
            let n = 1 + rng.below(8) as usize;
            let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            out.splice(at..at, bytes);
        }
    }
}
