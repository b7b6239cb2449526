//! Test helpers shared by the decoders' tests: a sink that keeps owned copies of what it
//! gets, and a tiny deterministic PRNG for generated and random inputs.

use super::{Reading, ReadingSink};
use crate::fields::FieldId;

/// A reading with owned labels, for comparing.
#[derive(Clone, Debug, PartialEq)]
pub struct Got {
    pub ts_ms: i64,
    pub field: FieldId,
    pub value: f64,
    /// uuid, gpu_instance_id, gpu_index, hostname, model_name, namespace, pod, container.
    pub labels: [String; 8],
    pub extra: Vec<String>,
}

#[derive(Default, Debug)]
pub struct Collect {
    pub got: Vec<Got>,
    pub unknown: usize,
}

impl ReadingSink for Collect {
    fn reading(&mut self, r: Reading<'_>) {
        let l = r.labels;
        self.got.push(Got {
            ts_ms: r.ts_ms,
            field: r.field,
            value: r.value,
            labels: [
                l.uuid,
                l.gpu_instance_id,
                l.gpu_index,
                l.hostname,
                l.model_name,
                l.namespace,
                l.pod,
                l.container,
            ]
            .map(String::from),
            extra: l.extra.iter().map(|s| s.to_string()).collect(),
        });
    }
    fn unknown_field(&mut self) {
        self.unknown += 1;
    }
}

/// SplitMix64: small, deterministic, good enough to generate test inputs.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }

    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    /// `base` with a few random bytes replaced, inserted or removed, then maybe truncated.
    pub fn mutate(&mut self, base: &[u8], alphabet: &[u8]) -> Vec<u8> {
        let mut m = base.to_vec();
        for _ in 0..1 + self.below(3) {
            if m.is_empty() {
                break;
            }
            let at = self.below(m.len());
            match self.below(3) {
                0 => m[at] = self.pick(alphabet),
                1 => m.insert(at, self.pick(alphabet)),
                _ => {
                    m.remove(at);
                }
            }
        }
        if self.chance(30) {
            m.truncate(self.below(m.len() + 1));
        }
        m
    }

    /// Random bytes from `alphabet`, up to `max` long.
    pub fn bytes(&mut self, alphabet: &[u8], max: usize) -> Vec<u8> {
        let n = self.below(max + 1);
        (0..n).map(|_| self.pick(alphabet)).collect()
    }
}
