//! Criterion bench: LatencySketch insert (ns per value), merge, encode/decode, quantiles.
//! `cargo bench -p gpuledger-engine --bench sketch`
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gpuledger_engine::sketch::LatencySketch;
use std::hint::black_box;

/// 1M lognormal latencies (median ~20 ms, sigma 1.5) clamped to 0.1 ms .. 10 min.
fn lognormal(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed;
    let mut uniform = move || {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        ((s.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (u, v) = (uniform(), uniform());
            let z = (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos();
            (3.0 + 1.5 * z).exp().clamp(0.1, 600_000.0)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let values = lognormal(1_000_000, 0x9e37_79b9_7f4a_7c15);
    let mut g = c.benchmark_group("sketch");
    g.throughput(Throughput::Elements(values.len() as u64));
    g.bench_function("insert_many_1M_lognormal", |b| {
        b.iter(|| {
            let mut s = LatencySketch::new();
            s.insert_many(black_box(&values)).unwrap();
            s.count()
        })
    });
    g.bench_function("insert_1M_lognormal_one_by_one", |b| {
        b.iter(|| {
            let mut s = LatencySketch::new();
            for &v in black_box(&values) {
                s.insert(v).unwrap();
            }
            s.count()
        })
    });
    g.finish();

    let parts: Vec<LatencySketch> = values
        .chunks(10_000)
        .map(|c| {
            let mut s = LatencySketch::new();
            s.insert_many(c).unwrap();
            s
        })
        .collect();
    let encoded: Vec<Vec<u8>> = parts.iter().map(|s| s.to_bytes()).collect();
    let mut g = c.benchmark_group("sketch_merge");
    g.throughput(Throughput::Elements(parts.len() as u64));
    g.bench_function("merge_100_sketches", |b| {
        b.iter(|| {
            let mut m = LatencySketch::new();
            for p in &parts {
                m.merge(p).unwrap();
            }
            m.count()
        })
    });
    g.bench_function("decode_and_merge_100_encoded", |b| {
        b.iter(|| {
            let mut m = LatencySketch::new();
            for e in &encoded {
                m.merge_bytes(e).unwrap();
            }
            m.count()
        })
    });
    g.bench_function("encode_100_sketches", |b| {
        b.iter(|| parts.iter().map(|p| p.to_bytes().len()).sum::<usize>())
    });
    g.finish();

    let mut whole = LatencySketch::new();
    whole.insert_many(&values).unwrap();
    c.bench_function("sketch_quantiles_p50_p90_p95_p99_p999", |b| {
        b.iter(|| black_box(&whole).quantiles(&[0.5, 0.9, 0.95, 0.99, 0.999]))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
