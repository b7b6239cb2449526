//! The service cost join with figures worked out by hand: a pod serving two services, a GPU
//! without a pod, a service without GPUs, and a pod without requests mapped by pattern.

use gpuledger_engine::services::{PodRule, Services};
use gpuledger_engine::{Attribution, Engine, EngineConfig, MessageFormat, Offsets, Provenance};

const T0: i64 = 1_795_867_200; // 2026-11-28T12:00:00Z

fn gpu(s: i64, uuid: &str, pod: &str, u: f64) -> String {
    let t = T0 + s;
    format!(
        r#"{{"timestamp":"2026-11-28T12:{:02}:{:02}Z","value":"{u}","name":"DCGM_FI_PROF_GR_ENGINE_ACTIVE","labels":{{"UUID":"{uuid}","modelName":"H100","namespace":"{ns}","pod":"{pod}"}}}}"#,
        (t / 60) % 60,
        t % 60,
        ns = if pod.is_empty() { "" } else { "n" },
    )
}

fn req(i: usize, service: &str, pod: &str, latency: f64) -> String {
    format!(
        r#"{{"ts":{}.5,"service":"{service}","namespace":"n","pod":"{pod}","latency_ms":{latency},"tokens_in":10,"tokens_out":10,"request_id":"r{i}"}}"#,
        T0 + (i as i64 % 60)
    )
}

fn push(e: &mut Engine, format: MessageFormat, msgs: &[String], source: &str) {
    let prov = Provenance {
        source,
        partition: 0,
        offsets: Offsets::From(0),
        received_at: None,
    };
    e.push_messages(format, msgs, prov);
}

#[test]
fn hand_worked_join() {
    let mut attribution = Attribution::default();
    attribution.prices.insert("H100".into(), 3.6); // 0.001 $ per GPU-second
    let services = Services {
        pod_rules: vec![PodRule {
            namespace: String::new(),
            pattern: "p4*".into(),
            service: "batch".into(),
        }],
        ..Services::default()
    };
    let mut e = Engine::new(EngineConfig {
        attribution,
        services,
        ..EngineConfig::default()
    })
    .unwrap();
    let mut gpus = Vec::new();
    for s in 0..60 {
        gpus.push(gpu(s, "G1", "p1", 0.5));
        gpus.push(gpu(s, "G2", "p2", 0.25));
        gpus.push(gpu(s, "G3", "", 0.0));
        gpus.push(gpu(s, "G4", "p4-batch", 1.0));
    }
    push(&mut e, MessageFormat::PromJson, &gpus, "gpu-telemetry");
    let mut reqs = Vec::new();
    let mut i = 0;
    for (service, pod, n, latency) in [
        ("A", "p1", 30, 100.0),
        ("A", "p2", 10, 100.0),
        ("B", "p2", 10, 500.0),
        ("C", "px", 5, 50.0),
    ] {
        for _ in 0..n {
            reqs.push(req(i, service, pod, latency));
            i += 1;
        }
    }
    push(&mut e, MessageFormat::LatencyJson, &reqs, "request-latency");
    let closed = e.finish();
    assert!(e.stats().reconciles());
    assert_eq!(e.stats().aggregated, 240 + 55);

    let rows = &closed.service_cost;
    let names: Vec<&str> = rows.iter().map(|r| r.service.as_str()).collect();
    assert_eq!(names, ["A", "B", "C", "batch"]);
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;

    let a = &rows[0];
    assert_eq!((a.requests, a.pods, a.gpus), (40, 2, 2));
    assert!(close(a.gpu_s, 90.0) && close(a.busy_gpu_s, 37.5) && close(a.cost_usd, 0.09));
    assert!(close(a.provisioned_gpus, 1.5) && close(a.demand_mean_gpus, 0.625));
    assert!(close(a.headroom_gpus, 0.875) && close(a.headroom_cost_usd, 0.0525));
    assert!(close(a.cost_per_1k_requests_usd.unwrap(), 2.25));
    assert!(close(a.cost_per_1m_tokens_usd.unwrap(), 112.5));
    assert_eq!(a.slo_met, Some(true));

    let b = &rows[1];
    assert_eq!((b.requests, b.pods, b.gpus), (10, 1, 1));
    assert!(close(b.gpu_s, 30.0) && close(b.busy_gpu_s, 7.5) && close(b.cost_usd, 0.03));
    assert!(close(b.headroom_gpus, 0.375) && close(b.headroom_cost_usd, 0.0225));
    assert!(close(b.cost_per_1k_requests_usd.unwrap(), 3.0));
    assert_eq!(b.slo_met, Some(false));

    let c = &rows[2];
    assert_eq!((c.requests, c.pods, c.gpus), (5, 1, 0));
    assert!(close(c.gpu_s, 0.0) && close(c.cost_usd, 0.0) && close(c.headroom_cost_usd, 0.0));
    assert_eq!(c.cost_per_1k_requests_usd, Some(0.0));
    assert_eq!(c.slo_met, Some(true));

    let batch = &rows[3];
    assert_eq!((batch.requests, batch.pods, batch.gpus), (0, 1, 1));
    assert!(
        close(batch.gpu_s, 60.0) && close(batch.busy_gpu_s, 60.0) && close(batch.cost_usd, 0.06)
    );
    assert!(close(batch.headroom_gpus, 0.0));
    assert_eq!(
        (
            batch.cost_per_1k_requests_usd,
            batch.cost_per_1m_tokens_usd,
            batch.slo_met
        ),
        (None, None, None)
    );

    // latency_windows: one row per service with requests
    let lat: Vec<(&str, i64)> = closed
        .latency
        .iter()
        .map(|r| (r.service.as_str(), r.requests))
        .collect();
    assert_eq!(lat, [("A", 40), ("B", 10), ("C", 5)]);
    let b_lat = &closed.latency[1];
    assert_eq!(
        (b_lat.slo_violations, b_lat.violation_ratio),
        (10, Some(1.0))
    );
    assert!(close(b_lat.burn_rate.unwrap(), 20.0));
}

