//! Seeded mutations of an encoded protobuf message, at the byte level but aimed at
//! protobuf's own structure: a flipped bit, a cut, inserted bytes, a varint that never
//! ends or overflows 64 bits, a length that claims more than follows, a tag with another
//! field number or wire type, a repeated stretch (a field given twice), random bytes.

use beacon_testkit::SeededRng;

/// One or two mutations of `base`: most results are almost valid, which is where
/// decoders go wrong.
pub fn mutate(rng: &mut SeededRng, base: &[u8]) -> Vec<u8> {
    let mut out = base.to_vec();
    for _ in 0..=rng.below(2) {
        mutate_once(rng, &mut out);
    }
    out
}

/// A position in `bytes`, its end included.
fn at(rng: &mut SeededRng, bytes: &[u8]) -> usize {
    rng.below(bytes.len() as u64 + 1) as usize
}

fn mutate_once(rng: &mut SeededRng, out: &mut Vec<u8>) {
    match rng.below(10) {
        0 if !out.is_empty() => {
            let i = rng.below(out.len() as u64) as usize;
            out[i] ^= 1 << rng.below(8);
        }
        1 => {
            let cut = at(rng, out);
            out.truncate(cut);
        }
        2 => {
            let i = at(rng, out);
            let n = 1 + rng.below(8) as usize;
            let inserted: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            out.splice(i..i, inserted);
        }
        3 => {
            // Eleven continuation bytes: more than a 64-bit varint may have; or ten
            // that end in a byte setting bits past 64.
            let i = at(rng, out);
            let varint: &[u8] = if rng.below(2) == 0 {
                &[0xff; 11]
            } else {
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]
            };
            out.splice(i..i, varint.iter().copied());
        }
        4 if !out.is_empty() => {
            // A length (or any byte) that claims far more than follows.
            let i = rng.below(out.len() as u64) as usize;
            let claimed: &[u8] = match rng.below(3) {
                0 => &[0x7f],
                1 => &[0xff, 0xff, 0xff, 0xff, 0x0f],
                _ => &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
            };
            out.splice(i..=i, claimed.iter().copied());
        }
        5 if !out.is_empty() => {
            // Another field number, wire type, or both (6 and 7 are invalid types).
            let i = rng.below(out.len() as u64) as usize;
            out[i] = match rng.below(3) {
                0 => (out[i] & !7) | rng.below(8) as u8,
                1 => ((1 + rng.below(15) as u8) << 3) | (out[i] & 7),
                _ => rng.next_u64() as u8,
            };
        }
        6 if !out.is_empty() => {
            let start = rng.below(out.len() as u64) as usize;
            let end = start + 1 + rng.below((out.len() - start) as u64) as usize;
            let stretch = out[start..end].to_vec();
            let i = at(rng, out);
            out.splice(i..i, stretch);
        }
        7 => {
            // A field the message does not have: a large number, each wire type.
            let tag: &[u8] = match rng.below(4) {
                0 => &[0xf8, 0xff, 0xff, 0xff, 0x0f, 0x01],
                1 => &[0x82, 0x7d, 0x03, b'x', b'y', b'z'],
                2 => &[0xfd, 0x07, 1, 2, 3, 4],
                _ => &[0xab, 0x02, 0x08, 0x01, 0xac, 0x02],
            };
            let i = at(rng, out);
            out.splice(i..i, tag.iter().copied());
        }
        8 => {
            let n = rng.below(48) as usize;
            *out = (0..n).map(|_| rng.next_u64() as u8).collect();
        }
        _ => {
            let n = rng.below(4) as usize;
            for _ in 0..n {
                if !out.is_empty() {
                    let i = rng.below(out.len() as u64) as usize;
                    out.remove(i);
                }
            }
        }
    }
}
