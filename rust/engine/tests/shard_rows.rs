//! Shard engines given their rows as index lists (`shard::rows_by_shard`,
//! `Engine::push_record_batch_rows`) write what they write when given the shard of every row
//! (`push_record_batch_of_shard`), and together one engine's GPU rows and counters.

use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use gpuledger_engine::shard::{rows_by_shard, shard_of_rows, Shard};
use gpuledger_engine::{Engine, EngineConfig, GpuWindowRow};
use std::sync::Arc;

/// 2026-11-28T12:00:00Z in ms.
const T0: i64 = 1_795_867_200_000;

/// Six GPUs, 2 minutes at 1 s, two fields, rows ordered by time then GPU (shards interleave),
/// with a pod change half way so runs of equal labels break inside a shard's rows too.
fn batch() -> RecordBatch {
    let (mut ts, mut gpu, mut pod, mut field, mut value) = (vec![], vec![], vec![], vec![], vec![]);
    for s in 0..120i64 {
        for g in 0..6 {
            for f in ["DCGM_FI_PROF_GR_ENGINE_ACTIVE", "DCGM_FI_DEV_POWER_USAGE"] {
                ts.push(T0 + s * 1000);
                gpu.push(format!("GPU-{g}"));
                pod.push(if s < 60 { "p0" } else { "p1" });
                field.push(f);
                value.push(((s * 7 + g * 3) % 10) as f64 / 10.0);
            }
        }
    }
    let ts = TimestampMillisecondArray::from(ts).with_timezone("UTC");
    let cols: Vec<(&str, ArrayRef)> = vec![
        ("ts", Arc::new(ts)),
        ("gpu", Arc::new(StringArray::from(gpu))),
        ("pod", Arc::new(StringArray::from(pod))),
        (
            "namespace",
            Arc::new(StringArray::from(vec!["ns"; value.len()])),
        ),
        ("field", Arc::new(StringArray::from(field))),
        ("value", Arc::new(Float64Array::from(value))),
    ];
    RecordBatch::try_from_iter(cols).unwrap()
}

fn engine(shard: Option<(u32, u32)>) -> Engine {
    Engine::new(EngineConfig {
        shard: shard.map(|(index, count)| Shard {
            index,
            count,
            filter: true,
        }),
        ..EngineConfig::default()
    })
    .unwrap()
}

fn sorted(mut rows: Vec<GpuWindowRow>) -> Vec<GpuWindowRow> {
    rows.sort_by_key(|r| (r.window_start, r.series));
    rows
}

#[test]
fn shards_reading_row_lists_equal_masked_shards_and_one_engine() {
    let b = batch();
    let mut one = engine(None);
    one.push_record_batch(&b, None, "f", 0, 0).unwrap();
    let whole = one.finish();
    let ids = shard_of_rows(&b, None, 2).unwrap();
    let rows = rows_by_shard(&ids, 2);
    assert!(!rows[0].is_empty() && !rows[1].is_empty());
    let mut gpu_rows = 0;
    let mut aggregated = 0;
    for k in 0..2u32 {
        let (mut listed, mut masked) = (engine(Some((k, 2))), engine(Some((k, 2))));
        listed
            .push_record_batch_rows(&b, None, "f", 0, 0, &rows[k as usize])
            .unwrap();
        masked
            .push_record_batch_of_shard(&b, None, "f", 0, 0, &ids)
            .unwrap();
        let (l, m) = (listed.finish(), masked.finish());
        assert_eq!(sorted(l.gpu.clone()), sorted(m.gpu));
        assert_eq!(listed.stats(), masked.stats());
        gpu_rows += l.gpu.len();
        aggregated += listed.stats().aggregated;
    }
    assert_eq!(gpu_rows, whole.gpu.len());
    assert_eq!(aggregated, one.stats().aggregated);
}

#[test]
fn row_lists_out_of_order_or_past_the_batch_are_refused() {
    let b = batch();
    let mut e = engine(Some((0, 2)));
    for bad in [vec![3, 2], vec![1, 1], vec![b.num_rows() as u32]] {
        let err = e
            .push_record_batch_rows(&b, None, "f", 0, 0, &bad)
            .unwrap_err();
        assert!(err.to_string().contains("shard rows must ascend"), "{err}");
    }
}
