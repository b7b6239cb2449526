//! Wide JSON, gpuledger's compact form: one message per GPU per sample, several readings
//! per message (docs/inputs.md 1b).
//!
//! `{"ts":1764331201.0,"gpu":"GPU-...","gpu_index":3,"host":"gpu-node-17",...,"gr_engine_active":0.734,"power_w":512.5}`
//!
//! Rules (docs/decoders.md):
//! - `ts`: Unix seconds (float) or integer milliseconds above 1e11 (a JSON number or a
//!   string holding one), or an RFC 3339 string. Required.
//! - `gpu`: the UUID, a non-empty string. Required.
//! - `gpu_index`, `gpu_instance_id` (MIG): a string, or a number kept as its JSON text.
//! - `host` (or `hostname`; `host` wins when both are non-empty), `model`, `namespace`,
//!   `pod`, `container`: strings. `null` means absent for every label key.
//! - Metric keys in their default units, never rescaled: `gr_engine_active`, `gpu_util`,
//!   `sm_active`, `fb_used_mib`, `power_w`, `energy_mj`. A key that is a registered field's
//!   DCGM name (`DCGM_FI_DEV_GPU_UTIL`, ...) is a reading in the source unit and is rescaled
//!   by the field's unit override. Values: JSON numbers, strings holding numbers (`"NaN"`
//!   too: the engine judges values), or `null` (absent, skipped). Anything else is an error.
//! - A configured extra label: a string, or a number kept as its JSON text.
//! - Any other key with a JSON number value is an unknown metric: one `unknown_field()` per
//!   such key. Other unknown keys are ignored.
//! - Every occurrence of a key is checked; for a repeated key the last one counts (two keys
//!   for the same field, like `power_w` and `DCGM_FI_DEV_POWER_USAGE`, count as repeats).
//!
//! Readings (in key order) and unknown metrics reach the sink only once the whole message is
//! known to be good.

use super::decimal::parse_f64;
use super::json_scan::{Scanner, Tok};
use super::units::to_default_unit;
use super::{DecodeContext, Reading, ReadingSink};
use crate::fields::FieldId;
use crate::series::{GpuLabels, MAX_EXTRA_LABELS};
use crate::time::{parse_rfc3339_ms, unix_number_to_ms, EpochMs};

/// Metric keys whose unit is in their name: `(key, field)`.
pub const NAMED_METRICS: [(&str, FieldId); 6] = [
    ("gr_engine_active", FieldId::GR_ENGINE_ACTIVE),
    ("gpu_util", FieldId::GPU_UTIL),
    ("sm_active", FieldId::SM_ACTIVE),
    ("fb_used_mib", FieldId::FB_USED),
    ("power_w", FieldId::POWER_USAGE),
    ("energy_mj", FieldId::TOTAL_ENERGY),
];

/// Readings of one message; inline for the usual handful, spilling beyond that.
struct Values {
    inline: [(FieldId, f64); 16],
    len: usize,
    spill: Vec<(FieldId, f64)>,
}

impl Values {
    fn new() -> Values {
        Values {
            inline: [(FieldId(0), 0.0); 16],
            len: 0,
            spill: Vec::new(),
        }
    }

    /// Sets `field`, replacing an earlier value of it.
    fn set(&mut self, field: FieldId, v: f64) {
        if let Some(e) = self.inline[..self.len]
            .iter_mut()
            .chain(self.spill.iter_mut())
            .find(|e| e.0 == field)
        {
            e.1 = v;
        } else if self.len < self.inline.len() {
            self.inline[self.len] = (field, v);
            self.len += 1;
        } else {
            self.spill.push((field, v));
        }
    }

    fn iter(&self) -> impl Iterator<Item = &(FieldId, f64)> {
        self.inline[..self.len].iter().chain(self.spill.iter())
    }
}

