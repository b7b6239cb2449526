//! `LatencySketch`: a mergeable relative-error quantile sketch for latencies in milliseconds
//! (DDSketch family: logarithmic buckets, dense collapsing-lowest store).
//!
//! * **Accuracy.** With relative accuracy `alpha` (default 0.005), every quantile whose rank
//!   lands in an indexable bucket is answered within `alpha` relative error of the true order
//!   statistic at that rank (the one `numpy.quantile(..., method="lower")` returns). Bucket
//!   `k` holds the values in `(gamma^(k-1), gamma^k]` with `gamma = (1 + alpha) / (1 - alpha)`,
//!   and answers with `2 gamma^k / (gamma + 1)`, at most `alpha` away (relatively) from any
//!   value of the bucket. Answers are clamped to the exact `[min, max]`, which only helps, and
//!   the lowest and highest ranks answer the exact `min` and `max`.
//! * **Zero bucket.** Values below [`MIN_INDEXABLE_MS`] (1 µs) are counted in a zero bucket;
//!   a rank landing there answers the exact minimum (absolute error below 1 µs).
//! * **Invalid values.** Negative, NaN and infinite values are rejected: [`LatencySketch::insert`]
//!   and [`LatencySketch::insert_many`] return an error and leave the sketch unchanged;
//!   [`LatencySketch::insert_many_skip_invalid`] skips them and says how many it skipped.
//! * **Bounded memory.** At most `max_buckets` (default 4096) bucket counters of 8 bytes. At
//!   alpha 0.005 a bucket spans a factor 1.01005, so 4096 buckets span a factor of about
//!   6e17 (0.1 ms to 10 minutes needs about 1 560). If the values ever span more, the
//!   lowest buckets are collapsed into the lowest kept one (DDSketch's collapsing-lowest
//!   store): the keys kept are always `[K - max_buckets + 1, K]` for the highest key `K`
//!   seen, so high quantiles keep their guarantee and only the lowest ones lose it.
//! * **Merge.** [`LatencySketch::merge`] adds bucket counts, so the merged bucket counts,
//!   count, min and max are exactly those of one sketch over the union, in any order and
//!   grouping (collapsing too is order-independent, see above); quantiles are therefore
//!   identical. `sum` is order-independent in memory (fixed point, `exact_sum.rs`); a decoded
//!   sketch carries it rounded, so merges of decoded sketches can differ in the last bits.
//! * **Encoding.** [`LatencySketch::to_bytes`] / [`LatencySketch::from_bytes`]: versioned and
//!   documented in `docs/sketch-encoding.md`; decoding validates everything and never panics.

use crate::exact_sum::ExactSum;
use crate::sketch_key::{exact_key, KeyFn};
use std::fmt;

/// Default relative accuracy `alpha`: quantiles within 0.5 % of the true value.
pub const DEFAULT_RELATIVE_ACCURACY: f64 = 0.005;
/// Default cap on the number of bucket counters (8 bytes each: at most 32 KiB).
pub const DEFAULT_MAX_BUCKETS: u32 = 4096;
/// Values (ms) below this (1 µs) are counted in the zero bucket.
pub const MIN_INDEXABLE_MS: f64 = 1e-3;
/// Smallest accepted relative accuracy (keeps bucket keys well inside `i32`).
pub const MIN_RELATIVE_ACCURACY: f64 = 1e-6;
/// Largest accepted relative accuracy.
pub const MAX_RELATIVE_ACCURACY: f64 = 0.5;
/// Smallest accepted bucket cap.
pub const MIN_MAX_BUCKETS: u32 = 16;
/// Largest accepted bucket cap (8 MiB of counters).
pub const MAX_MAX_BUCKETS: u32 = 1 << 20;
/// First four bytes of every encoded sketch.
pub const MAGIC: [u8; 4] = *b"GLSK";
/// Version byte written by [`LatencySketch::to_bytes`]; the only one [`LatencySketch::from_bytes`] reads.
pub const ENCODING_VERSION: u8 = 1;

/// Extra buckets allocated beyond the needed range when the store grows (fewer regrowths).
const GROW_SLACK: i32 = 64;

/// Errors of the sketch API.
#[derive(Clone, Debug, PartialEq)]
pub enum SketchError {
    /// A negative, NaN or infinite value; `index` is its position in a batch (0 for one value).
    InvalidValue { index: usize, value: f64 },
    /// A relative accuracy or bucket cap outside the accepted range.
    InvalidParameter(String),
    /// Merging sketches of different relative accuracy.
    Incompatible { ours: f64, theirs: f64 },
    /// Bytes that are not a valid encoded sketch.
    Decode(String),
    /// A merge whose total count would not fit in 64 bits.
    CountOverflow,
}

impl fmt::Display for SketchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SketchError::InvalidValue { index, value } => write!(
                f,
                "latency values must be finite and >= 0; got {value:?} at index {index}"
            ),
            SketchError::InvalidParameter(m) => f.write_str(m),
            SketchError::Incompatible { ours, theirs } => write!(
                f,
                "cannot merge sketches of different relative accuracy ({ours} and {theirs})"
            ),
            SketchError::Decode(m) => write!(f, "invalid latency sketch bytes: {m}"),
            SketchError::CountOverflow => f.write_str("merged count would overflow 64 bits"),
        }
    }
}

impl std::error::Error for SketchError {}

#[inline(always)]
fn is_valid(v: f64) -> bool {
    // False for NaN, negative values and +inf (-0.0 is accepted as zero).
    (0.0..f64::INFINITY).contains(&v)
}

