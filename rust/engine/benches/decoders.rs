//! Criterion bench: decode alone (no aggregation) for each input form, on one core.
//!
//! `prom_json/serde_json_old` is the serde_json decoder the hand-written scanner replaced
//! (kept in src/decode/prom_json_serde_oracle.rs), run on the same messages for comparison.
//! Throughput is in messages (for exposition: sample lines) per second.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gpuledger_engine::decode::exposition::{self, LineSink};
use gpuledger_engine::decode::{
    latency_json, prom_json, wide_json, DecodeContext, Reading, ReadingSink,
};
use gpuledger_engine::fields::FieldRegistry;
use std::hint::black_box;

mod old_serde {
    include!("../src/decode/prom_json_serde_oracle.rs");
}

/// Touches what a real sink would read, so nothing is optimized away.
#[derive(Default)]
struct Sum {
    n: u64,
    v: f64,
    bytes: usize,
}

impl ReadingSink for Sum {
    fn reading(&mut self, r: Reading<'_>) {
        self.n += 1;
        self.v += r.value + r.ts_ms as f64;
        let l = r.labels;
        self.bytes +=
            l.uuid.len() + l.hostname.len() + l.pod.len() + l.namespace.len() + l.gpu_index.len();
    }
    fn unknown_field(&mut self) {
        self.n += 1;
    }
}

const SPEC_1A: &str = r#"{"timestamp":"2026-11-28T12:00:01Z","value":"0.734","name":"DCGM_FI_PROF_GR_ENGINE_ACTIVE","labels":{"__name__":"DCGM_FI_PROF_GR_ENGINE_ACTIVE","gpu":"3","UUID":"GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e52","device":"nvidia3","modelName":"NVIDIA H100 80GB HBM3","Hostname":"gpu-node-17","namespace":"team-search","pod":"ranker-7f9c-2","container":"main"}}"#;

/// 1000 adapter messages: 16 GPUs, the six built-in fields, varying values and times.
fn prom_messages() -> Vec<String> {
    let names = [
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_PROF_SM_ACTIVE",
        "DCGM_FI_DEV_FB_USED",
        "DCGM_FI_DEV_POWER_USAGE",
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
    ];
    (0..1000)
        .map(|i| {
            let gpu = i % 16;
            let name = names[(i / 16) % names.len()];
            let s = 1_795_867_200 + (i / 96) as i64;
            let (h, m, sec) = ((s / 3600) % 24, (s / 60) % 60, s % 60);
            format!(
                r#"{{"timestamp":"2026-11-28T{h:02}:{m:02}:{sec:02}Z","value":"{v}","name":"{name}","labels":{{"__name__":"{name}","gpu":"{gpu}","UUID":"GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e{gpu:02}","device":"nvidia{gpu}","modelName":"NVIDIA H100 80GB HBM3","Hostname":"gpu-node-17","namespace":"team-search","pod":"ranker-7f9c-{gpu}","container":"main"}}}}"#,
                v = (i * 37) % 1000
            )
        })
        .collect()
}

fn bench_prom_json(c: &mut Criterion) {
    let fields = FieldRegistry::default();
    let ctx = DecodeContext {
        fields: &fields,
        extra_labels: &[],
    };
    let mut g = c.benchmark_group("prom_json");
    let spec = [SPEC_1A.as_bytes()];
    let msgs = prom_messages();
    for (set, msgs) in [
        (
            "spec_example",
            spec.iter().map(|m| m.to_vec()).collect::<Vec<_>>(),
        ),
        (
            "mixed_1000",
            msgs.iter().map(|m| m.as_bytes().to_vec()).collect(),
        ),
    ] {
        g.throughput(Throughput::Elements(msgs.len() as u64));
        g.bench_function(format!("scanner/{set}"), |b| {
            b.iter(|| {
                let mut sink = Sum::default();
                for m in &msgs {
                    let _ = prom_json::decode(black_box(m), &ctx, &mut sink);
                }
                black_box((sink.n, sink.v, sink.bytes))
            })
        });
        g.bench_function(format!("serde_json_old/{set}"), |b| {
            b.iter(|| {
                let mut sink = Sum::default();
                for m in &msgs {
                    let _ = old_serde::decode(black_box(m), &ctx, &mut sink);
                }
                black_box((sink.n, sink.v, sink.bytes))
            })
        });
    }
    g.finish();
    // Floors: validating the message alone, and the per-message lookups decode needs.
    let mut g = c.benchmark_group("prom_json_parts");
    g.throughput(Throughput::Elements(1));
    g.bench_function("json_scan_skip_value", |b| {
        b.iter(|| {
            let mut s =
                gpuledger_engine::decode::json_scan::Scanner::new(black_box(SPEC_1A.as_bytes()));
            black_box(s.skip_value(0).is_ok())
        })
    });
    g.bench_function("lookup_name", |b| {
        b.iter(|| black_box(fields.lookup(black_box("DCGM_FI_PROF_GR_ENGINE_ACTIVE"))))
    });
    g.bench_function("parse_rfc3339", |b| {
        b.iter(|| {
            black_box(gpuledger_engine::time::parse_rfc3339_ms(black_box(
                "2026-11-28T12:00:01Z",
            )))
        })
    });
    g.bench_function("parse_f64", |b| {
        b.iter(|| black_box(black_box("0.734").parse::<f64>()))
    });
    g.finish();
}

