//! Key names, values and a tiny PRNG shared by the workloads, so both servers see the
//! same key space and the same bytes.

/// The directory the PUT/GET workloads use.
pub const LOAD_DIR: &str = "/v2/keys/bench";

/// Path of key `i` in the PUT/GET key space.
pub fn load_key(i: u64) -> String {
    format!("{LOAD_DIR}/k{i:06}")
}

/// Path of key `i` of the memory workload: 1,000 keys per directory, as many services
/// with many instances each, rather than one directory of a million children.
pub fn memory_key(i: u64) -> String {
    format!("/v2/keys/mem/d{:04}/k{:04}", i / 1000, i % 1000)
}

/// A form body `value=<size bytes>`; the value is plain ASCII, so no escaping is needed.
pub fn value_form(size: usize, seed: u64) -> String {
    let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = Rng::new(seed);
    let value: String = (0..size)
        .map(|_| alphabet[(rng.next() % alphabet.len() as u64) as usize] as char)
        .collect();
    format!("value={value}")
}

/// xorshift64*: enough to spread keys evenly; no dependency, reproducible per worker.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // Never zero (xorshift's fixed point); mixing the seed decorrelates worker streams.
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-enough in `0..n` for a benchmark (modulo bias is negligible for small n).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