#[test]
fn a_request_without_service_uses_the_pod_rules_or_is_dead() {
    let services = Services {
        pod_rules: vec![PodRule {
            namespace: "n".into(),
            pattern: "vllm-*".into(),
            service: "chat".into(),
        }],
        ..Services::default()
    };
    let mut e = Engine::new(EngineConfig {
        services,
        ..EngineConfig::default()
    })
    .unwrap();
    let msgs = [
        format!(r#"{{"ts":{T0},"namespace":"n","pod":"vllm-0","latency_ms":10}}"#),
        format!(r#"{{"ts":{T0},"namespace":"n","pod":"other","latency_ms":10}}"#),
        format!(r#"{{"ts":{T0},"service":"s","latency_ms":-1}}"#),
        format!(r#"{{"ts":{T0},"service":"s","latency_ms":5,"request_id":"x"}}"#),
        format!(r#"{{"ts":{T0},"service":"s","latency_ms":5,"request_id":"x"}}"#),
    ];
    push(&mut e, MessageFormat::LatencyJson, &msgs, "lat");
    let closed = e.finish();
    let s = e.stats();
    assert_eq!((s.aggregated, s.dead, s.skipped_duplicate), (2, 2, 1));
    let dead = e.take_dead_letters();
    assert!(dead[0].reason.contains("matches no services.pods rule"));
    assert!(dead[1].reason.contains("latency_ms -1"));
    let svc: Vec<&str> = closed.latency.iter().map(|r| r.service.as_str()).collect();
    assert_eq!(svc, ["chat", "s"]);
}

#[test]
fn a_pod_that_moves_to_another_service_is_charged_to_each_in_its_own_window() {
    let mut attribution = Attribution::default();
    attribution.prices.insert("H100".into(), 3.6);
    let mut e = Engine::new(EngineConfig {
        attribution,
        ..EngineConfig::default()
    })
    .unwrap();
    // G1 in pod p1 at u = 0.5 for two minutes; p1 serves A in the first minute, B in the second.
    let gpus: Vec<String> = (0..120).map(|s| gpu(s, "G1", "p1", 0.5)).collect();
    push(&mut e, MessageFormat::PromJson, &gpus, "gpu-telemetry");
    let reqs: Vec<String> = (0..120)
        .map(|i| {
            let service = if i < 60 { "A" } else { "B" };
            format!(
                r#"{{"ts":{},"service":"{service}","namespace":"n","pod":"p1","latency_ms":10}}"#,
                T0 + i
            )
        })
        .collect();
    push(&mut e, MessageFormat::LatencyJson, &reqs, "request-latency");
    let rows = e.finish().service_cost;
    let got: Vec<(i64, &str, i64, f64, f64)> = rows
        .iter()
        .map(|r| {
            (
                (r.window_start / 1000 - T0) / 60,
                r.service.as_str(),
                r.requests,
                r.gpu_s,
                r.cost_usd,
            )
        })
        .collect();
    // each minute: 60 GPU-seconds at 0.001 $/s, wholly to that minute's service
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].0, got[0].1, got[0].2), (0, "A", 60));
    assert_eq!((got[1].0, got[1].1, got[1].2), (1, "B", 60));
    for r in &got {
        assert!((r.3 - 60.0).abs() < 1e-9 && (r.4 - 0.06).abs() < 1e-12);
    }
}
