//! Engine-level tests of windows, watermarks, lateness, counters and determinism.

use gpuledger_engine::config::AggregationConfig;
use gpuledger_engine::custom_agg::Reducer;
use gpuledger_engine::{
    Closed, Engine, EngineConfig, EngineError, MessageFormat, Offsets, Provenance, WindowSpec,
};

const GR: &str = "DCGM_FI_PROF_GR_ENGINE_ACTIVE";
/// 2026-11-28T12:00:00Z
const T0: i64 = 1_795_867_200;

fn msg(s: i64, name: &str, value: &str, uuid: &str, pod: &str) -> String {
    let t = T0 + s;
    let (h, m, sec) = ((t / 3600) % 24, (t / 60) % 60, t % 60);
    format!(
        r#"{{"timestamp":"2026-11-28T{h:02}:{m:02}:{sec:02}Z","value":"{value}","name":"{name}","labels":{{"UUID":"{uuid}","gpu":"0","modelName":"NVIDIA H100 80GB HBM3","Hostname":"h1","namespace":"ns","pod":"{pod}","container":"c"}}}}"#
    )
}

fn push(e: &mut Engine, msgs: &[String], partition: i32, first: i64) {
    let prov = Provenance {
        source: "test",
        partition,
        offsets: Offsets::From(first),
        received_at: None,
    };
    e.push_messages(MessageFormat::PromJson, msgs, prov);
}

fn engine(windows: Vec<WindowSpec>) -> Engine {
    Engine::new(EngineConfig {
        windows,
        ..EngineConfig::default()
    })
    .unwrap()
}

#[test]
fn tumbling_windows_close_on_watermark_and_finish() {
    let mut e = engine(vec![WindowSpec::tumbling(60)]);
    let msgs: Vec<String> = (0..90).map(|s| msg(s, GR, "0.5", "G1", "p")).collect();
    push(&mut e, &msgs, 0, 0);
    // max ts 12:01:29, lateness 30 s: watermark 12:00:59 < 12:01:00, nothing closes.
    assert!(e.poll().gpu.is_empty());
    push(&mut e, &[msg(90, GR, "0.5", "G1", "p")], 0, 90);
    let rows = e.poll().gpu;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].samples, 60);
    assert_eq!(rows[0].busy_gpu_s, 30.0);
    let rest = e.finish().gpu;
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].samples, 31);
    assert!(e.stats().reconciles());
    assert_eq!(e.stats().aggregated, 91);
    assert_eq!(e.stats().windows_emitted, 2);
}

#[test]
fn late_duplicate_blank_unknown_and_dead_are_all_counted() {
    let mut e = engine(vec![WindowSpec::tumbling(60)]);
    let msgs = vec![
        msg(0, GR, "0.5", "G1", "p"),
        msg(0, GR, "0.5", "G1", "p"),
        msg(1, "DCGM_FI_DEV_MEMORY_TEMP", "50", "G1", "p"),
        msg(2, GR, "9223372036854775794", "G1", "p"),
        msg(3, GR, "1.5", "G1", "p"),
        "not json".to_string(),
        msg(0, GR, "0.5", "G1", "p").replace("2026-11-28", "1999-12-31"),
        msg(200, GR, "0.5", "G1", "p"),
    ];
    push(&mut e, &msgs, 0, 100);
    assert_eq!(e.poll().gpu.len(), 1);
    push(&mut e, &[msg(5, GR, "0.5", "G1", "p")], 0, 108);
    let s = e.stats();
    assert_eq!(s.consumed, 9);
    assert_eq!(
        (
            s.aggregated,
            s.skipped_duplicate,
            s.skipped_unknown_field,
            s.skipped_blank
        ),
        (2, 1, 1, 1)
    );
    assert_eq!((s.late, s.dead), (1, 3));
    assert!(s.reconciles());
    let dead = e.take_dead_letters();
    assert_eq!(
        dead.iter().map(|d| d.offset).collect::<Vec<_>>(),
        vec![104, 105, 106]
    );
    assert!(dead[2].reason.contains("before 2000"), "{}", dead[2].reason);
    assert_eq!(dead[1].raw, b"not json");
    let late = e.take_late_events();
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].offset, 108);
    assert_eq!(late[0].window_end - late[0].window_start, 60_000);
    // watermark 12:02:50, window ended 12:01:00
    assert_eq!(late[0].lateness_s, 110.0);
}

#[test]
fn far_future_and_oversized_messages_are_dead() {
    let mut e = Engine::new(EngineConfig {
        max_message_bytes: 1000,
        ..EngineConfig::default()
    })
    .unwrap();
    let big = format!("{}{}", msg(0, GR, "0.5", "G1", "p"), " ".repeat(2000));
    let future = msg(0, GR, "0.5", "G1", "p").replace("2026-11-28", "2999-11-28");
    push(&mut e, &[big, future], 0, 0);
    let dead = e.take_dead_letters();
    assert!(dead[0].reason.contains("max_message_bytes"));
    assert!(dead[1].reason.contains("max_future_s"));
}