/// A mergeable relative-error quantile sketch of latencies in milliseconds. See the module docs.
#[derive(Clone, Debug)]
pub struct LatencySketch {
    alpha: f64,
    gamma: f64,
    /// `1 / ln(gamma)`.
    multiplier: f64,
    max_buckets: u32,
    /// `counts[i]` is the count of bucket key `offset + i`. May have zero slack at both ends;
    /// never longer than `max_buckets`.
    counts: Vec<u64>,
    offset: i32,
    zero_count: u64,
    count: u64,
    /// Order-independent (fixed point), so the sum and mean never depend on insertion order.
    sum: ExactSum,
    min: f64,
    max: f64,
}

impl Default for LatencySketch {
    fn default() -> Self {
        Self::new()
    }
}

/// Equal when they answer identically: same parameters, bucket counts, count, sum, min, max
/// (the allocation slack of the store is ignored).
impl PartialEq for LatencySketch {
    fn eq(&self, o: &Self) -> bool {
        self.alpha.to_bits() == o.alpha.to_bits()
            && self.max_buckets == o.max_buckets
            && self.zero_count == o.zero_count
            && self.count == o.count
            && self.sum.value().to_bits() == o.sum.value().to_bits()
            && self.min.to_bits() == o.min.to_bits()
            && self.max.to_bits() == o.max.to_bits()
            && self.trimmed() == o.trimmed()
    }
}

impl LatencySketch {
    /// An empty sketch with the default relative accuracy (0.005) and bucket cap (4096).
    pub fn new() -> Self {
        Self::with_params(DEFAULT_RELATIVE_ACCURACY, DEFAULT_MAX_BUCKETS)
            .expect("default parameters are valid")
    }

    /// An empty sketch with relative accuracy `alpha` in [1e-6, 0.5] and at most
    /// `max_buckets` in [16, 2^20] bucket counters.
    pub fn with_params(alpha: f64, max_buckets: u32) -> Result<Self, SketchError> {
        if !(MIN_RELATIVE_ACCURACY..=MAX_RELATIVE_ACCURACY).contains(&alpha) {
            return Err(SketchError::InvalidParameter(format!(
                "relative accuracy must be in [{MIN_RELATIVE_ACCURACY}, {MAX_RELATIVE_ACCURACY}], not {alpha}"
            )));
        }
        if !(MIN_MAX_BUCKETS..=MAX_MAX_BUCKETS).contains(&max_buckets) {
            return Err(SketchError::InvalidParameter(format!(
                "max_buckets must be in [{MIN_MAX_BUCKETS}, {MAX_MAX_BUCKETS}], not {max_buckets}"
            )));
        }
        // Same arithmetic as DataDog's LogarithmicMapping, so keys agree with `ddsketch`.
        let gamma_mantissa = 2.0 * alpha / (1.0 - alpha);
        Ok(Self {
            alpha,
            gamma: 1.0 + gamma_mantissa,
            multiplier: 1.0 / gamma_mantissa.ln_1p(),
            max_buckets,
            counts: Vec::new(),
            offset: 0,
            zero_count: 0,
            count: 0,
            sum: ExactSum::default(),
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        })
    }

    /// The relative accuracy `alpha`.
    pub fn relative_accuracy(&self) -> f64 {
        self.alpha
    }

    /// `gamma = (1 + alpha) / (1 - alpha)`, the ratio between consecutive bucket bounds.
    pub fn gamma(&self) -> f64 {
        self.gamma
    }

    /// The cap on the number of bucket counters.
    pub fn max_buckets(&self) -> u32 {
        self.max_buckets
    }

    /// Number of values inserted (exact).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sum of the values inserted (independent of their order).
    pub fn sum(&self) -> f64 {
        self.sum.value()
    }

    /// Smallest value inserted (exact), None when empty.
    pub fn min(&self) -> Option<f64> {
        (self.count > 0).then_some(self.min)
    }

    /// Largest value inserted (exact), None when empty.
    pub fn max(&self) -> Option<f64> {
        (self.count > 0).then_some(self.max)
    }

