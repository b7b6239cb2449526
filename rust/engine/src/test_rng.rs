//! A seeded xorshift generator for tests that want many deterministic pseudo-random cases.

/// The next numbers of a xorshift64 sequence from `seed` (non-zero).
pub(crate) fn xorshift(mut x: u64) -> impl FnMut() -> u64 {
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}