impl LineSink for Sum {
    fn begin_line(&mut self, line_no: u64) {
        self.bytes += line_no as usize & 1;
    }
    fn end_line(&mut self, _line_no: u64, result: Result<(), String>, raw_line: &[u8]) {
        self.bytes += raw_line.len() * usize::from(result.is_err());
    }
}

const SPEC_1B: &str = r#"{"ts":1764331201.0,"gpu":"GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e52","gpu_index":3,"host":"gpu-node-17","model":"NVIDIA H100 80GB HBM3","namespace":"team-search","pod":"ranker-7f9c-2","container":"main","gr_engine_active":0.734,"fb_used_mib":40211,"power_w":512.5}"#;

/// 1000 wide messages: 16 GPUs, all six metrics each.
fn wide_messages() -> Vec<Vec<u8>> {
    (0..1000)
        .map(|i| {
            let gpu = i % 16;
            let ts = 1_764_331_201.0 + (i / 16) as f64;
            format!(
                r#"{{"ts":{ts:.1},"gpu":"GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e{gpu:02}","gpu_index":{gpu},"host":"gpu-node-17","model":"NVIDIA H100 80GB HBM3","namespace":"team-search","pod":"ranker-7f9c-{gpu}","container":"main","gr_engine_active":0.{a:03},"gpu_util":{u},"sm_active":0.{b:03},"fb_used_mib":{fb},"power_w":{p}.5,"energy_mj":{e}}}"#,
                a = (i * 37) % 1000,
                u = (i * 7) % 101,
                b = (i * 53) % 1000,
                fb = 40_000 + i,
                p = 300 + i % 400,
                e = 1_000_000_000u64 + i as u64 * 512
            )
            .into_bytes()
        })
        .collect()
}

fn bench_wide_json(c: &mut Criterion) {
    let fields = FieldRegistry::default();
    let ctx = DecodeContext {
        fields: &fields,
        extra_labels: &[],
    };
    let mut g = c.benchmark_group("wide_json");
    for (set, msgs) in [
        ("spec_example", vec![SPEC_1B.as_bytes().to_vec()]),
        ("six_metrics_1000", wide_messages()),
    ] {
        g.throughput(Throughput::Elements(msgs.len() as u64));
        g.bench_function(format!("scanner/{set}"), |b| {
            b.iter(|| {
                let mut sink = Sum::default();
                for m in &msgs {
                    let _ = wide_json::decode(black_box(m), &ctx, &mut sink);
                }
                black_box((sink.n, sink.v, sink.bytes))
            })
        });
    }
    g.finish();
}

/// 1000 request events in gpuledger's form (docs/inputs.md 2; bench_latency.py's shape): 4 services, 16 pods.
fn latency_messages() -> Vec<Vec<u8>> {
    let services = ["chat-llm", "code-llm", "embed", "rerank"];
    (0..1000u64)
        .map(|i| {
            let s = services[(i % 4) as usize];
            format!(
                r#"{{"ts":{}.{:03},"service":"{s}","namespace":"team-{s}","pod":"{s}-{}","latency_ms":{}.{:03},"ttft_ms":{}.{:02},"status":{},"tokens_in":{},"tokens_out":{},"request_id":"r-{i:x}"}}"#,
                1_795_867_200 + i / 1000,
                i % 1000,
                i % 4,
                20 + (i * 37) % 400,
                (i * 7) % 1000,
                5 + i % 60,
                (i * 13) % 100,
                if i % 97 == 0 { 500 } else { 200 },
                10 + (i * 31) % 1990,
                1 + (i * 17) % 499,
            )
            .into_bytes()
        })
        .collect()
}