    /// Mean of the values inserted, None when empty.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum.value() / self.count as f64)
    }

    /// Values counted in the zero bucket (below [`MIN_INDEXABLE_MS`]).
    pub fn zero_count(&self) -> u64 {
        self.zero_count
    }

    /// True when no value was inserted.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Heap memory held by the bucket store, in bytes (at most `8 * max_buckets`).
    pub fn heap_bytes(&self) -> usize {
        self.counts.capacity() * std::mem::size_of::<u64>()
    }

    /// The bucket key of an indexable value `v >= MIN_INDEXABLE_MS`.
    #[inline(always)]
    pub fn key(&self, v: f64) -> i32 {
        exact_key(v, self.multiplier)
    }

    /// The value a quantile falling in bucket `key` answers: `2 gamma^key / (gamma + 1)`.
    pub fn key_value(&self, key: i32) -> f64 {
        (key as f64 / self.multiplier).exp() * (2.0 / (1.0 + self.gamma))
    }

    /// The non-empty span of the store: (first key, counts) with non-zero ends (or empty).
    fn trimmed(&self) -> (i32, &[u64]) {
        let Some(first) = self.counts.iter().position(|&c| c != 0) else {
            return (0, &[]);
        };
        let last = self.counts.iter().rposition(|&c| c != 0).unwrap_or(first);
        (self.offset + first as i32, &self.counts[first..=last])
    }

    /// Non-empty buckets as `(key, count)`, in increasing key order (zero bucket excluded).
    pub fn buckets(&self) -> impl Iterator<Item = (i32, u64)> + '_ {
        let (first, counts) = self.trimmed();
        counts
            .iter()
            .enumerate()
            .filter(|(_, &c)| c != 0)
            .map(move |(i, &c)| (first + i as i32, c))
    }

    /// Number of bucket counters between the lowest and highest non-empty bucket.
    pub fn bucket_span(&self) -> usize {
        self.trimmed().1.len()
    }

    /// Makes the store cover keys `[lo, hi]`, collapsing the lowest buckets if the needed
    /// span exceeds `max_buckets`. Returns the lowest kept key: a key below it must be
    /// counted at it.
    fn reserve_keys(&mut self, lo: i32, hi: i32) -> i32 {
        let m = self.max_buckets as i64;
        let (t_first, t_counts) = self.trimmed();
        let (new_lo, new_hi) = if t_counts.is_empty() {
            (lo, hi)
        } else {
            let t_last = t_first + t_counts.len() as i32 - 1;
            (lo.min(t_first), hi.max(t_last))
        };
        let collapse = new_hi as i64 - new_lo as i64 + 1 > m;
        let keep_lo = if collapse {
            (new_hi as i64 - m + 1) as i32
        } else {
            new_lo
        };
        let cur_lo = self.offset as i64;
        let cur_hi = cur_lo + self.counts.len() as i64 - 1;
        let nothing_below = t_counts.is_empty() || t_first >= keep_lo;
        if !self.counts.is_empty()
            && cur_lo <= keep_lo as i64
            && new_hi as i64 <= cur_hi
            && nothing_below
        {
            return keep_lo;
        }
        // New layout [a, b] around [keep_lo, new_hi], with slack but never wider than m.
        let (a, b) = if collapse {
            (keep_lo as i64, new_hi as i64)
        } else {
            let a = (keep_lo as i64 - GROW_SLACK as i64).max(new_hi as i64 - m + 1);
            let b = (new_hi as i64 + GROW_SLACK as i64).min(a + m - 1);
            (a, b)
        };
        let width = (b - a + 1) as usize;
        let mut counts = vec![0u64; width];
        if !t_counts.is_empty() {
            for (i, &c) in t_counts.iter().enumerate() {
                let key = (t_first as i64 + i as i64).max(keep_lo as i64);
                counts[(key - a) as usize] += c;
            }
        }
        self.counts = counts;
        self.offset = a as i32;
        keep_lo
    }

    #[cold]
    #[inline(never)]
    fn insert_key_slow(&mut self, key: i32, n: u64) {
        let len = self.counts.len();
        // Already collapsed and full: anything below the kept range lands in its lowest bucket.
        if key < self.offset && len as u32 == self.max_buckets && self.counts[len - 1] != 0 {
            self.counts[0] += n;
            return;
        }
        let keep_lo = self.reserve_keys(key, key);
        let key = key.max(keep_lo);
        self.counts[(key - self.offset) as usize] += n;
    }

    #[inline(always)]
    fn insert_key(&mut self, key: i32) {
        let i = key.wrapping_sub(self.offset) as u32 as usize;
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        } else {
            self.insert_key_slow(key, 1);
        }
    }

    /// Inserts one latency (ms). Negative, NaN and infinite values are rejected (the sketch
    /// is unchanged).
    #[inline]
    pub fn insert(&mut self, v: f64) -> Result<(), SketchError> {
        if !is_valid(v) {
            return Err(SketchError::InvalidValue { index: 0, value: v });
        }
        self.insert_one_valid(v);
        Ok(())
    }

    /// `insert_valid` for one value (per request in the engine), without the batch loop's
    /// set-up; `v` must satisfy `is_valid`.
    #[inline(always)]
    fn insert_one_valid(&mut self, v: f64) {
        self.insert_one_valid_keyed(v, None)
    }

    /// `insert`, with the bucket key computed beforehand (`KeyFn::key(v, multiplier)`, in a
    /// loop over a block of values, off the per-request path): used when `multiplier` is
    /// this sketch's, else the key is computed here.
    #[inline(always)]
    pub(crate) fn insert_keyed(
        &mut self,
        v: f64,
        key: i32,
        multiplier: f64,
    ) -> Result<(), SketchError> {
        if !is_valid(v) {
            return Err(SketchError::InvalidValue { index: 0, value: v });
        }
        self.insert_one_valid_keyed(v, Some((key, multiplier)));
        Ok(())
    }

    /// The multiplier bucket keys are computed with (`1 / ln(gamma)`).
    pub(crate) fn multiplier(&self) -> f64 {
        self.multiplier
    }

    #[inline(always)]
    fn insert_one_valid_keyed(&mut self, v: f64, known: Option<(i32, f64)>) {
        let v = v + 0.0; // -0.0 -> +0.0
        self.sum.add(v);
        if v < self.min {
            self.min = v;
        }
        if v > self.max {
            self.max = v;
        }
        self.count += 1;
        if v < MIN_INDEXABLE_MS {
            self.zero_count += 1;
        } else {
            let key = match known {
                Some((k, m)) if m.to_bits() == self.multiplier.to_bits() => k,
                _ => KeyFn::get().key(v, self.multiplier),
            };
            self.insert_key(key);
        }
    }

    /// Inserts a batch of latencies (ms). If any value is negative, NaN or infinite, nothing
    /// is inserted and the error names the first such value.
    pub fn insert_many(&mut self, values: &[f64]) -> Result<(), SketchError> {
        if let Some(index) = values.iter().position(|&v| !is_valid(v)) {
            return Err(SketchError::InvalidValue {
                index,
                value: values[index],
            });
        }
        self.insert_valid(values);
        Ok(())
    }

    /// Inserts the valid values of a batch, skipping negative, NaN and infinite ones.
    /// Returns the number skipped.
    pub fn insert_many_skip_invalid(&mut self, values: &[f64]) -> usize {
        let mut skipped = 0;
        let mut rest = values;
        while let Some(i) = rest.iter().position(|&v| !is_valid(v)) {
            self.insert_valid(&rest[..i]);
            skipped += 1;
            rest = &rest[i + 1..];
        }
        self.insert_valid(rest);
        skipped
    }

    /// The hot loop; every value must satisfy `is_valid`.
    #[inline]
    fn insert_valid(&mut self, values: &[f64]) {
        if values.is_empty() {
            return;
        }
        let mult = self.multiplier;
        let key = KeyFn::get();
        let (mut min, mut max) = (self.min, self.max);
        let mut zeros = 0u64;
        for &v in values {
            let v = v + 0.0; // -0.0 -> +0.0
            self.sum.add(v);
            if v < min {
                min = v;
            }
            if v > max {
                max = v;
            }
            if v < MIN_INDEXABLE_MS {
                zeros += 1;
                continue;
            }
            self.insert_key(key.key(v, mult));
        }
        self.count += values.len() as u64;
        self.zero_count += zeros;
        self.min = min;
        self.max = max;
    }

    /// Merges `other` into `self`: afterwards `self` is the sketch of the union of both
    /// inputs (bucket-wise sum; the bucket cap becomes the smaller of the two). Sketches of
    /// different relative accuracy cannot be merged.
    pub fn merge(&mut self, other: &LatencySketch) -> Result<(), SketchError> {
        let (first, counts) = other.trimmed();
        self.merge_parts(other, first, counts.len(), counts.iter().copied())
    }

    /// Merges `other`'s scalars and cap with the bucket counts `counts` (`n` of them, keys
    /// from `first`, non-zero at both ends; `other`'s own store is ignored).
    fn merge_parts(
        &mut self,
        other: &LatencySketch,
        first: i32,
        n: usize,
        counts: impl Iterator<Item = u64>,
    ) -> Result<(), SketchError> {
        if self.alpha.to_bits() != other.alpha.to_bits() {
            return Err(SketchError::Incompatible {
                ours: self.alpha,
                theirs: other.alpha,
            });
        }
        let Some(total) = self.count.checked_add(other.count) else {
            return Err(SketchError::CountOverflow);
        };
        if other.max_buckets < self.max_buckets {
            self.max_buckets = other.max_buckets;
            // Re-fit our own store to the smaller cap (collapses if needed).
            let (f, c) = self.trimmed();
            if !c.is_empty() {
                let last = f + c.len() as i32 - 1;
                self.counts_refit(f, last);
            }
        }
        if other.count == 0 {
            return Ok(());
        }
        if n > 0 {
            let last = first + n as i32 - 1;
            let keep_lo = self.reserve_keys(first, last);
            let base = first.max(keep_lo);
            // Keys below the kept range all land in its lowest bucket.
            let (below, kept) = ((base - first) as usize, (base - self.offset) as usize);
            let mut counts = counts.take(n);
            let folded: u64 = counts.by_ref().take(below).sum();
            let dst = &mut self.counts[kept..];
            dst[0] += folded;
            for (d, c) in dst.iter_mut().zip(counts) {
                *d += c;
            }
        }
        self.zero_count += other.zero_count;
        self.count = total;
        self.sum.merge(&other.sum);
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        Ok(())
    }

    /// Rebuilds the store exactly over its non-empty span under the current cap.
    fn counts_refit(&mut self, first: i32, last: i32) {
        if (last as i64 - first as i64 + 1) <= self.max_buckets as i64
            && self.counts.len() <= self.max_buckets as usize
        {
            return;
        }
        let (f, c) = self.trimmed();
        let old: Vec<u64> = c.to_vec();
        self.counts = Vec::new();
        self.offset = 0;
        let keep_lo = self.reserve_keys(f, f + old.len() as i32 - 1);
        for (i, &n) in old.iter().enumerate() {
            let key = (f + i as i32).max(keep_lo);
            self.counts[(key - self.offset) as usize] += n;
        }
    }

    /// The `q`-quantile (0 <= q <= 1), None if the sketch is empty or `q` is out of range.
    ///
    /// DDSketch's rank rule: the answer estimates the order statistic of (0-based) rank
    /// `floor(q * (count - 1))`, within `alpha` relative error (see the module docs).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = (q * (self.count - 1) as f64).floor() as u64;
        if rank == 0 {
            return Some(self.min);
        }
        if rank >= self.count - 1 {
            return Some(self.max);
        }
        if rank < self.zero_count {
            return Some(self.min.max(0.0));
        }
        let mut cum = self.zero_count;
        for (i, &c) in self.counts.iter().enumerate() {
            cum += c;
            if cum > rank {
                let v = self.key_value(self.offset + i as i32);
                return Some(v.clamp(self.min, self.max));
            }
        }
        Some(self.max) // unreachable for a consistent sketch
    }

    /// Several quantiles at once (see [`LatencySketch::quantile`]).
    pub fn quantiles(&self, qs: &[f64]) -> Vec<Option<f64>> {
        qs.iter().map(|&q| self.quantile(q)).collect()
    }

    /// Encodes the sketch (format version 1, see `docs/sketch-encoding.md`).
    pub fn to_bytes(&self) -> Vec<u8> {
        let (first, counts) = self.trimmed();
        let mut out = Vec::with_capacity(64 + 2 * counts.len());
        out.extend_from_slice(&MAGIC);
        out.push(ENCODING_VERSION);
        out.extend_from_slice(&self.alpha.to_le_bytes());
        put_varint(&mut out, self.max_buckets as u64);
        put_varint(&mut out, self.count);
        put_varint(&mut out, self.zero_count);
        out.extend_from_slice(&self.sum.value().to_le_bytes());
        out.extend_from_slice(&self.min.to_le_bytes());
        out.extend_from_slice(&self.max.to_le_bytes());
        put_varint(&mut out, zigzag(first));
        put_varint(&mut out, counts.len() as u64);
        for &c in counts {
            put_varint(&mut out, c);
        }
        out
    }

    /// Decodes bytes written by [`LatencySketch::to_bytes`]. Truncated, trailing, inconsistent
    /// or otherwise invalid input is an error (never a panic).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SketchError> {
        let (mut s, first, n, body) = Self::parse(bytes)?;
        s.counts = VarintIter(body).take(n).collect();
        s.offset = first;
        Ok(s)
    }

    /// Decodes `bytes` and merges them into `self` without building an intermediate sketch.
    /// On error `self` is unchanged.
    pub fn merge_bytes(&mut self, bytes: &[u8]) -> Result<(), SketchError> {
        let (other, first, n, body) = Self::parse(bytes)?;
        self.merge_parts(&other, first, n, VarintIter(body))
    }

    /// Validates an encoded sketch completely. Returns it without its bucket counts (but
    /// with every other field), the first key, the number of counts and the bytes of the
    /// counts (`n` valid minimal varints, nothing after them).
    fn parse(bytes: &[u8]) -> Result<(Self, i32, usize, &[u8]), SketchError> {
        let err = |m: &str| SketchError::Decode(m.to_string());
        let mut r = Reader { b: bytes, pos: 0 };
        if r.take(4)
            .map_err(|_| err("shorter than the 4-byte magic"))?
            != MAGIC
        {
            return Err(err("bad magic (expected \"GLSK\")"));
        }
        let version = r.take(1)?[0];
        if version != ENCODING_VERSION {
            return Err(SketchError::Decode(format!(
                "unsupported encoding version {version} (this build reads version {ENCODING_VERSION})"
            )));
        }
        let alpha = r.f64()?;
        let max_buckets = r.varint()?;
        if max_buckets > MAX_MAX_BUCKETS as u64 {
            return Err(err("max_buckets out of range"));
        }
        let mut s = Self::with_params(alpha, max_buckets as u32)
            .map_err(|e| SketchError::Decode(e.to_string()))?;
        let count = r.varint()?;
        let zero_count = r.varint()?;
        let (sum, min, max) = (r.f64()?, r.f64()?, r.f64()?);
        let first = unzigzag(r.varint()?)?;
        let n = r.varint()?;
        if n > max_buckets {
            return Err(err("more buckets than max_buckets"));
        }
        if n > r.remaining() as u64 {
            return Err(err("truncated bucket counts"));
        }
        let n = n as usize;
        if zero_count > count {
            return Err(err("zero count exceeds count"));
        }
        if count == 0 {
            if n != 0 || sum != 0.0 || min != f64::INFINITY || max != f64::NEG_INFINITY {
                return Err(err("empty sketch with values"));
            }
        } else if !(is_valid(min) && is_valid(max) && min <= max) || sum.is_nan() || sum < 0.0 {
            return Err(err("invalid sum, min or max"));
        }
        let body_start = r.pos;
        let mut total = zero_count;
        let (mut first_c, mut last_c) = (0, 0);
        for i in 0..n {
            let c = r.varint()?;
            total = total
                .checked_add(c)
                .ok_or_else(|| err("bucket counts overflow"))?;
            if i == 0 {
                first_c = c;
            }
            last_c = c;
        }
        if r.remaining() != 0 {
            return Err(err("trailing bytes"));
        }
        if total != count {
            return Err(err("bucket counts do not add up to the count"));
        }
        if n > 0 {
            if first_c == 0 || last_c == 0 {
                return Err(err("first and last bucket counts must be non-zero"));
            }
            let last = first as i64 + n as i64 - 1;
            let lo_key = s.key(MIN_INDEXABLE_MS) as i64 - 1;
            let hi_key = s.key(f64::MAX) as i64 + 1;
            if (first as i64) < lo_key || last > hi_key {
                return Err(err("bucket keys out of range"));
            }
        }
        s.zero_count = zero_count;
        s.count = count;
        s.sum = ExactSum::of(sum);
        s.min = min;
        s.max = max;
        Ok((s, first, n, &bytes[body_start..]))
    }
}

