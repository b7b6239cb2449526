//! Shards: several engines share one input, each keeping the telemetry of its own GPUs, so
//! their rows together are one engine's (docs/scale-out.md "All cores"). A GPU's shard is
//! `crc32(gpu_uuid) % count` (IEEE CRC-32, the same as Python's `zlib.crc32` and Spark SQL's
//! `crc32`), so every tool that splits input agrees on it.
//!
//! Every shard keeps every request (the join of services to GPUs in `service_cost_windows`
//! needs all of them), but only shard 0 reports what requests give on their own
//! (`latency_windows`, request counters, late events and dead letters).

use crate::decode::columnar::{ColumnarBatch, Form};
use crate::decode::{latency_columnar, DecodeContext};
use crate::fields::FieldRegistry;
use arrow_array::RecordBatch;

/// Which shard an engine is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
    /// True when every shard is handed the whole input (replay's workers): the telemetry of
    /// other shards' GPUs is skipped, and the counters and dead letters that do not depend on
    /// a reading's GPU are kept by shard 0 alone. False when the input was split by
    /// [`shard_of_gpu`] before (Spark): every row is this shard's own.
    pub filter: bool,
}

impl Shard {
    /// True for the one shard that reports request outputs and shared counters.
    pub fn is_first(&self) -> bool {
        self.index == 0
    }
}

/// The shard of a GPU among `count`.
pub fn shard_of_gpu(gpu_uuid: &str, count: u32) -> u32 {
    crc32fast::hash(gpu_uuid.as_bytes()) % count.max(1)
}

/// The shard of every row of a columnar batch (`form` as `Engine::push_record_batch` takes
/// it): its GPU's, with the engine's own label rules. Rows without a readable GPU, and every
/// row of a request batch (requests go to every shard), are shard 0. `Err` when the batch's
/// columns cannot be read at all.
pub fn shard_of_rows(
    batch: &RecordBatch,
    form: Option<Form>,
    count: u32,
) -> Result<Vec<u32>, String> {
    let n = batch.num_rows();
    if form == Some(Form::Requests) || (form.is_none() && latency_columnar::is_requests(batch)) {
        return Ok(vec![0; n]);
    }
    let fields = FieldRegistry::default();
    let ctx = DecodeContext {
        fields: &fields,
        extra_labels: &[],
    };
    Ok(ColumnarBatch::new(batch, form, &ctx)?.shard_ids(count))
}

/// The rows of each shard (ascending), from the shard of every row (`shard_of_rows`): each
/// shard engine then reads its own rows only (`Engine::push_record_batch_rows`), without
/// stepping over the others'. Ids at or above `count` belong to no shard.
pub fn rows_by_shard(ids: &[u32], count: u32) -> Vec<Vec<u32>> {
    let mut rows: Vec<Vec<u32>> = (0..count)
        .map(|_| Vec::with_capacity(ids.len() / count.max(1) as usize + 1))
        .collect();
    for (i, &s) in ids.iter().enumerate() {
        if let Some(r) = rows.get_mut(s as usize) {
            r.push(i as u32);
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_by_shard_lists_each_shards_rows_in_order() {
        let ids = [1, 0, 0, 2, 1, 0, 7];
        let rows = rows_by_shard(&ids, 3);
        assert_eq!(rows, vec![vec![1, 2, 5], vec![0, 4], vec![3]]);
        assert_eq!(rows_by_shard(&[], 2), vec![Vec::<u32>::new(), vec![]]);
    }

    #[test]
    fn shard_of_gpu_is_ieee_crc32_mod_count() {
        // The standard CRC-32 check value (Python's zlib.crc32 gives it too), then the modulo.
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
        assert_eq!(shard_of_gpu("123456789", 7), 0xCBF4_3926 % 7);
        assert_eq!(shard_of_gpu("anything", 1), 0);
        assert_eq!(shard_of_gpu("anything", 0), 0);
    }
}