fn bench_latency_json(c: &mut Criterion) {
    let msgs = latency_messages();
    let mut g = c.benchmark_group("latency_json");
    g.throughput(Throughput::Elements(msgs.len() as u64));
    // `decode` takes the plain-form short path on these; `decode_general` is the key-by-key
    // path every other message takes.
    type Decode = for<'a> fn(&'a [u8]) -> Result<latency_json::Request<'a>, String>;
    for (name, decode) in [
        ("scanner/requests_1000", latency_json::decode as Decode),
        (
            "general/requests_1000",
            latency_json::decode_general as Decode,
        ),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let (mut n, mut v) = (0usize, 0f64);
                for m in &msgs {
                    let r = decode(black_box(m)).expect("a valid request");
                    n += r.service.len() + r.pod.len() + r.values.request_id.len();
                    v += r.values.latency_ms + r.values.tokens_in + r.values.ts_ms as f64;
                }
                black_box((n, v))
            })
        });
    }
    g.finish();
}

/// A dcgm-exporter scrape of 8 GPUs under Kubernetes: 20 metrics (6 known to the engine)
/// with HELP/TYPE lines, preceded by `# scrape_ts`; `scrapes` of them back to back.
fn exposition_text(scrapes: usize) -> (Vec<u8>, u64) {
    let metrics = [
        "DCGM_FI_DEV_SM_CLOCK",
        "DCGM_FI_DEV_MEM_CLOCK",
        "DCGM_FI_DEV_MEMORY_TEMP",
        "DCGM_FI_DEV_GPU_TEMP",
        "DCGM_FI_DEV_POWER_USAGE",
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
        "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_DEV_MEM_COPY_UTIL",
        "DCGM_FI_DEV_ENC_UTIL",
        "DCGM_FI_DEV_DEC_UTIL",
        "DCGM_FI_DEV_XID_ERRORS",
        "DCGM_FI_DEV_FB_FREE",
        "DCGM_FI_DEV_FB_USED",
        "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL",
        "DCGM_FI_DEV_VGPU_LICENSE_STATUS",
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
        "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
        "DCGM_FI_PROF_DRAM_ACTIVE",
        "DCGM_FI_PROF_SM_ACTIVE",
    ];
    let mut text = String::new();
    let mut samples = 0;
    for s in 0..scrapes {
        text.push_str(&format!("# scrape_ts {}.0\n", 1_764_331_201 + s * 15));
        for (k, m) in metrics.iter().enumerate() {
            text.push_str(&format!(
                "# HELP {m} Help text for {m}.\n# TYPE {m} gauge\n"
            ));
            for gpu in 0..8 {
                let v = (s * 31 + gpu * 7 + k) % 100;
                text.push_str(&format!(
                    "{m}{{gpu=\"{gpu}\",UUID=\"GPU-585834da-79ca-0599-5140-4ffdb131ae9{gpu}\",pci_bus_id=\"00000000:4E:00.0\",device=\"nvidia{gpu}\",modelName=\"NVIDIA L40S\",Hostname=\"l40s-1\",DCGM_FI_DRIVER_VERSION=\"550.54.15\",container=\"tensorflow\",namespace=\"research\",pod=\"tensorflow-{gpu}\"}} {v}\n"
                ));
                samples += 1;
            }
        }
    }
    (text.into_bytes(), samples)
}

fn bench_exposition(c: &mut Criterion) {
    let fields = FieldRegistry::default();
    let ctx = DecodeContext {
        fields: &fields,
        extra_labels: &[],
    };
    let mut g = c.benchmark_group("exposition");
    let (text, samples) = exposition_text(50);
    g.throughput(Throughput::Elements(samples));
    g.bench_function("decode_lines/8gpu_20metrics_50scrapes", |b| {
        b.iter(|| {
            let mut sink = Sum::default();
            exposition::decode_lines(black_box(&text), &ctx, None, &mut sink);
            black_box((sink.n, sink.v, sink.bytes))
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_prom_json,
    bench_wide_json,
    bench_latency_json,
    bench_exposition
);
criterion_main!(benches);