/// Minimal LEB128 varints of an already validated byte run (see `LatencySketch::parse`).
struct VarintIter<'a>(&'a [u8]);

impl Iterator for VarintIter<'_> {
    type Item = u64;

    #[inline]
    fn next(&mut self) -> Option<u64> {
        if let Some((&b, rest)) = self.0.split_first() {
            if b < 0x80 {
                self.0 = rest;
                return Some(b as u64);
            }
        }
        let mut v = 0u64;
        for (i, &byte) in self.0.iter().enumerate().take(10) {
            v |= ((byte & 0x7f) as u64) << (7 * i);
            if byte & 0x80 == 0 {
                self.0 = &self.0[i + 1..];
                return Some(v);
            }
        }
        None
    }
}

fn zigzag(v: i32) -> u64 {
    ((v << 1) ^ (v >> 31)) as u32 as u64
}

fn unzigzag(u: u64) -> Result<i32, SketchError> {
    let u = u32::try_from(u).map_err(|_| SketchError::Decode("bucket key out of range".into()))?;
    Ok(((u >> 1) as i32) ^ -((u & 1) as i32))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.b.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], SketchError> {
        if self.remaining() < n {
            return Err(SketchError::Decode(format!(
                "truncated at byte {} (needed {n} more)",
                self.pos
            )));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn f64(&mut self) -> Result<f64, SketchError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_le_bytes(a))
    }

    /// Unsigned LEB128, at most 10 bytes, minimal (no redundant trailing zero groups).
    fn varint(&mut self) -> Result<u64, SketchError> {
        if let Some(&b) = self.b.get(self.pos) {
            if b < 0x80 {
                self.pos += 1;
                return Ok(b as u64);
            }
        }
        let start = self.pos;
        let mut v = 0u64;
        for i in 0..10 {
            let byte = self.take(1)?[0];
            let low = (byte & 0x7f) as u64;
            if i == 9 && byte > 1 {
                return Err(SketchError::Decode(format!(
                    "varint at byte {start} overflows 64 bits"
                )));
            }
            v |= low << (7 * i);
            if byte & 0x80 == 0 {
                if i > 0 && byte == 0 {
                    return Err(SketchError::Decode(format!(
                        "non-minimal varint at byte {start}"
                    )));
                }
                return Ok(v);
            }
        }
        Err(SketchError::Decode(format!(
            "varint at byte {start} longer than 10 bytes"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64* uniform in (0, 1).
    struct Rng(u64);
    impl Rng {
        fn uniform(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
            ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }
        fn normal(&mut self) -> f64 {
            let (u, v) = (self.uniform(), self.uniform());
            (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
        }
        fn lognormal(&mut self, mu: f64, sigma: f64) -> f64 {
            (mu + sigma * self.normal()).exp()
        }
    }

    fn exact(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
    }

    fn check_accuracy(values: &[f64], s: &LatencySketch) {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        for q in [0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            let e = exact(&sorted, q);
            let got = s.quantile(q).unwrap();
            let rel = (got - e).abs() / e;
            assert!(rel <= s.alpha * (1.0 + 1e-9), "q={q} exact={e} got={got}");
        }
    }

    #[test]
    fn key_mapping_brackets_values() {
        let s = LatencySketch::new();
        let g = s.gamma();
        assert!((g - 1.005 / 0.995).abs() < 1e-15);
        for v in [1e-3, 0.1, 1.0, 1.5, 250.0, 600_000.0, 1e300] {
            let k = s.key(v);
            // v in (gamma^(k-1), gamma^k], up to rounding at the boundaries.
            let (lo, hi) = (g.powi(k - 1), g.powi(k));
            assert!(v > lo * (1.0 - 1e-12) && v <= hi * (1.0 + 1e-12), "{v} {k}");
            let rep = s.key_value(k);
            assert!((rep - v).abs() / v <= s.relative_accuracy() * (1.0 + 1e-9));
        }
        assert_eq!(s.key(1.0), 0);
        assert_eq!(s.key(g * (1.0 - 1e-9)), 1);
        assert_eq!(s.key(g * (1.0 + 1e-9)), 2);
        assert_eq!(s.key(1.0 / g * (1.0 + 1e-9)), 0);
        assert_eq!(s.key(100.0), 461);
    }

    #[test]
    fn accuracy_lognormal_and_span() {
        let mut r = Rng(42);
        let v: Vec<f64> = (0..200_000)
            .map(|_| r.lognormal(3.0, 2.0).clamp(0.1, 600_000.0))
            .collect();
        let mut s = LatencySketch::new();
        s.insert_many(&v).unwrap();
        assert_eq!(s.count(), 200_000);
        check_accuracy(&v, &s);
        assert!(s.heap_bytes() <= 8 * (1600 + 2 * GROW_SLACK as usize));
        assert_eq!(
            s.min(),
            Some(v.iter().cloned().fold(f64::INFINITY, f64::min))
        );
    }

    #[test]
    fn single_insert_equals_batch() {
        let mut r = Rng(7);
        let mut v: Vec<f64> = (0..10_000).map(|_| r.lognormal(1.0, 1.5)).collect();
        // Zeros, a negative zero and values below the indexable range too.
        v.extend([0.0, -0.0, 1e-12, MIN_INDEXABLE_MS / 2.0, MIN_INDEXABLE_MS]);
        let mut a = LatencySketch::new();
        let mut b = LatencySketch::new();
        a.insert_many(&v).unwrap();
        for &x in v.iter().rev() {
            b.insert(x).unwrap();
        }
        assert_eq!(a.trimmed(), b.trimmed());
        assert_eq!(a.quantiles(&[0.5, 0.99]), b.quantiles(&[0.5, 0.99]));
        assert_eq!(a.to_bytes(), b.to_bytes());
        assert_eq!(
            (a.count(), a.zero_count(), a.sum()),
            (b.count(), b.zero_count(), b.sum())
        );
        assert_eq!((a.min(), a.max()), (b.min(), b.max()));
    }

    #[test]
    fn merge_equals_union_any_split() {
        let mut r = Rng(11);
        let v: Vec<f64> = (0..50_000)
            .map(|i| {
                if i % 97 == 0 {
                    0.0
                } else {
                    r.lognormal(2.0, 2.5)
                }
            })
            .collect();
        let mut whole = LatencySketch::new();
        whole.insert_many(&v).unwrap();
        for parts in [2usize, 3, 7, 50] {
            let mut merged = LatencySketch::new();
            for chunk in v.chunks(v.len().div_ceil(parts)) {
                let mut p = LatencySketch::new();
                p.insert_many(chunk).unwrap();
                let p = LatencySketch::from_bytes(&p.to_bytes()).unwrap();
                merged.merge(&p).unwrap();
            }
            assert_eq!(merged.trimmed(), whole.trimmed());
            assert_eq!(merged.count(), whole.count());
            assert_eq!(merged.zero_count(), whole.zero_count());
            assert_eq!((merged.min(), merged.max()), (whole.min(), whole.max()));
            assert!((merged.sum() - whole.sum()).abs() <= 1e-9 * whole.sum());
            let qs = [0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 1.0];
            assert_eq!(merged.quantiles(&qs), whole.quantiles(&qs));
        }
    }

    #[test]
    fn merge_rejects_different_alpha_and_handles_empty() {
        let mut a = LatencySketch::with_params(0.01, 2048).unwrap();
        let b = LatencySketch::new();
        assert!(matches!(a.merge(&b), Err(SketchError::Incompatible { .. })));
        let mut e = LatencySketch::new();
        let mut c = LatencySketch::new();
        c.insert_many(&[1.0, 2.0, 3.0]).unwrap();
        e.merge(&c).unwrap();
        assert_eq!(e, c);
        c.merge(&LatencySketch::new()).unwrap();
        assert_eq!(e, c);
    }

    #[test]
    fn collapse_lowest_is_bounded_and_order_independent() {
        let mut r = Rng(3);
        // Values spanning 1e-3 .. 1e300: far more than 64 buckets at alpha 0.005.
        let v: Vec<f64> = (0..20_000)
            .map(|_| 10f64.powf(-3.0 + 303.0 * r.uniform()))
            .collect();
        let mut a = LatencySketch::with_params(0.005, 64).unwrap();
        a.insert_many(&v).unwrap();
        assert!(a.counts.len() <= 64 && a.heap_bytes() <= 64 * 8);
        assert_eq!(a.bucket_span(), 64);
        let mut rev = LatencySketch::with_params(0.005, 64).unwrap();
        for &x in v.iter().rev() {
            rev.insert(x).unwrap();
        }
        assert_eq!(a.trimmed(), rev.trimmed());
        let mut merged = LatencySketch::with_params(0.005, 64).unwrap();
        for chunk in v.chunks(999) {
            let mut p = LatencySketch::with_params(0.005, 64).unwrap();
            p.insert_many(chunk).unwrap();
            merged.merge(&p).unwrap();
        }
        assert_eq!(merged.trimmed(), a.trimmed());
        let mut from_bytes = LatencySketch::with_params(0.005, 64).unwrap();
        for chunk in v.chunks(777) {
            let mut p = LatencySketch::with_params(0.005, 64).unwrap();
            p.insert_many(chunk).unwrap();
            from_bytes.merge_bytes(&p.to_bytes()).unwrap();
        }
        assert_eq!(from_bytes.trimmed(), a.trimmed());
        assert_eq!(from_bytes.count(), a.count());
        // High quantiles keep the guarantee (the top 64 buckets are exact).
        let mut sorted = v.clone();
        sorted.sort_by(f64::total_cmp);
        let e = exact(&sorted, 0.9999);
        let got = a.quantile(0.9999).unwrap();
        assert!((got - e).abs() / e <= 0.005 * (1.0 + 1e-9));
        assert_eq!(a.count(), 20_000);
        // Merging into a smaller cap collapses to it.
        let mut big = LatencySketch::new();
        big.insert_many(&v).unwrap();
        let mut small = LatencySketch::with_params(0.005, 64).unwrap();
        small.merge(&big).unwrap();
        assert_eq!(small.trimmed(), a.trimmed());
        big.merge(&LatencySketch::with_params(0.005, 64).unwrap())
            .unwrap();
        assert_eq!(big.trimmed(), a.trimmed());
        assert_eq!(big.max_buckets(), 64);
    }

    #[test]
    fn edge_values() {
        let mut s = LatencySketch::new();
        assert_eq!(s.quantile(0.5), None);
        assert_eq!(s.min(), None);
        for bad in [-1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1e-300] {
            assert!(s.insert(bad).is_err());
        }
        assert!(matches!(
            s.insert_many(&[1.0, 2.0, -3.0]),
            Err(SketchError::InvalidValue { index: 2, .. })
        ));
        assert!(s.is_empty());
        assert_eq!(s.insert_many_skip_invalid(&[1.0, f64::NAN, 2.0, -1.0]), 2);
        assert_eq!(s.count(), 2);
        let mut z = LatencySketch::new();
        z.insert_many(&[0.0, -0.0, 1e-300, 5e-4]).unwrap();
        assert_eq!(z.zero_count(), 4);
        assert_eq!(z.quantile(0.5), Some(0.0));
        assert_eq!(z.max(), Some(5e-4));
        assert!(z.min().unwrap().is_sign_positive());
        let mut h = LatencySketch::new();
        h.insert_many(&[f64::MAX, 1e300, 1e-3, f64::MIN_POSITIVE])
            .unwrap();
        assert_eq!(h.quantile(1.0), Some(f64::MAX));
        let q = h.quantile(0.7).unwrap();
        assert!((q - 1e300).abs() / 1e300 <= 0.005 * (1.0 + 1e-9));
        assert!(h.quantile(1.5).is_none() && h.quantile(f64::NAN).is_none());
        let mut c = LatencySketch::new();
        c.insert_many(&[42.0; 1000]).unwrap();
        for q in [0.0, 0.5, 0.999, 1.0] {
            assert_eq!(c.quantile(q), Some(42.0));
        }
        assert!(LatencySketch::with_params(0.0, 4096).is_err());
        assert!(LatencySketch::with_params(f64::NAN, 4096).is_err());
        assert!(LatencySketch::with_params(0.01, 8).is_err());
    }

    #[test]
    fn encoding_round_trip_and_rejects_garbage() {
        let mut r = Rng(5);
        let v: Vec<f64> = (0..5000).map(|_| r.lognormal(0.0, 3.0)).collect();
        let mut s = LatencySketch::new();
        s.insert_many(&v).unwrap();
        s.insert(0.0).unwrap();
        let b = s.to_bytes();
        let d = LatencySketch::from_bytes(&b).unwrap();
        assert_eq!(d, s);
        assert_eq!(d.to_bytes(), b);
        let empty = LatencySketch::new().to_bytes();
        assert_eq!(
            LatencySketch::from_bytes(&empty).unwrap(),
            LatencySketch::new()
        );
        // Every truncation fails, as does any trailing byte.
        for n in 0..b.len() {
            assert!(LatencySketch::from_bytes(&b[..n]).is_err(), "prefix {n}");
        }
        let mut t = b.clone();
        t.push(0);
        assert!(LatencySketch::from_bytes(&t).is_err());
        // Single-byte corruption never panics (and mostly fails).
        for i in 0..b.len() {
            for x in [0x00u8, 0x01, 0x7f, 0x80, 0xff] {
                let mut c = b.clone();
                c[i] ^= x;
                let _ = LatencySketch::from_bytes(&c);
            }
        }
        let mut bad_version = b.clone();
        bad_version[4] = 2;
        assert!(LatencySketch::from_bytes(&bad_version)
            .unwrap_err()
            .to_string()
            .contains("version 2"));
        // Pseudo-random garbage with a valid header.
        for seed in 1..2000u64 {
            let mut g = Rng(seed);
            let mut c = b[..5].to_vec();
            let n = (g.uniform() * 80.0) as usize;
            c.extend((0..n).map(|_| (g.uniform() * 256.0) as u8));
            let _ = LatencySketch::from_bytes(&c);
        }
        // A failed merge_bytes leaves the target unchanged.
        let before = s.clone();
        let mut target = s.clone();
        assert!(target.merge_bytes(&b[..b.len() - 1]).is_err());
        let other_alpha = LatencySketch::with_params(0.01, 4096).unwrap().to_bytes();
        assert!(target.merge_bytes(&other_alpha).is_err());
        assert_eq!(target, before);
        target.merge_bytes(&b).unwrap();
        let mut twice = s.clone();
        twice.merge(&s).unwrap();
        assert_eq!(target, twice);
        let mut huge = LatencySketch::new();
        huge.insert(1.0).unwrap();
        huge.count = u64::MAX - 1;
        huge.counts.iter_mut().for_each(|c| *c = 0);
        huge.zero_count = u64::MAX - 1;
        let hb = huge.to_bytes();
        let mut h2 = LatencySketch::from_bytes(&hb).unwrap();
        assert_eq!(h2.merge_bytes(&hb), Err(SketchError::CountOverflow));
        assert_eq!(h2.count(), u64::MAX - 1);
        assert!(LatencySketch::from_bytes(b"GLSK").is_err());
        assert!(LatencySketch::from_bytes(b"").is_err());
    }

    #[test]
    fn worked_example_bytes() {
        // The example of docs/sketch-encoding.md.
        let mut s = LatencySketch::new();
        s.insert_many(&[0.0, 100.0, 100.0, 101.0, 102.0]).unwrap();
        let hex: String = s.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            concat!(
                "474c534b",         // magic "GLSK"
                "01",               // version 1
                "7b14ae47e17a743f", // alpha 0.005
                "8020",             // max_buckets 4096
                "05",               // count 5
                "01",               // zero count 1
                "0000000000307940", // sum 403.0
                "0000000000000000", // min 0.0
                "0000000000805940", // max 102.0
                "9a07",             // first key 461 (zigzag 922)
                "03",               // 3 bucket counts
                "020101",           // keys 461, 462, 463
            )
        );
        assert_eq!(s.to_bytes().len(), 47);
        assert_eq!(s.quantile(0.5), Some(s.key_value(461)));
    }

    #[test]
    fn varint_and_zigzag() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            let mut r = Reader { b: &out, pos: 0 };
            assert_eq!(r.varint().unwrap(), v);
            assert_eq!(r.remaining(), 0);
        }
        for k in [0i32, -1, 1, -694, 1337, i32::MIN, i32::MAX] {
            assert_eq!(unzigzag(zigzag(k)).unwrap(), k);
        }
        let mut r = Reader {
            b: &[0x80, 0x00],
            pos: 0,
        };
        assert!(r.varint().is_err());
    }
}
