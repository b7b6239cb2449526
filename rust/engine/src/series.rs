//! Interning of GPU series: one id per distinct (GPU identity, pod, attribution labels).
//!
//! Decoders hand over borrowed label strings; the table hashes them without allocating and
//! only copies a label set the first time it is seen, so steady-state ingest allocates nothing.

use foldhash::fast::FixedState;
use std::collections::HashMap;

/// How many extra labels (beyond the standard ones) a custom `group_by` can keep.
pub const MAX_EXTRA_LABELS: usize = 8;

/// Labels of one sample as borrowed from the message. Empty string means absent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct GpuLabels<'a> {
    pub uuid: &'a str,
    /// MIG instance id (`GPU_I_ID`); a MIG instance is its own GPU identity.
    pub gpu_instance_id: &'a str,
    pub gpu_index: &'a str,
    pub hostname: &'a str,
    pub model_name: &'a str,
    pub namespace: &'a str,
    pub pod: &'a str,
    pub container: &'a str,
    /// Values of the configured extra labels, by slot (see `DecodeContext::extra_labels`).
    pub extra: [&'a str; MAX_EXTRA_LABELS],
}

/// The owned, interned form of [`GpuLabels`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Series {
    /// `UUID`, or `UUID/GPU_I_ID` for a MIG instance (see docs/schema.md).
    pub gpu_uuid: Box<str>,
    pub gpu_index: Option<i32>,
    pub hostname: Box<str>,
    pub model_name: Box<str>,
    pub namespace: Box<str>,
    pub pod: Box<str>,
    pub container: Box<str>,
    pub extra: [Box<str>; MAX_EXTRA_LABELS],
}

/// The GPU identity of `l`: `UUID`, or `UUID/GPU_I_ID` for a MIG instance.
pub fn gpu_uuid_of<'a>(l: &GpuLabels<'a>) -> std::borrow::Cow<'a, str> {
    if l.gpu_instance_id.is_empty() {
        l.uuid.into()
    } else {
        format!("{}/{}", l.uuid, l.gpu_instance_id).into()
    }
}

impl Series {
    fn from_labels(l: &GpuLabels<'_>) -> Series {
        Series {
            gpu_uuid: gpu_uuid_of(l).into(),
            gpu_index: l.gpu_index.parse().ok(),
            hostname: l.hostname.into(),
            model_name: l.model_name.into(),
            namespace: l.namespace.into(),
            pod: l.pod.into(),
            container: l.container.into(),
            extra: l.extra.map(Box::from),
        }
    }
}

pub type SeriesId = u32;

/// Append-only table of series; ids are dense indices into it.
///
/// A label set is looked up by one length-prefixed byte key: building it is a few short
/// copies, and a lookup is one hash and one comparison. The last key is remembered, since
/// consecutive readings usually come from the same GPU.
#[derive(Default)]
pub struct SeriesTable {
    by_key: HashMap<Box<[u8]>, SeriesId, FixedState>,
    series: Vec<Series>,
    key: Vec<u8>,
    last_key: Vec<u8>,
    last_id: Option<SeriesId>,
    /// `(index, count)` of a filtering shard (`shard.rs`): series of other shards' GPUs are
    /// foreign. None: every series is this engine's own.
    shard: Option<(u32, u32)>,
    /// By series id: true for another shard's GPU.
    foreign: Vec<bool>,
}

fn encode_key(l: &GpuLabels<'_>, out: &mut Vec<u8>) {
    out.clear();
    let standard = [
        l.uuid,
        l.gpu_instance_id,
        l.gpu_index,
        l.hostname,
        l.model_name,
        l.namespace,
        l.pod,
        l.container,
    ];
    for v in standard.iter().chain(l.extra.iter()) {
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(v.as_bytes());
    }
}

impl SeriesTable {
    /// A table for shard `index` of `count` that filters its input (`shard::Shard::filter`).
    pub fn for_shard(index: u32, count: u32) -> SeriesTable {
        SeriesTable {
            shard: Some((index, count)),
            ..SeriesTable::default()
        }
    }

    /// True when `id` is another shard's GPU (never without a filtering shard).
    #[inline(always)]
    pub fn is_foreign(&self, id: SeriesId) -> bool {
        self.shard.is_some() && self.foreign[id as usize]
    }

    pub fn intern(&mut self, labels: &GpuLabels<'_>) -> SeriesId {
        encode_key(labels, &mut self.key);
        if let Some(id) = self.last_id {
            if self.key == self.last_key {
                return id;
            }
        }
        let id = match self.by_key.get(self.key.as_slice()) {
            Some(&id) => id,
            None => {
                let id = self.series.len() as SeriesId;
                let series = Series::from_labels(labels);
                self.foreign.push(self.shard.is_some_and(|(index, count)| {
                    crate::shard::shard_of_gpu(&series.gpu_uuid, count) != index
                }));
                self.series.push(series);
                self.by_key.insert(self.key.as_slice().into(), id);
                id
            }
        };
        std::mem::swap(&mut self.key, &mut self.last_key);
        self.last_id = Some(id);
        id
    }

    pub fn get(&self, id: SeriesId) -> &Series {
        &self.series[id as usize]
    }

    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Approximate heap bytes of the interned labels and the lookup map.
    pub fn heap_bytes(&self) -> usize {
        let labels: usize = self
            .series
            .iter()
            .map(|s| {
                s.gpu_uuid.len()
                    + s.hostname.len()
                    + s.model_name.len()
                    + s.namespace.len()
                    + s.pod.len()
                    + s.container.len()
                    + s.extra.iter().map(|e| e.len()).sum::<usize>()
            })
            .sum();
        2 * labels
            + self.series.capacity() * std::mem::size_of::<Series>()
            + self.by_key.capacity() * (std::mem::size_of::<(Box<[u8]>, SeriesId)>() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_labels_same_id_mig_is_distinct() {
        let mut t = SeriesTable::default();
        let a = GpuLabels {
            uuid: "GPU-1",
            pod: "p",
            ..Default::default()
        };
        let mig = GpuLabels {
            gpu_instance_id: "3",
            ..a
        };
        let other_pod = GpuLabels { pod: "q", ..a };
        let ia = t.intern(&a);
        assert_eq!(t.intern(&a), ia);
        let im = t.intern(&mig);
        assert_ne!(im, ia);
        assert_eq!(&*t.get(im).gpu_uuid, "GPU-1/3");
        assert_eq!(t.intern(&mig), im);
        assert_ne!(t.intern(&other_pod), ia);
        assert_eq!(t.len(), 3);
    }
}
