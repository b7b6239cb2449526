//! Criterion bench: long-form Arrow telemetry (16 GPUs x 10 fields, dictionary labels)
//! through push_record_batch, poll and finish, on one core.
use arrow_array::builder::{Float64Builder, StringDictionaryBuilder, TimestampMillisecondBuilder};
use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, RecordBatch};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gpuledger_engine::{Engine, EngineConfig};
use std::sync::Arc;

const FIELDS: [&str; 10] = [
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
    "DCGM_FI_DEV_GPU_UTIL",
    "DCGM_FI_PROF_SM_ACTIVE",
    "DCGM_FI_DEV_FB_USED",
    "DCGM_FI_DEV_POWER_USAGE",
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
    "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
    "DCGM_FI_PROF_DRAM_ACTIVE",
    "DCGM_FI_DEV_SM_CLOCK",
    "DCGM_FI_DEV_MEM_CLOCK",
];

fn batch(first_s: i64, seconds: i64) -> RecordBatch {
    let mut ts = TimestampMillisecondBuilder::new().with_timezone("UTC");
    let mut gpu = StringDictionaryBuilder::<Int32Type>::new();
    let mut field = StringDictionaryBuilder::<Int32Type>::new();
    let mut pod = StringDictionaryBuilder::<Int32Type>::new();
    let mut value = Float64Builder::new();
    for s in first_s..first_s + seconds {
        for g in 0..16 {
            for (f, name) in FIELDS.iter().enumerate() {
                ts.append_value((1_795_867_200 + s) * 1000);
                gpu.append_value(format!("GPU-{g:04}"));
                pod.append_value(format!("pod-{g}"));
                field.append_value(name);
                value.append_value(match f {
                    0 | 2 => ((s + g) % 100) as f64 / 100.0,
                    1 => ((s + g) % 100) as f64,
                    5 => (s * 1000) as f64,
                    _ => 300.0,
                });
            }
        }
    }
    let cols: Vec<(&str, ArrayRef)> = vec![
        ("ts", Arc::new(ts.finish())),
        ("gpu", Arc::new(gpu.finish())),
        ("field", Arc::new(field.finish())),
        ("value", Arc::new(value.finish())),
        ("pod", Arc::new(pod.finish())),
    ];
    RecordBatch::try_from_iter(cols).unwrap()
}

fn bench(c: &mut Criterion) {
    let batches: Vec<RecordBatch> = (0..10).map(|i| batch(i * 1600, 1600)).collect();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let mut g = c.benchmark_group("columnar");
    g.throughput(Throughput::Elements(rows as u64));
    g.sample_size(10);
    g.bench_function("long_form_4.1M_rows", |b| {
        b.iter(|| {
            let mut e = Engine::new(EngineConfig::default()).unwrap();
            let mut out = 0;
            for (i, batch) in batches.iter().enumerate() {
                e.push_record_batch(batch, None, "bench", 0, (i * batch.num_rows()) as i64)
                    .unwrap();
                out += e.poll().gpu.len();
            }
            out + e.finish().gpu.len()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
