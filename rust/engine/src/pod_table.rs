//! (namespace, pod) pairs interned to small ids, so per-request bookkeeping (requests served
//! by pod) hashes a u32, not two strings, and columnar input resolves each dictionary entry
//! once per batch.

use foldhash::fast::FixedState;

pub type PodId = u32;

/// Interned (namespace, pod) pairs; ids are dense and never reused.
#[derive(Default)]
pub struct PodTable {
    ids: hashbrown::HashMap<(Box<str>, Box<str>), PodId, FixedState>,
    names: Vec<(Box<str>, Box<str>)>,
}

/// A borrowed (namespace, pod) that hashes and compares like the owned key.
#[derive(Hash)]
struct PodKey<'a>(&'a str, &'a str);

impl hashbrown::Equivalent<(Box<str>, Box<str>)> for PodKey<'_> {
    fn equivalent(&self, key: &(Box<str>, Box<str>)) -> bool {
        *key.0 == *self.0 && *key.1 == *self.1
    }
}

impl PodTable {
    /// The id of (namespace, pod), allocating one on first sight (a known pair allocates
    /// nothing).
    pub fn intern(&mut self, namespace: &str, pod: &str) -> PodId {
        if let Some(&id) = self.ids.get(&PodKey(namespace, pod)) {
            return id;
        }
        let id = self.names.len() as PodId;
        self.names.push((namespace.into(), pod.into()));
        self.ids.insert((namespace.into(), pod.into()), id);
        id
    }

    /// (namespace, pod) of an id from `intern`.
    pub fn get(&self, id: PodId) -> (&str, &str) {
        let (ns, pod) = &self.names[id as usize];
        (ns, pod)
    }

    pub fn heap_bytes(&self) -> usize {
        self.names
            .iter()
            .map(|(n, p)| 2 * (n.len() + p.len()) + 56)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_intern_to_stable_ids() {
        let mut t = PodTable::default();
        let a = t.intern("ns", "a");
        let b = t.intern("ns", "b");
        // The pair, not the concatenation, is the key.
        let c = t.intern("nsa", "");
        assert_eq!((a, b, c), (0, 1, 2));
        assert_eq!(t.intern("ns", "a"), a);
        assert_eq!(t.get(b), ("ns", "b"));
        assert_eq!(t.get(c), ("nsa", ""));
    }
}