fn rows_key(e: &Engine, c: &Closed) -> Vec<(i64, i64, String, i64, u64, u64)> {
    c.gpu
        .iter()
        .map(|r| {
            (
                r.window_start,
                r.window_end,
                e.series().get(r.series).gpu_uuid.to_string(),
                r.samples,
                r.busy_gpu_s.to_bits(),
                r.util_p95.unwrap_or(-1.0).to_bits(),
            )
        })
        .collect()
}

#[test]
fn order_does_not_change_results_with_several_window_families() {
    let specs = vec![
        WindowSpec::tumbling(60),
        WindowSpec::tumbling(300),
        WindowSpec::hopping(120, 30),
    ];
    let mut msgs: Vec<String> = (0..600)
        .flat_map(|s| {
            [
                msg(s, GR, &format!("{}", (s % 7) as f64 / 10.0), "G1", "p"),
                msg(s, "DCGM_FI_DEV_GPU_UTIL", "40", "G2", ""),
            ]
        })
        .collect();
    let mut a = engine(specs.clone());
    push(&mut a, &msgs, 0, 0);
    let ra = a.finish();
    msgs.reverse();
    let mut b = engine(specs);
    push(&mut b, &msgs, 0, 0);
    let rb = b.finish();
    // 10 one-minute + 2 five-minute + hopping 2-minute windows every 30 s: starts from
    // 11:58:30 to 12:09:30 = 23 windows; per GPU.
    assert_eq!(ra.gpu.len(), 2 * (10 + 2 + 23));
    assert_eq!(rows_key(&a, &ra), rows_key(&b, &rb));
    assert_eq!(ra.pool.len(), rb.pool.len());
    // after the end, at most the last pane per series stays (for counter boundaries)
    assert!(b.open_series_panes() <= 2);
}

#[test]
fn hopping_windows_hold_the_union_of_their_panes() {
    let mut e = engine(vec![WindowSpec::hopping(120, 60)]);
    let msgs: Vec<String> = (0..180).map(|s| msg(s, GR, "1", "G1", "p")).collect();
    push(&mut e, &msgs, 0, 0);
    let rows = e.finish().gpu;
    let samples: Vec<(i64, i64)> = rows
        .iter()
        .map(|r| ((r.window_start / 1000) - T0, r.samples))
        .collect();
    assert_eq!(samples, vec![(-60, 60), (0, 120), (60, 120), (120, 60)]);
}

#[test]
fn idle_partition_stops_holding_back() {
    let mut e = engine(vec![WindowSpec::tumbling(60)]);
    push(&mut e, &[msg(0, GR, "0.1", "G1", "p")], 1, 0);
    push(&mut e, &[msg(200, GR, "0.1", "G2", "p")], 0, 0);
    assert!(e.poll().gpu.is_empty());
    e.mark_idle("test", 1);
    assert_eq!(e.poll().gpu.len(), 1);
}

#[test]
fn explicit_advance_closes_windows_without_data() {
    let mut e = engine(vec![WindowSpec::tumbling(60)]);
    push(&mut e, &[msg(0, GR, "0.1", "G1", "p")], 0, 0);
    assert!(e.poll().gpu.is_empty());
    assert_eq!(e.advance_to((T0 + 60) * 1000).gpu.len(), 1);
    // the window is final: an event for it now is late
    push(&mut e, &[msg(1, GR, "0.1", "G1", "p")], 0, 1);
    assert_eq!(e.stats().late, 1);
    assert!(e.finish().gpu.is_empty());
}

#[test]
fn partially_late_event_still_counts_in_the_longer_window() {
    let mut e = engine(vec![WindowSpec::tumbling(60), WindowSpec::tumbling(3600)]);
    push(&mut e, &[msg(0, GR, "0.1", "G1", "p")], 0, 0);
    assert_eq!(e.advance_to((T0 + 60) * 1000).gpu.len(), 1);
    push(&mut e, &[msg(1, GR, "0.3", "G1", "p")], 0, 1);
    assert_eq!(e.stats().aggregated, 2);
    assert_eq!(e.stats().late, 0);
    assert_eq!(e.take_late_events().len(), 1);
    let rows = e.finish().gpu;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].samples, 2);
}

#[test]
fn custom_aggregation_groups_by_an_extra_label_and_field() {
    let mut e = Engine::new(EngineConfig {
        aggregations: vec![AggregationConfig {
            name: "tensor".into(),
            field: "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE".into(),
            reducer: Reducer::Max,
            group_by: vec!["Hostname".into(), "pod".into()],
        }],
        ..EngineConfig::default()
    })
    .unwrap();
    let msgs: Vec<String> = (0..60)
        .map(|s| {
            msg(
                s,
                "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
                &format!("0.{s:02}"),
                "G1",
                "p",
            )
        })
        .collect();
    push(&mut e, &msgs, 0, 0);
    let c = e.finish();
    assert_eq!(c.custom.len(), 1);
    assert_eq!(c.custom[0].len(), 1);
    assert_eq!(
        c.custom[0][0].group,
        vec!["h1".to_string(), "p".to_string()]
    );
    assert_eq!(c.custom[0][0].value, Some(0.59));
    assert_eq!(c.custom[0][0].samples, 60);
    // the field is aggregated, not an unknown-field skip
    assert_eq!(e.stats().aggregated, 60);
}

