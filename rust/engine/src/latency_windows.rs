//! Table `latency_windows`: one row per (window, service), from the window's merged
//! requests. Quantiles come from the mergeable sketch (relative error well under 1 %).

use crate::arrow_util::{float_col, int_col, str_col, ts_col, ts_type};
use crate::latency_store::LatencyAcc;
use crate::services::Slo;
use crate::stats::quantile_select;
use crate::time::EpochMs;
use arrow_array::builder::BinaryBuilder;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use std::sync::{Arc, OnceLock};

#[derive(Debug, Clone, PartialEq)]
pub struct LatencyWindowRow {
    pub window_start: EpochMs,
    pub window_end: EpochMs,
    pub service: String,
    pub requests: i64,
    pub errors: i64,
    pub error_ratio: Option<f64>,
    pub rate_mean_rps: f64,
    pub rate_p99_rps: f64,
    pub peak_to_mean: Option<f64>,
    pub latency_mean_ms: Option<f64>,
    pub latency_max_ms: Option<f64>,
    /// p50, p90, p95, p99, p99.9
    pub latency_q: [Option<f64>; 5],
    /// p50, p95, p99
    pub ttft_q: [Option<f64>; 3],
    pub tokens_in: f64,
    pub tokens_out: f64,
    pub slo: Slo,
    pub slo_violations: i64,
    pub violation_ratio: Option<f64>,
    pub burn_rate: Option<f64>,
    pub latency_sketch: Vec<u8>,
}

impl LatencyWindowRow {
    pub fn compute(
        start: EpochMs,
        end: EpochMs,
        service: &str,
        a: &LatencyAcc,
        slo: Slo,
        scratch: &mut Vec<f64>,
    ) -> LatencyWindowRow {
        let window_s = (end - start) as f64 / 1000.0;
        let n = a.requests as f64;
        let ratio = |x: f64| (a.requests > 0).then(|| x / n);
        // Per-second counts over every second of the window, quiet seconds included.
        let seconds = ((end - start) / 1000).max(1) as usize;
        scratch.clear();
        scratch.resize(seconds, 0.0);
        let first = start.div_euclid(1000);
        for (s, c) in a.per_second.iter() {
            if let Some(slot) = scratch.get_mut((s - first) as usize) {
                *slot += c as f64;
            }
        }
        let rate_mean_rps = n / window_s;
        let rate_p99_rps = quantile_select(scratch, 0.99).unwrap_or(0.0);
        let violation_ratio = ratio(a.slo_violations as f64);
        let q = |qs: &[f64], sk: &crate::sketch::LatencySketch| -> Vec<Option<f64>> {
            sk.quantiles(qs)
        };
        let lq = q(&[0.5, 0.9, 0.95, 0.99, 0.999], &a.latency);
        let tq = q(&[0.5, 0.95, 0.99], &a.ttft);
        LatencyWindowRow {
            window_start: start,
            window_end: end,
            service: service.to_string(),
            requests: a.requests as i64,
            errors: a.errors as i64,
            error_ratio: ratio(a.errors as f64),
            rate_mean_rps,
            rate_p99_rps,
            peak_to_mean: (rate_mean_rps > 0.0).then(|| rate_p99_rps / rate_mean_rps),
            latency_mean_ms: ratio(a.latency_sum()),
            latency_max_ms: (a.requests > 0).then_some(a.latency_max),
            latency_q: [lq[0], lq[1], lq[2], lq[3], lq[4]],
            ttft_q: [tq[0], tq[1], tq[2]],
            tokens_in: a.tokens_in,
            tokens_out: a.tokens_out,
            slo,
            slo_violations: a.slo_violations as i64,
            violation_ratio,
            burn_rate: violation_ratio
                .filter(|_| slo.target < 1.0)
                .map(|v| v / (1.0 - slo.target)),
            latency_sketch: a.latency.to_bytes(),
        }
    }
}

pub fn schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        let ts = ts_type();
        let float = |n: &str, nullable: bool| Field::new(n, DataType::Float64, nullable);
        let int = |n: &str| Field::new(n, DataType::Int64, false);
        Arc::new(Schema::new(vec![
            Field::new("window_start", ts.clone(), false),
            Field::new("window_end", ts, false),
            Field::new("service", DataType::Utf8, false),
            int("requests"),
            int("errors"),
            float("error_ratio", true),
            float("rate_mean_rps", false),
            float("rate_p99_rps", false),
            float("peak_to_mean", true),
            float("latency_mean_ms", true),
            float("latency_max_ms", true),
            float("latency_p50_ms", true),
            float("latency_p90_ms", true),
            float("latency_p95_ms", true),
            float("latency_p99_ms", true),
            float("latency_p999_ms", true),
            float("ttft_p50_ms", true),
            float("ttft_p95_ms", true),
            float("ttft_p99_ms", true),
            float("tokens_in", false),
            float("tokens_out", false),
            float("slo_latency_ms", false),
            float("slo_target", false),
            int("slo_violations"),
            float("violation_ratio", true),
            float("burn_rate", true),
            Field::new("latency_sketch", DataType::Binary, false),
        ]))
    })
    .clone()
}

