//! Criterion bench: decode + aggregate prometheus-kafka-adapter JSON on one core.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gpuledger_engine::{Engine, EngineConfig, MessageFormat, Offsets, Provenance};

fn messages(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let gpu = i % 16;
            let s = 1_795_867_200 + (i / 16) as i64;
            let (h, m, sec) = ((s / 3600) % 24, (s / 60) % 60, s % 60);
            format!(
                r#"{{"timestamp":"2026-11-28T{h:02}:{m:02}:{sec:02}Z","value":"0.{v:03}","name":"DCGM_FI_PROF_GR_ENGINE_ACTIVE","labels":{{"__name__":"DCGM_FI_PROF_GR_ENGINE_ACTIVE","gpu":"{gpu}","UUID":"GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e{gpu:02}","device":"nvidia{gpu}","modelName":"NVIDIA H100 80GB HBM3","Hostname":"gpu-node-17","namespace":"team-search","pod":"ranker-7f9c-{gpu}","container":"main"}}}}"#,
                v = (i * 37) % 1000
            )
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let msgs = messages(100_000);
    let mut g = c.benchmark_group("prom_json");
    g.throughput(Throughput::Elements(msgs.len() as u64));
    g.bench_function("decode_aggregate_100k", |b| {
        b.iter(|| {
            let mut e = Engine::new(EngineConfig::default()).unwrap();
            let prov = Provenance {
                source: "bench",
                partition: 0,
                offsets: Offsets::From(0),
                received_at: None,
            };
            e.push_messages(MessageFormat::PromJson, &msgs, prov);
            e.finish().gpu.len()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