#[test]
fn invalid_configuration_names_the_key() {
    let key_of = |cfg: EngineConfig| match Engine::new(cfg).err().unwrap() {
        EngineError::Config { key, problem } => (key, problem),
        other => panic!("not a configuration error: {other}"),
    };
    let (key, _) = key_of(EngineConfig {
        windows: vec![],
        ..Default::default()
    });
    assert_eq!(key, "engine.window_s");
    let (key, _) = key_of(EngineConfig {
        sample_interval_s: 0.0,
        ..Default::default()
    });
    assert_eq!(key, "engine.sample_interval_s");
    let (key, problem) = key_of(EngineConfig {
        windows: vec![WindowSpec::hopping(60, 120)],
        ..Default::default()
    });
    assert_eq!(key, "engine.window_s");
    assert!(problem.contains("slide"), "{problem}");
    // A key holding ": " stays whole: the error is typed, not a message to split.
    let mut attribution = gpuledger_engine::Attribution::default();
    attribution.prices.insert("A100: SXM".into(), -1.0);
    let (key, problem) = key_of(EngineConfig {
        attribution,
        ..Default::default()
    });
    assert_eq!(key, "prices.\"A100: SXM\"");
    assert_eq!(problem, "must be a finite number >= 0, got -1");
}

/// Known label sets are skipped, not re-read: the outcome of every message must still be
/// exactly what a fresh engine (nothing cached) decides for it alone.
#[test]
fn label_cache_never_changes_an_outcome() {
    let good = msg(0, GR, "0.5", "G1", "p");
    let labels_at = good.find("\"labels\":").unwrap() + "\"labels\":".len();
    let labels = &good[labels_at..good.len() - 1];
    let head = &good[..labels_at];
    let variants = [
        good.clone(),
        format!("{head}{labels} }}"),
        format!("{head}{labels},\"x\":1}}"),
        format!("{head}{labels}}}}}"),
        format!("{head}{labels}"),
        format!("{head}{labels},}}"),
        good.replace("\"value\":\"0.5\"", "\"value\":\"1.5\""),
        good.replace("\"name\":", "\"nome\":"),
        format!("{{\"labels\":{labels},\"timestamp\":\"2026-11-28T12:00:03Z\",\"value\":\"0.1\",\"name\":\"{GR}\"}}"),
    ];
    let outcome = |e: &mut Engine, m: &str| {
        let before = e.stats();
        push(e, &[m.to_string()], 0, 0);
        let after = e.stats();
        (
            after.aggregated - before.aggregated,
            after.dead - before.dead,
            after.skipped_unknown_field - before.skipped_unknown_field,
        )
    };
    for (i, m) in variants.iter().enumerate() {
        let m = m.replace("12:00:00", "12:00:02");
        let mut warm = engine(vec![WindowSpec::tumbling(60)]);
        assert_eq!(outcome(&mut warm, &good), (1, 0, 0));
        let mut cold = engine(vec![WindowSpec::tumbling(60)]);
        assert_eq!(
            outcome(&mut warm, &m),
            outcome(&mut cold, &m),
            "variant {i}: {m}"
        );
        let samples = |e: &mut Engine| e.finish().gpu.iter().map(|r| r.samples).sum::<i64>();
        assert_eq!(
            samples(&mut warm),
            1 + samples(&mut cold),
            "variant {i}: {m}"
        );
    }
}

/// The newest event's pane lies beyond the watermark's window; an event within the allowed
/// lateness then lands in the window in between. That window must still be emitted (an
/// earlier version moved its cursor to the next pane holding data and skipped it).
#[test]
fn a_window_between_the_watermark_and_the_next_pane_is_not_skipped() {
    let mut e = Engine::new(EngineConfig {
        windows: vec![WindowSpec::tumbling(10)],
        allowed_lateness_ms: 5_000,
        ..EngineConfig::default()
    })
    .unwrap();
    push(&mut e, &[msg(1, GR, "0.5", "A", "p")], 0, 0);
    assert!(e.poll().gpu.is_empty());
    // t=21: the watermark is 16 s, [0, 10) closes, the next pane holding data is [20, 30).
    push(&mut e, &[msg(21, GR, "0.5", "A", "p")], 0, 1);
    assert_eq!(e.poll().gpu.len(), 1);
    // t=18 is 3 s behind: within the lateness, on time for [10, 20).
    push(&mut e, &[msg(18, GR, "0.5", "A", "p")], 0, 2);
    assert!(e.poll().gpu.is_empty());
    push(&mut e, &[msg(40, GR, "0.5", "A", "p")], 0, 3);
    let starts: Vec<i64> = e
        .poll()
        .gpu
        .iter()
        .map(|r| (r.window_start / 1000) - T0)
        .collect();
    assert_eq!(starts, vec![10, 20]);
    assert_eq!(e.stats().late, 0);
}