/// A metric value: number, numeric string, or null (`None`, skipped).
fn metric_value(key: &str, tok: Tok<'_>) -> Result<Option<f64>, String> {
    match tok {
        Tok::Null => Ok(None),
        // The scanner already rejected numbers that overflow an f64.
        Tok::Num(n) => n
            .value()
            .map(Some)
            .ok_or_else(|| format!("{key}: {} is not a number", n.text())),
        Tok::Str(s) => {
            let s = s.value();
            s.trim()
                .parse()
                .map(Some)
                .map_err(|_| format!("{key}: {s:?} is not a number"))
        }
        t => Err(format!("{key} is {}, expected a number", t.kind())),
    }
}

/// Checks a string label: a string, or null (absent).
fn string_label<'a>(key: &str, tok: Tok<'a>) -> Result<Tok<'a>, String> {
    match tok {
        Tok::Str(_) | Tok::Null => Ok(tok),
        t => Err(format!("{key} is {}, expected a string", t.kind())),
    }
}

/// Checks a label that may also be a number, kept as its JSON text (`gpu_index: 3` -> "3").
fn number_or_string_label<'a>(key: &str, tok: Tok<'a>) -> Result<Tok<'a>, String> {
    match tok {
        Tok::Str(_) | Tok::Num(_) | Tok::Null => Ok(tok),
        t => Err(format!(
            "{key} is {}, expected a string or a number",
            t.kind()
        )),
    }
}

/// The timestamp: Unix seconds / milliseconds as a number or numeric string, or RFC 3339
/// (shared by the request-event decoder).
pub(crate) fn timestamp(tok: Tok<'_>) -> Result<EpochMs, String> {
    match tok {
        Tok::Num(n) => n
            .value()
            .and_then(unix_number_to_ms)
            .ok_or_else(|| format!("ts {} is not a valid Unix time", n.text())),
        Tok::Str(s) => {
            let s = s.value();
            parse_rfc3339_ms(&s)
                .or_else(|| parse_f64(s.trim()).and_then(unix_number_to_ms))
                .ok_or_else(|| format!("ts {s:?} is neither Unix time nor RFC 3339"))
        }
        t => Err(format!(
            "ts is {}, expected Unix seconds or an RFC 3339 string",
            t.kind()
        )),
    }
}

/// Labels as last seen in the message, type-checked, not yet decoded.
#[derive(Default)]
struct Labels<'a> {
    uuid: Tok<'a>,
    gpu_index: Tok<'a>,
    gpu_instance_id: Tok<'a>,
    host: Tok<'a>,
    hostname: Tok<'a>,
    model: Tok<'a>,
    namespace: Tok<'a>,
    pod: Tok<'a>,
    container: Tok<'a>,
    extra: [Tok<'a>; MAX_EXTRA_LABELS],
}