pub fn to_record_batch(rows: &[LatencyWindowRow]) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let mut sketch = BinaryBuilder::with_capacity(n, n * 256);
    let ints = |get: fn(&LatencyWindowRow) -> i64| int_col(rows.iter().map(get));
    for r in rows {
        sketch.append_value(&r.latency_sketch);
    }
    let f = |get: fn(&LatencyWindowRow) -> f64| float_col(rows.iter().map(|r| Some(get(r))));
    let fo = |get: fn(&LatencyWindowRow) -> Option<f64>| float_col(rows.iter().map(get));
    let columns: Vec<ArrayRef> = vec![
        ts_col(rows.iter().map(|r| r.window_start)),
        ts_col(rows.iter().map(|r| r.window_end)),
        str_col(rows.iter().map(|r| r.service.as_str())),
        ints(|r| r.requests),
        ints(|r| r.errors),
        fo(|r| r.error_ratio),
        f(|r| r.rate_mean_rps),
        f(|r| r.rate_p99_rps),
        fo(|r| r.peak_to_mean),
        fo(|r| r.latency_mean_ms),
        fo(|r| r.latency_max_ms),
        fo(|r| r.latency_q[0]),
        fo(|r| r.latency_q[1]),
        fo(|r| r.latency_q[2]),
        fo(|r| r.latency_q[3]),
        fo(|r| r.latency_q[4]),
        fo(|r| r.ttft_q[0]),
        fo(|r| r.ttft_q[1]),
        fo(|r| r.ttft_q[2]),
        f(|r| r.tokens_in),
        f(|r| r.tokens_out),
        f(|r| r.slo.latency_ms),
        f(|r| r.slo.target),
        ints(|r| r.slo_violations),
        fo(|r| r.violation_ratio),
        fo(|r| r.burn_rate),
        Arc::new(sketch.finish()),
    ];
    RecordBatch::try_new(schema(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::latency_json::RequestValues;
    use crate::latency_store::RequestIn;

    /// 4 requests in a 10 s window: 3 in second 0, 1 in second 5; latencies 100, 100, 300,
    /// 500 ms (SLO 200 ms at 0.9): 2 violations, ratio 0.5, burn 5.
    #[test]
    fn worked_example() {
        let mut a = LatencyAcc::default();
        for (i, (t, l)) in [(0, 100.0), (100, 100.0), (900, 300.0), (5_000, 500.0)]
            .into_iter()
            .enumerate()
        {
            let id = format!("r{i}");
            a.add(&RequestIn {
                values: RequestValues {
                    ts_ms: t,
                    latency_ms: l,
                    ttft_ms: None,
                    error: i == 3,
                    tokens_in: 1.0,
                    tokens_out: 2.0,
                    request_id: id.into(),
                },
                pod: 0,
                slo_latency_ms: 200.0,
            });
        }
        let slo = Slo {
            latency_ms: 200.0,
            target: 0.9,
        };
        let r = LatencyWindowRow::compute(0, 10_000, "svc", &a, slo, &mut Vec::new());
        assert_eq!((r.requests, r.errors, r.error_ratio), (4, 1, Some(0.25)));
        assert_eq!(r.rate_mean_rps, 0.4);
        // seconds [3,0,0,0,0,1,0,0,0,0]: p99 at rank 8.91 of sorted -> 1 + 0.91*2 = 2.82
        assert!((r.rate_p99_rps - 2.82).abs() < 1e-12);
        assert!((r.peak_to_mean.unwrap() - 7.05).abs() < 1e-12);
        assert_eq!(
            (r.latency_mean_ms, r.latency_max_ms),
            (Some(250.0), Some(500.0))
        );
        let p50 = r.latency_q[0].unwrap();
        assert!((p50 - 100.0).abs() / 100.0 <= 0.01, "{p50}");
        assert_eq!(r.ttft_q, [None, None, None]);
        assert_eq!((r.slo_violations, r.violation_ratio), (2, Some(0.5)));
        assert!((r.burn_rate.unwrap() - 5.0).abs() < 1e-9);
        assert_eq!((r.tokens_in, r.tokens_out), (4.0, 8.0));
        assert!(!r.latency_sketch.is_empty());
    }
}