/// Decodes one message into `sink`; `Err` is the dead-letter reason for the whole message.
pub fn decode(
    bytes: &[u8],
    ctx: &DecodeContext<'_>,
    sink: &mut impl ReadingSink,
) -> Result<(), String> {
    let mut s = Scanner::new(bytes);
    s.open_message()?;
    let mut ts_ms = None;
    let mut l = Labels::default();
    let mut values = Values::new();
    let mut unknown = 0usize;
    let mut first = true;
    while let Some(key) = s.next_key(&mut first)? {
        let tok = s.token(1)?;
        let extra = if ctx.extra_labels.is_empty() {
            None
        } else {
            ctx.extra_slot(&key).filter(|&i| i < MAX_EXTRA_LABELS)
        };
        if let Some(i) = extra {
            l.extra[i] = number_or_string_label(&key, tok)?;
        }
        match &*key {
            "ts" => ts_ms = Some(timestamp(tok)?),
            "gpu" => {
                l.uuid = string_label(&key, tok).map_err(|e| format!("{e} (the GPU UUID)"))?;
            }
            "gpu_index" => l.gpu_index = number_or_string_label(&key, tok)?,
            "gpu_instance_id" => l.gpu_instance_id = number_or_string_label(&key, tok)?,
            "host" => l.host = string_label(&key, tok)?,
            "hostname" => l.hostname = string_label(&key, tok)?,
            "model" => l.model = string_label(&key, tok)?,
            "namespace" => l.namespace = string_label(&key, tok)?,
            "pod" => l.pod = string_label(&key, tok)?,
            "container" => l.container = string_label(&key, tok)?,
            k => {
                if let Some(&(_, field)) = NAMED_METRICS.iter().find(|(name, _)| *name == k) {
                    if let Some(v) = metric_value(k, tok)? {
                        values.set(field, v);
                    }
                } else if let Some(field) = ctx.fields.lookup(k) {
                    if let Some(v) = metric_value(k, tok)? {
                        values.set(field, to_default_unit(ctx.fields, field, v));
                    }
                } else if extra.is_none() && matches!(tok, Tok::Num(_)) {
                    unknown += 1;
                }
            }
        }
    }
    s.finish()?;

    let ts_ms = ts_ms.ok_or("missing ts")?;
    let uuid = l.uuid.text();
    if uuid.is_empty() {
        return Err("missing gpu (the GPU UUID)".to_string());
    }
    let (host, hostname) = (l.host.text(), l.hostname.text());
    let (gpu_index, gpu_instance_id) = (l.gpu_index.text(), l.gpu_instance_id.text());
    let (model, namespace) = (l.model.text(), l.namespace.text());
    let (pod, container) = (l.pod.text(), l.container.text());
    let extra_values = l.extra.map(Tok::text);
    let mut extra = [""; MAX_EXTRA_LABELS];
    for (e, v) in extra.iter_mut().zip(&extra_values) {
        *e = v;
    }
    let labels = GpuLabels {
        uuid: &uuid,
        gpu_instance_id: &gpu_instance_id,
        gpu_index: &gpu_index,
        hostname: if host.is_empty() { &hostname } else { &host },
        model_name: &model,
        namespace: &namespace,
        pod: &pod,
        container: &container,
        extra,
    };
    for &(field, value) in values.iter() {
        sink.reading(Reading {
            ts_ms,
            field,
            value,
            labels,
        });
    }
    for _ in 0..unknown {
        sink.unknown_field();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::test_support::{Collect, Rng};
    use crate::fields::{FieldRegistry, Unit};

    const SPEC_EXAMPLE: &str = r#"{"ts":1764331201.0,"gpu":"GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e52","gpu_index":3,"host":"gpu-node-17","model":"NVIDIA H100 80GB HBM3","namespace":"team-search","pod":"ranker-7f9c-2","container":"main","gr_engine_active":0.734,"fb_used_mib":40211,"power_w":512.5}"#;

    fn run_with(s: &[u8], fields: &FieldRegistry, extra: &[&str]) -> Result<Collect, String> {
        let extra: Vec<Box<str>> = extra.iter().map(|&e| e.into()).collect();
        let ctx = DecodeContext {
            fields,
            extra_labels: &extra,
        };
        let mut c = Collect::default();
        decode(s, &ctx, &mut c).map(|_| c)
    }

    fn run(s: &str) -> Result<Collect, String> {
        run_with(s.as_bytes(), &FieldRegistry::default(), &[])
    }

    /// `(field, value)` of each reading.
    fn values(c: &Collect) -> Vec<(FieldId, f64)> {
        c.got.iter().map(|g| (g.field, g.value)).collect()
    }

    /// A message with the given extra members after a minimal valid head.
    fn with(members: &str) -> String {
        format!(r#"{{"ts":1764331201.5,"gpu":"GPU-1"{members}}}"#)
    }

    #[test]
    fn decodes_the_spec_example() {
        let c = run(SPEC_EXAMPLE).unwrap();
        assert_eq!(
            values(&c),
            [
                (FieldId::GR_ENGINE_ACTIVE, 0.734),
                (FieldId::FB_USED, 40211.0),
                (FieldId::POWER_USAGE, 512.5)
            ]
        );
        assert_eq!(c.unknown, 0);
        for g in &c.got {
            assert_eq!(g.ts_ms, 1_764_331_201_000);
            assert_eq!(
                g.labels,
                [
                    "GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e52",
                    "",
                    "3",
                    "gpu-node-17",
                    "NVIDIA H100 80GB HBM3",
                    "team-search",
                    "ranker-7f9c-2",
                    "main"
                ]
            );
        }
    }

    #[test]
    fn timestamps_seconds_millis_strings() {
        for (ts, want) in [
            ("1764331201.532", 1_764_331_201_532),
            ("1764331201", 1_764_331_201_000),
            ("1764331201532", 1_764_331_201_532),
            ("\"1764331201.25\"", 1_764_331_201_250),
            ("\"2026-11-28T12:00:01Z\"", 1_795_867_201_000),
            ("\"2026-11-28T12:00:01.5+00:00\"", 1_795_867_201_500),
        ] {
            let m = format!(r#"{{"gpu":"G","power_w":1,"ts":{ts}}}"#);
            assert_eq!(run(&m).unwrap().got[0].ts_ms, want, "{ts}");
        }
        for (ts, want) in [
            ("-5", "ts -5 is not a valid Unix time"),
            ("\"noon\"", "ts \"noon\" is neither Unix time nor RFC 3339"),
            (
                "null",
                "ts is null, expected Unix seconds or an RFC 3339 string",
            ),
            ("[1]", "ts is an array"),
        ] {
            let m = format!(r#"{{"gpu":"G","ts":{ts}}}"#);
            let e = run(&m).unwrap_err();
            assert!(e.starts_with(want), "{e:?} should start with {want:?}");
        }
        assert_eq!(run(r#"{"gpu":"G","power_w":1}"#).unwrap_err(), "missing ts");
    }

    #[test]
    fn all_named_metrics_unscaled_dcgm_names_scaled() {
        let mut f = FieldRegistry::default();
        f.set_source_unit("DCGM_FI_DEV_GPU_UTIL", Unit::Ratio)
            .unwrap();
        f.set_source_unit("DCGM_FI_DEV_FB_USED", Unit::Bytes)
            .unwrap();
        f.set_source_unit("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", Unit::Joule)
            .unwrap();
        let m = with(
            r#","gr_engine_active":0.5,"gpu_util":87,"sm_active":0.25,"fb_used_mib":1024,"power_w":300,"energy_mj":5000"#,
        );
        let c = run_with(m.as_bytes(), &f, &[]).unwrap();
        assert_eq!(
            values(&c),
            [
                (FieldId::GR_ENGINE_ACTIVE, 0.5),
                (FieldId::GPU_UTIL, 87.0),
                (FieldId::SM_ACTIVE, 0.25),
                (FieldId::FB_USED, 1024.0),
                (FieldId::POWER_USAGE, 300.0),
                (FieldId::TOTAL_ENERGY, 5000.0)
            ]
        );
        let m = with(
            r#","DCGM_FI_DEV_GPU_UTIL":0.87,"DCGM_FI_DEV_FB_USED":2097152,"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION":"5""#,
        );
        let c = run_with(m.as_bytes(), &f, &[]).unwrap();
        assert_eq!(
            values(&c),
            [
                (FieldId::GPU_UTIL, 87.0),
                (FieldId::FB_USED, 2.0),
                (FieldId::TOTAL_ENERGY, 5000.0)
            ]
        );
        // Registered custom fields by their DCGM name, kept as sent.
        let tensor = f.register("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE");
        let c = run_with(
            with(r#","DCGM_FI_PROF_PIPE_TENSOR_ACTIVE":0.3"#).as_bytes(),
            &f,
            &[],
        )
        .unwrap();
        assert_eq!(values(&c), [(tensor, 0.3)]);
    }

    #[test]
    fn metric_values_numbers_strings_null_and_specials() {
        let c = run(&with(r#","power_w":"512.5","gpu_util":null,"fb_used_mib":" 7 ","gr_engine_active":"NaN","sm_active":"+Inf","energy_mj":9223372036854775794"#)).unwrap();
        let v = values(&c);
        assert_eq!(v[0], (FieldId::POWER_USAGE, 512.5));
        assert_eq!(v[1], (FieldId::FB_USED, 7.0));
        assert!(v[2].0 == FieldId::GR_ENGINE_ACTIVE && v[2].1.is_nan());
        assert_eq!(v[3], (FieldId::SM_ACTIVE, f64::INFINITY));
        assert_eq!(v[4], (FieldId::TOTAL_ENERGY, 9_223_372_036_854_775_794.0));
        assert_eq!(v.len(), 5);
        for (bad, want) in [
            (r#","power_w":"high""#, "power_w: \"high\" is not a number"),
            (
                r#","power_w":true"#,
                "power_w is a boolean, expected a number",
            ),
            (
                r#","power_w":{"v":1}"#,
                "power_w is an object, expected a number",
            ),
            (
                r#","DCGM_FI_DEV_GPU_UTIL":[1]"#,
                "DCGM_FI_DEV_GPU_UTIL is an array, expected a number",
            ),
            (r#","power_w":1e999"#, "number out of range"),
        ] {
            let e = run(&with(bad)).unwrap_err();
            assert!(e.contains(want), "{e:?} should contain {want:?}");
        }
    }

    #[test]
    fn unknown_numeric_keys_counted_once_each_other_keys_ignored() {
        let c = run(&with(r#","temp_c":45,"fan":12.5,"device":"nvidia3","note":"87","meta":{"a":1},"ok":true,"x":null,"power_w":1"#)).unwrap();
        assert_eq!(
            (values(&c), c.unknown),
            (vec![(FieldId::POWER_USAGE, 1.0)], 2)
        );
        // A message with only unknown metrics is fine; the sink sees no readings.
        let c = run(&with(r#","temp_c":45"#)).unwrap();
        assert_eq!((c.got.len(), c.unknown), (0, 1));
    }

    #[test]
    fn labels_mig_hosts_extras() {
        let m = r#"{"ts":1764331201,"gpu":"GPU-1","gpu_index":"3","gpu_instance_id":2,"hostname":"b","host":"a","model":null,"pod":"p","rack":"r7","slot":12,"power_w":1}"#;
        let c = run_with(
            m.as_bytes(),
            &FieldRegistry::default(),
            &["rack", "slot", "pod", "none"],
        )
        .unwrap();
        let g = &c.got[0];
        assert_eq!(g.labels, ["GPU-1", "2", "3", "a", "", "", "p", ""]);
        assert_eq!(g.extra[..4], ["r7", "12", "p", ""]);
        assert_eq!(
            c.unknown, 0,
            "a numeric extra label is a label, not an unknown metric"
        );
        // `hostname` when `host` is absent or empty; a numeric gpu_index keeps its text.
        let c = run(
            r#"{"ts":1764331201,"gpu":"G","host":"","hostname":"b","gpu_index":7,"power_w":1}"#,
        )
        .unwrap();
        assert_eq!(
            (c.got[0].labels[3].as_str(), c.got[0].labels[2].as_str()),
            ("b", "7")
        );
        for (bad, want) in [
            (r#","pod":5"#, "pod is a number, expected a string"),
            (
                r#","gpu_index":true"#,
                "gpu_index is a boolean, expected a string or a number",
            ),
            (
                r#","rack":{}"#,
                "rack is an object, expected a string or a number",
            ),
        ] {
            let e =
                run_with(with(bad).as_bytes(), &FieldRegistry::default(), &["rack"]).unwrap_err();
            assert_eq!(e, want);
        }
    }

    #[test]
    fn gpu_is_required_and_a_string() {
        assert_eq!(
            run(r#"{"ts":1764331201,"power_w":1}"#).unwrap_err(),
            "missing gpu (the GPU UUID)"
        );
        assert_eq!(
            run(r#"{"ts":1764331201,"gpu":"","power_w":1}"#).unwrap_err(),
            "missing gpu (the GPU UUID)"
        );
        assert_eq!(
            run(r#"{"ts":1764331201,"gpu":3,"power_w":1}"#).unwrap_err(),
            "gpu is a number, expected a string (the GPU UUID)"
        );
    }

    #[test]
    fn repeated_keys_last_wins() {
        let c = run(r#"{"ts":1,"ts":1764331201,"gpu":"A","gpu":"B","power_w":1,"DCGM_FI_DEV_POWER_USAGE":2,"gpu_util":5,"power_w":3}"#).unwrap();
        assert_eq!(
            values(&c),
            [(FieldId::POWER_USAGE, 3.0), (FieldId::GPU_UTIL, 5.0)]
        );
        assert_eq!(
            (c.got[0].ts_ms, c.got[0].labels[0].as_str()),
            (1_764_331_201_000, "B")
        );
        // Every occurrence is checked.
        assert!(run(r#"{"ts":1764331201,"gpu":"A","power_w":"x","power_w":3}"#).is_err());
    }

    #[test]
    fn many_metrics_spill_past_the_inline_buffer() {
        let mut f = FieldRegistry::default();
        let mut m = String::from(r#"{"ts":1764331201,"gpu":"G""#);
        for i in 0..40 {
            f.register(&format!("DCGM_FI_CUSTOM_{i}"));
            m.push_str(&format!(r#","DCGM_FI_CUSTOM_{i}":{i}"#));
        }
        m.push_str(r#","DCGM_FI_CUSTOM_39":-1}"#);
        let c = run_with(m.as_bytes(), &f, &[]).unwrap();
        assert_eq!(c.got.len(), 40);
        assert_eq!(c.got[39].value, -1.0);
        assert!(c.got[..39]
            .iter()
            .enumerate()
            .all(|(i, g)| g.value == i as f64));
    }

    #[test]
    fn bad_input_is_an_error_never_a_crash() {
        for (bad, want) in [
            ("", "invalid JSON at byte 0: unexpected end of input"),
            ("[1]", "message is an array, expected a JSON object"),
            (
                r#"{"ts":1764331201,"gpu":"G""#,
                "invalid JSON at byte 26: unexpected end of input",
            ),
            (
                r#"{"ts":1764331201,"gpu":"G",}"#,
                "invalid JSON at byte 27: expected a string key",
            ),
        ] {
            assert_eq!(run(bad).unwrap_err(), want);
        }
        let e = run_with(
            b"{\"ts\":1764331201,\"gpu\":\"G\xe9\"}",
            &FieldRegistry::default(),
            &[],
        )
        .unwrap_err();
        assert_eq!(e, "invalid JSON at byte 25: invalid UTF-8 in a string");
        let deep = with(&format!(r#","x":{}{}"#, "[".repeat(200), "]".repeat(200)));
        assert!(run(&deep).unwrap_err().contains("nested deeper than 128"));
        let big = with(&format!(r#","junk":"{}","power_w":1"#, "y".repeat(4 << 20)));
        assert_eq!(values(&run(&big).unwrap()), [(FieldId::POWER_USAGE, 1.0)]);
        let c = run(&with(r#","pod":"../../etc/passwd","power_w":1"#)).unwrap();
        assert_eq!(c.got[0].labels[6], "../../etc/passwd");

        let mut rng = Rng(11);
        let fields = FieldRegistry::default();
        let extra: Vec<Box<str>> = vec!["rack".into()];
        let ctx = DecodeContext {
            fields: &fields,
            extra_labels: &extra,
        };
        let alphabet = b"{}[]\":,\\ u0123456789.eE-+tnrlgpuw_\xff\xc3";
        for _ in 0..20_000 {
            let _ = decode(&rng.bytes(alphabet, 64), &ctx, &mut Collect::default());
            let _ = decode(
                &rng.mutate(SPEC_EXAMPLE.as_bytes(), alphabet),
                &ctx,
                &mut Collect::default(),
            );
        }
    }
}
