//! prometheus-kafka-adapter JSON: one DCGM sample per message (docs/inputs.md 1a).
//!
//! `{"timestamp":"2026-11-28T12:00:01Z","value":"0.734","name":"DCGM_FI_...","labels":{...}}`
//!
//! A hand-written single pass over the bytes ([`super::json_scan`]); strings are borrowed
//! from the message unless they hold escapes, so the common message allocates nothing.
//! Rules (docs/decoders.md):
//! - keys in any order, unknown keys with any value are skipped; a repeated key: the last
//!   occurrence counts (earlier ones only need to be valid JSON), as in `serde_json::Value`;
//!   a repeated `labels` object replaces the earlier one as a whole;
//! - `value` is a string holding a number (`"0.734"`, `"NaN"`, `"+Inf"`, surrounding
//!   whitespace allowed) or a JSON number; it is multiplied by the field's unit override;
//! - `name` may be left out when `labels.__name__` holds it;
//! - known labels and configured extra labels must be strings; other labels may be anything;
//! - `Hostname` and `hostname` are both accepted; a non-empty `hostname` wins.
//!
//! Checks in order: JSON syntax and types, then unknown metric (`unknown_field`, `Ok`), then
//! the RFC 3339 timestamp, then a non-empty `UUID`.

use super::decimal::parse_f64;
use super::json_scan::{Scanner, Tok};
use super::units::to_default_unit;
use super::{DecodeContext, Reading, ReadingSink};
use crate::series::{GpuLabels, MAX_EXTRA_LABELS};
use crate::time::parse_rfc3339_ms;
use std::borrow::Cow;

/// The labels a reading keeps, as last seen in the `labels` object.
#[derive(Default)]
struct Labels<'a> {
    uuid: Option<Tok<'a>>,
    gpu_instance_id: Option<Tok<'a>>,
    gpu_index: Option<Tok<'a>>,
    hostname_old: Option<Tok<'a>>,
    hostname_new: Option<Tok<'a>>,
    model_name: Option<Tok<'a>>,
    namespace: Option<Tok<'a>>,
    pod: Option<Tok<'a>>,
    container: Option<Tok<'a>>,
    name: Option<Tok<'a>>,
    extra: [Option<Tok<'a>>; MAX_EXTRA_LABELS],
}

/// Reads the `labels` object into `l`, replacing what it held (cursor at its `{`, which sits
/// at depth 1).
fn read_labels<'a>(
    s: &mut Scanner<'a>,
    ctx: &DecodeContext<'_>,
    l: &mut Labels<'a>,
) -> Result<(), String> {
    s.open_object()?;
    *l = Labels::default();
    let mut first = true;
    while let Some(key) = s.next_key(&mut first)? {
        let extra = if ctx.extra_labels.is_empty() {
            None
        } else {
            ctx.extra_slot(&key).filter(|&i| i < MAX_EXTRA_LABELS)
        };
        type Slot = for<'l, 'm> fn(&'l mut Labels<'m>) -> &'l mut Option<Tok<'m>>;
        let slot: Option<Slot> = match &*key {
            "UUID" => Some(|l| &mut l.uuid),
            "GPU_I_ID" => Some(|l| &mut l.gpu_instance_id),
            "gpu" => Some(|l| &mut l.gpu_index),
            "Hostname" => Some(|l| &mut l.hostname_old),
            "hostname" => Some(|l| &mut l.hostname_new),
            "modelName" => Some(|l| &mut l.model_name),
            "namespace" => Some(|l| &mut l.namespace),
            "pod" => Some(|l| &mut l.pod),
            "container" => Some(|l| &mut l.container),
            "__name__" => Some(|l| &mut l.name),
            _ => None,
        };
        if slot.is_none() && extra.is_none() {
            s.skip_value(2)?;
            continue;
        }
        let tok = s.token(2)?;
        match (slot, extra) {
            (Some(slot), Some(i)) => {
                l.extra[i] = Some(tok);
                *slot(l) = Some(tok);
            }
            (Some(slot), None) => *slot(l) = Some(tok),
            (None, Some(i)) => l.extra[i] = Some(tok),
            (None, None) => {}
        }
    }
    Ok(())
}

/// A label's string value ("" when absent); `Err` when it has another JSON type.
#[inline]
fn label<'a>(tok: Option<Tok<'a>>, name: &str) -> Result<Cow<'a, str>, String> {
    match tok {
        None => Ok(Cow::Borrowed("")),
        Some(Tok::Str(s)) => Ok(s.value()),
        Some(t) => Err(format!("label {name} is {}, expected a string", t.kind())),
    }
}

/// Parses the adapter's value: a string holding a number (Prometheus spells the special
/// values NaN, +Inf, -Inf; Rust's parser takes those) or a JSON number.
fn value_of(tok: Tok<'_>) -> Result<f64, String> {
    match tok {
        Tok::Str(s) => {
            let s = s.value();
            parse_f64(s.trim()).ok_or_else(|| format!("value {s:?} is not a number"))
        }
        // The scanner already rejected numbers that overflow an f64.
        Tok::Num(n) => n
            .value()
            .ok_or_else(|| format!("value {} is not a number", n.text())),
        t => Err(format!(
            "value is {}, expected a string holding a number",
            t.kind()
        )),
    }
}

/// Where the value starting at `start` ends if it is the message's last member: before the
/// closing brace (and whitespace). Only a guess: the bytes are trusted only when they equal
/// a label set read and validated before.
fn last_member_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut end = bytes.len();
    while end > start && bytes[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    if end <= start + 1 || bytes[end - 1] != b'}' {
        return None;
    }
    end -= 1;
    while end > start && bytes[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    (end > start + 1 && bytes[end - 1] == b'}').then_some(end)
}

/// Decodes one message into `sink`; `Err` is the dead-letter reason for the whole message.
pub fn decode(
    bytes: &[u8],
    ctx: &DecodeContext<'_>,
    sink: &mut impl ReadingSink,
) -> Result<(), String> {
    let mut s = Scanner::new(bytes);
    s.open_message()?;
    let (mut timestamp, mut value, mut name) = (None, None, None);
    let mut l = Labels::default();
    // The kind of `labels` when it is not an object.
    let mut labels_not_object: Option<&'static str> = None;
    let mut labels_known = false;
    let mut first = true;
    while let Some(key) = s.next_key(&mut first)? {
        match &*key {
            "timestamp" => timestamp = Some(s.token(1)?),
            "value" => value = Some(s.token(1)?),
            "name" => name = Some(s.token(1)?),
            "labels" if s.peek() == Some(b'{') => {
                // With the metric named already, a label set the sink knows is skipped:
                // the labels are only read the first time these exact bytes are seen.
                let start = s.pos();
                labels_known = false;
                if name.is_some() {
                    // The adapter writes labels last: try the bytes up to the message's
                    // closing brace first, which needs no scanning at all.
                    if let Some(end) = last_member_end(bytes, start) {
                        if sink.known_labels(&bytes[start..end]) {
                            s.seek(end);
                            labels_known = true;
                        }
                    }
                    if !labels_known {
                        s.skip_value(1)?;
                        labels_known = sink.known_labels(s.slice(start, s.pos()));
                        if !labels_known {
                            s.rewind(start);
                        }
                    }
                }
                if labels_known {
                    l = Labels::default();
                } else {
                    read_labels(&mut s, ctx, &mut l)?;
                }
                labels_not_object = None;
            }
            "labels" => labels_not_object = Some(s.token(1)?.kind()),
            _ => s.skip_value(1)?,
        }
    }
    s.finish()?;

    if let Some(kind) = labels_not_object {
        return Err(format!("labels is {kind}, expected an object"));
    }
    let timestamp = match timestamp {
        Some(Tok::Str(t)) => t.value(),
        Some(t) => {
            return Err(format!(
                "timestamp is {}, expected an RFC 3339 string",
                t.kind()
            ))
        }
        None => return Err("missing timestamp".to_string()),
    };
    let raw_value = value_of(value.ok_or("missing value")?)?;
    let uuid = label(l.uuid, "UUID")?;
    let gpu_instance_id = label(l.gpu_instance_id, "GPU_I_ID")?;
    let gpu_index = label(l.gpu_index, "gpu")?;
    let hostname_new = label(l.hostname_new, "hostname")?;
    let hostname_old = label(l.hostname_old, "Hostname")?;
    let model_name = label(l.model_name, "modelName")?;
    let namespace = label(l.namespace, "namespace")?;
    let pod = label(l.pod, "pod")?;
    let container = label(l.container, "container")?;
    let mut extra_values: [Cow<'_, str>; MAX_EXTRA_LABELS] = Default::default();
    for (i, &tok) in l.extra.iter().enumerate() {
        if tok.is_some() {
            extra_values[i] = label(tok, ctx.extra_labels.get(i).map_or("", |n| &**n))?;
        }
    }
    let name = match (name, l.name) {
        (Some(Tok::Str(n)), _) | (None, Some(Tok::Str(n))) => n.value(),
        (Some(t), _) => return Err(format!("name is {}, expected a string", t.kind())),
        (None, _) => return Err("missing name (and no labels.__name__)".to_string()),
    };

    let Some(field) = ctx.fields.lookup(&name) else {
        sink.unknown_field();
        return Ok(());
    };
    let ts_ms = parse_rfc3339_ms(&timestamp)
        .ok_or_else(|| format!("timestamp {:?} is not RFC 3339", &*timestamp))?;
    if uuid.is_empty() && !labels_known {
        return Err("missing UUID label".to_string());
    }
    let mut extra = [""; MAX_EXTRA_LABELS];
    for (e, v) in extra.iter_mut().zip(&extra_values) {
        *e = v;
    }
    sink.reading(Reading {
        ts_ms,
        field,
        value: to_default_unit(ctx.fields, field, raw_value),
        labels: GpuLabels {
            uuid: &uuid,
            gpu_instance_id: &gpu_instance_id,
            gpu_index: &gpu_index,
            hostname: if hostname_new.is_empty() {
                &hostname_old
            } else {
                &hostname_new
            },
            model_name: &model_name,
            namespace: &namespace,
            pod: &pod,
            container: &container,
            extra,
        },
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::test_support::{Collect, Got, Rng};
    use crate::fields::{FieldId, FieldRegistry, Unit};

    const SPEC_EXAMPLE: &str = r#"{"timestamp":"2026-11-28T12:00:01Z","value":"0.734","name":"DCGM_FI_PROF_GR_ENGINE_ACTIVE","labels":{"__name__":"DCGM_FI_PROF_GR_ENGINE_ACTIVE","gpu":"3","UUID":"GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e52","device":"nvidia3","modelName":"NVIDIA H100 80GB HBM3","Hostname":"gpu-node-17","namespace":"team-search","pod":"ranker-7f9c-2","container":"main"}}"#;

    fn run_with(s: &[u8], fields: &FieldRegistry, extra: &[&str]) -> Result<Collect, String> {
        let extra: Vec<Box<str>> = extra.iter().map(|&e| e.into()).collect();
        let ctx = DecodeContext {
            fields,
            extra_labels: &extra,
        };
        let mut c = Collect::default();
        decode(s, &ctx, &mut c).map(|_| c)
    }

    fn run(s: &[u8]) -> Result<Collect, String> {
        run_with(s, &FieldRegistry::default(), &[])
    }

    fn one(s: &[u8]) -> Got {
        let c = run(s).unwrap();
        assert_eq!(c.got.len(), 1);
        c.got[0].clone()
    }

    fn msg(labels: &str) -> String {
        format!(
            r#"{{"timestamp":"2026-11-28T12:00:01Z","value":"87","name":"DCGM_FI_DEV_GPU_UTIL","labels":{{{labels}}}}}"#
        )
    }

    #[test]
    fn decodes_the_spec_example() {
        let g = one(SPEC_EXAMPLE.as_bytes());
        assert_eq!(
            (g.ts_ms, g.field, g.value),
            (1_795_867_201_000, FieldId::GR_ENGINE_ACTIVE, 0.734)
        );
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
        assert!(g.extra.iter().all(String::is_empty));
    }

    #[test]
    fn keys_in_any_order_whitespace_and_unknown_keys() {
        let m = " {\n\t\"labels\" : { \"pod\" : \"p\" , \"UUID\":\"GPU-1\", \"odd\": [1, {\"x\": null}] } ,\r\n \"extra\": {\"a\": [true, false, -1.5e3]},\"value\" : 12.5 , \"name\":\"DCGM_FI_DEV_POWER_USAGE\", \"timestamp\":\"2026-11-28T12:00:01.250Z\" } \n";
        let g = one(m.as_bytes());
        assert_eq!(
            (g.ts_ms, g.field, g.value),
            (1_795_867_201_250, FieldId::POWER_USAGE, 12.5)
        );
        assert_eq!((g.labels[0].as_str(), g.labels[6].as_str()), ("GPU-1", "p"));
    }

    #[test]
    fn accepts_lowercase_hostname_and_escapes() {
        let g = one(msg(r#""UUID":"GPU-\u0041","hostname":"n\"1""#).as_bytes());
        assert_eq!((g.field, g.value), (FieldId::GPU_UTIL, 87.0));
        assert_eq!(
            (g.labels[0].as_str(), g.labels[3].as_str()),
            ("GPU-A", "n\"1")
        );
        // Both spellings: a non-empty `hostname` wins, in either order; an empty one does not.
        for l in [
            r#""UUID":"G","Hostname":"old","hostname":"new""#,
            r#""UUID":"G","hostname":"new","Hostname":"old""#,
        ] {
            assert_eq!(one(msg(l).as_bytes()).labels[3], "new");
        }
        assert_eq!(
            one(msg(r#""UUID":"G","hostname":"","Hostname":"old""#).as_bytes()).labels[3],
            "old"
        );
    }

    #[test]
    fn mig_instance_and_extra_labels() {
        let m = msg(
            r#""UUID":"GPU-1","GPU_I_ID":"3","GPU_I_PROFILE":"1g.10gb","pci_bus_id":"00000000:4E:00.0","rack":"r\u00e47","pod":"p""#,
        );
        let c = run_with(
            m.as_bytes(),
            &FieldRegistry::default(),
            &["pod", "rack", "missing", "pci_bus_id"],
        )
        .unwrap();
        let g = &c.got[0];
        assert_eq!((g.labels[0].as_str(), g.labels[1].as_str()), ("GPU-1", "3"));
        assert_eq!(g.labels[6], "p");
        assert_eq!(g.extra[..5], ["p", "r\u{e4}7", "", "00000000:4E:00.0", ""]);
        // An extra label must be a string; an unconfigured label may be anything.
        let bad = msg(r#""UUID":"GPU-1","rack":7"#);
        assert!(run(bad.as_bytes()).is_ok());
        let e = run_with(bad.as_bytes(), &FieldRegistry::default(), &["rack"]).unwrap_err();
        assert_eq!(e, "label rack is a number, expected a string");
    }

    #[test]
    fn unit_overrides_scale_values_but_not_blanks() {
        let mut f = FieldRegistry::default();
        f.set_source_unit("DCGM_FI_DEV_GPU_UTIL", Unit::Ratio)
            .unwrap();
        let m = msg(r#""UUID":"G""#).replace("\"87\"", "\"0.5\"");
        assert_eq!(run_with(m.as_bytes(), &f, &[]).unwrap().got[0].value, 50.0);
        let blank = msg(r#""UUID":"G""#).replace("\"87\"", "\"9223372036854775794\"");
        assert_eq!(
            run_with(blank.as_bytes(), &f, &[]).unwrap().got[0].value,
            9_223_372_036_854_775_794.0
        );
    }

    #[test]
    fn values_as_strings_or_numbers_special_values_pass_through() {
        let with = |v: &str| msg(r#""UUID":"G""#).replace("\"87\"", v);
        for (v, want) in [
            ("\"0.734\"", 0.734),
            ("\" 42 \"", 42.0),
            ("\"+Inf\"", f64::INFINITY),
            ("\"-Inf\"", f64::NEG_INFINITY),
            ("\"9223372036854775794\"", 9_223_372_036_854_775_794.0),
            ("9223372036854775794", 9_223_372_036_854_775_794.0),
            ("-3", -3.0),
            ("1.5e2", 150.0),
        ] {
            assert_eq!(one(with(v).as_bytes()).value, want, "{v}");
        }
        assert!(one(with("\"NaN\"").as_bytes()).value.is_nan());
    }

    #[test]
    fn name_from_labels_and_last_duplicate_wins() {
        let m = r#"{"timestamp":"2026-11-28T12:00:01Z","value":"1","labels":{"__name__":"DCGM_FI_DEV_FB_USED","UUID":"G"}}"#;
        assert_eq!(one(m.as_bytes()).field, FieldId::FB_USED);
        // The top-level name wins over __name__.
        let m = r#"{"name":"DCGM_FI_DEV_GPU_UTIL","timestamp":"2026-11-28T12:00:01Z","value":"1","labels":{"__name__":"DCGM_FI_DEV_FB_USED","UUID":"G"}}"#;
        assert_eq!(one(m.as_bytes()).field, FieldId::GPU_UTIL);
        // Repeated keys: the last counts, earlier ones need only be valid JSON.
        let m = r#"{"value":"abc","value":{"x":1},"value":"2","name":"DCGM_FI_DEV_GPU_UTIL","timestamp":"x","timestamp":"2026-11-28T12:00:01Z","labels":{"UUID":"A","pod":"p"},"labels":{"UUID":"B","UUID":"C"}}"#;
        let g = one(m.as_bytes());
        assert_eq!(
            (g.value, g.labels[0].as_str(), g.labels[6].as_str()),
            (2.0, "C", "")
        );
    }

    #[test]
    fn unknown_fields_are_reported_not_errors() {
        let unknown = br#"{"timestamp":"2026-11-28T12:00:01Z","value":"40","name":"DCGM_FI_DEV_MEMORY_TEMP","labels":{"UUID":"GPU-1"}}"#;
        let c = run(unknown).unwrap();
        assert_eq!((c.got.len(), c.unknown), (0, 1));
        // Unknown metrics need no timestamp or UUID to be counted; a bad value is still bad.
        let c = run(br#"{"timestamp":"x","value":"40","name":"X"}"#).unwrap();
        assert_eq!((c.got.len(), c.unknown), (0, 1));
        assert!(run(br#"{"timestamp":"x","value":"abc","name":"X"}"#).is_err());
    }

    #[test]
    fn label_values_are_just_strings() {
        let g = one(
            msg(r#""UUID":"../../etc/passwd","pod":"..\/..\/x","namespace":"a\u0000b""#).as_bytes(),
        );
        assert_eq!(g.labels[0], "../../etc/passwd");
        assert_eq!(g.labels[6], "../../x");
        assert_eq!(g.labels[5], "a\0b");
    }

    #[test]
    fn bad_messages_are_errors_with_a_reason() {
        let ok = |v: &str| msg(r#""UUID":"G""#).replace("\"87\"", v);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"{\"timestamp\":\"2026-11-28T12:00:01Z\",\"val".to_vec(), "invalid JSON at byte 40: unexpected end of input in a string"),
            (b"".to_vec(), "invalid JSON at byte 0: unexpected end of input"),
            (b"[1,2]".to_vec(), "message is an array, expected a JSON object"),
            (b"\"x\"".to_vec(), "message is a string"),
            (b"{\"a\" 1}".to_vec(), "invalid JSON at byte 5: expected ':'"),
            (b"{\"a\":1}x".to_vec(), "invalid JSON at byte 7: trailing characters"),
            (ok("\"abc\"").into_bytes(), "value \"abc\" is not a number"),
            (ok("true").into_bytes(), "value is a boolean"),
            (ok("null").into_bytes(), "value is null"),
            (ok("1e999").into_bytes(), "number out of range"),
            (br#"{"timestamp":12,"value":"1","name":"DCGM_FI_DEV_GPU_UTIL","labels":{"UUID":"G"}}"#.to_vec(), "timestamp is a number, expected an RFC 3339 string"),
            (br#"{"timestamp":"yesterday","value":"1","name":"DCGM_FI_DEV_GPU_UTIL","labels":{"UUID":"G"}}"#.to_vec(), "not RFC 3339"),
            (br#"{"timestamp":"2026-11-28T12:00:01Z","value":"1","name":"DCGM_FI_DEV_GPU_UTIL","labels":{}}"#.to_vec(), "missing UUID label"),
            (br#"{"timestamp":"2026-11-28T12:00:01Z","value":"1","name":"DCGM_FI_DEV_GPU_UTIL"}"#.to_vec(), "missing UUID label"),
            (br#"{"timestamp":"2026-11-28T12:00:01Z","value":"1","name":"DCGM_FI_DEV_GPU_UTIL","labels":null}"#.to_vec(), "labels is null, expected an object"),
            (msg(r#""UUID":3"#).into_bytes(), "label UUID is a number, expected a string"),
            (msg(r#""UUID":"G","pod":["p"]"#).into_bytes(), "label pod is an array"),
            (br#"{"value":"1","name":"DCGM_FI_DEV_GPU_UTIL","labels":{"UUID":"G"}}"#.to_vec(), "missing timestamp"),
            (br#"{"timestamp":"2026-11-28T12:00:01Z","name":"DCGM_FI_DEV_GPU_UTIL","labels":{"UUID":"G"}}"#.to_vec(), "missing value"),
            (br#"{"timestamp":"2026-11-28T12:00:01Z","value":"1","labels":{"UUID":"G"}}"#.to_vec(), "missing name"),
            (br#"{"timestamp":"2026-11-28T12:00:01Z","value":"1","name":7,"labels":{"UUID":"G"}}"#.to_vec(), "name is a number"),
            (b"{\"timestamp\":\"2026-11-28T12:00:01Z\",\"value\":\"1\",\"name\":\"DCGM_FI_DEV_GPU_UTIL\",\"labels\":{\"UUID\":\"\xff\"}}".to_vec(), "invalid JSON at byte 96: invalid UTF-8 in a string"),
            (b"{\"x\":\"\xc3\x28\",\"timestamp\":\"2026-11-28T12:00:01Z\"}".to_vec(), "invalid UTF-8"),
            (br#"{"x":"\ud800","timestamp":"2026-11-28T12:00:01Z"}"#.to_vec(), "lone surrogate"),
            (b"{\"x\":\"a\tb\"}".to_vec(), "control character"),
        ];
        for (m, want) in cases {
            let err = run(&m)
                .err()
                .unwrap_or_else(|| panic!("{} should fail", String::from_utf8_lossy(&m)));
            assert!(err.contains(want), "{err:?} should contain {want:?}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let head = r#"{"timestamp":"2026-11-28T12:00:01Z","value":"1","name":"DCGM_FI_DEV_GPU_UTIL","labels":{"UUID":"G"},"x":"#;
        let nested = |n: usize| format!("{head}{}{}}}", "[".repeat(n), "]".repeat(n));
        // The message's object is level 1, so 127 more levels are fine and 128 are not.
        assert!(run(nested(127).as_bytes()).is_ok());
        assert!(run(nested(128).as_bytes())
            .unwrap_err()
            .contains("nested deeper than 128"));
        let mut m = String::from(head);
        m.push_str(&"[".repeat(100_000));
        assert!(run(m.as_bytes()).unwrap_err().contains("invalid JSON"));
    }

    #[test]
    fn multi_megabyte_messages_are_fine() {
        let big_string = format!(
            r#"{{"junk":"{}",{}"#,
            "x".repeat(8 << 20),
            &SPEC_EXAMPLE[1..]
        );
        assert_eq!(one(big_string.as_bytes()).value, 0.734);
        let big_array = format!(
            r#"{{"junk":[{}1],{}"#,
            "1.5,{\"a\":[]},".repeat(500_000),
            &SPEC_EXAMPLE[1..]
        );
        assert_eq!(one(big_array.as_bytes()).value, 0.734);
    }

    #[test]
    fn random_bytes_and_mutations_never_panic() {
        let mut rng = Rng(7);
        let fields = FieldRegistry::default();
        let extra: Vec<Box<str>> = vec!["device".into(), "pod".into()];
        let ctx = DecodeContext {
            fields: &fields,
            extra_labels: &extra,
        };
        let alphabet = b"{}[]\":,\\ u0123456789abcdefeE.+-tnrl\xff\xc3\x80";
        for _ in 0..20_000 {
            let _ = decode(&rng.bytes(alphabet, 64), &ctx, &mut Collect::default());
            let _ = decode(
                &rng.mutate(SPEC_EXAMPLE.as_bytes(), alphabet),
                &ctx,
                &mut Collect::default(),
            );
        }
    }

    mod oracle {
        // The replaced serde_json decoder, verbatim; see the header of that file.
        mod gpuledger_engine {
            pub use crate::*;
        }
        include!("prom_json_serde_oracle.rs");
    }

    /// What the replaced serde_json decoder makes of `bytes`, with the scanner's documented
    /// extensions applied on top: strings everywhere must be valid (serde_json only checks
    /// those it deserializes), a repeated key's last occurrence counts, `name` may come from
    /// `labels.__name__`, extra labels are read, and the message must be an object (serde
    /// also takes a struct as an array).
    fn oracle(bytes: &[u8], extra_labels: &[Box<str>]) -> Result<Collect, String> {
        use serde_json::Value;
        let mut v: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let obj = v.as_object_mut().ok_or("not an object")?;
        if !obj.contains_key("name") {
            if let Some(n @ Value::String(_)) =
                obj.get("labels").and_then(|l| l.get("__name__")).cloned()
            {
                obj.insert("name".into(), n);
            }
        }
        let mut extra = Vec::new();
        for name in extra_labels {
            match v.get("labels").and_then(|l| l.get(&**name)) {
                None => extra.push(String::new()),
                Some(Value::String(s)) => extra.push(s.clone()),
                Some(_) => return Err(format!("extra label {name} not a string")),
            }
        }
        extra.resize(MAX_EXTRA_LABELS, String::new());
        let canonical = serde_json::to_vec(&v).unwrap();
        let fields = FieldRegistry::default();
        let ctx = DecodeContext {
            fields: &fields,
            extra_labels: &[],
        };
        let mut c = Collect::default();
        oracle::decode(&canonical, &ctx, &mut c)?;
        for g in &mut c.got {
            g.extra = extra.clone();
        }
        Ok(c)
    }

    /// A JSON string literal for `s`, escaping at random (plain, \uXXXX, or short escapes).
    fn json_str(rng: &mut Rng, s: &str) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c if rng.chance(3) => {
                    let mut buf = [0u16; 2];
                    for u in c.encode_utf16(&mut buf) {
                        out.push_str(&format!("\\u{:04X}", u));
                    }
                }
                '/' if rng.chance(50) => out.push_str("\\/"),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    /// A random JSON value for unknown keys (shallow, small numbers).
    fn junk(rng: &mut Rng, depth: usize) -> String {
        match rng.below(if depth > 2 { 4 } else { 6 }) {
            0 => rng.pick(&["null", "true", "false"]).to_string(),
            1 => rng
                .pick(&["0", "-1", "3.25", "1e3", "-2.5E-2", "12345678901234567890"])
                .to_string(),
            2 | 3 => {
                let s = rng.pick(&["", "x", "gr\u{fc}n", "a\"b\\c", "\u{1F600}", "../../etc"]);
                json_str(rng, s)
            }
            4 => {
                let items: Vec<String> = (0..rng.below(4)).map(|_| junk(rng, depth + 1)).collect();
                format!("[{}]", items.join(","))
            }
            _ => {
                let items: Vec<String> = (0..rng.below(4))
                    .map(|i| format!("\"k{i}\":{}", junk(rng, depth + 1)))
                    .collect();
                format!("{{{}}}", items.join(","))
            }
        }
    }

    fn ws(rng: &mut Rng) -> &'static str {
        if rng.chance(80) {
            ""
        } else {
            rng.pick(&[" ", "\n", "\t ", "\r\n  "])
        }
    }

    /// A plausible adapter message with random key order, escapes, whitespace and extra keys.
    fn generated(rng: &mut Rng) -> String {
        let names = [
            "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
            "DCGM_FI_DEV_GPU_UTIL",
            "DCGM_FI_DEV_FB_USED",
            "DCGM_FI_DEV_POWER_USAGE",
            "DCGM_FI_DEV_MEMORY_TEMP",
        ];
        let name = rng.pick(&names);
        let values = [
            "0.734",
            "87",
            "NaN",
            "+Inf",
            "-Inf",
            " 12.5 ",
            "9223372036854775794",
            "abc",
            "1e-7",
            "-0",
        ];
        let value = if rng.chance(20) {
            rng.pick(&[
                "0.5",
                "40211",
                "1e2",
                "9223372036854775794",
                "-7",
                "0.1000000000000000055511151231257827",
            ])
            .to_string()
        } else {
            {
                let v = rng.pick(&values);
                json_str(rng, v)
            }
        };
        let mut labels: Vec<(String, String)> = vec![
            ("gpu".into(), format!("{}", rng.below(8))),
            (
                "UUID".into(),
                format!(
                    "GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e{:02}",
                    rng.below(100)
                ),
            ),
            ("device".into(), "nvidia3".into()),
            ("modelName".into(), "NVIDIA H100 80GB HBM3".into()),
            (
                rng.pick(&["Hostname", "hostname"]).into(),
                "gpu-node-17".into(),
            ),
            (
                "namespace".into(),
                rng.pick(&["team-search", "", "t\u{e4}m/\"q\""]).into(),
            ),
            ("pod".into(), "ranker-7f9c-2".into()),
            ("container".into(), "main".into()),
        ];
        if rng.chance(20) {
            labels.push(("GPU_I_ID".into(), "3".into()));
        }
        if rng.chance(20) {
            labels.push(("hostname".into(), "other-host".into()));
        }
        if rng.chance(10) {
            labels.retain(|(k, _)| k != "UUID");
        }
        if rng.chance(80) {
            labels.push(("__name__".into(), name.into()));
        }
        let n = labels.len();
        for i in (1..n).rev() {
            labels.swap(i, rng.below(i + 1));
        }
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}{}{}:{}{}",
                    ws(rng),
                    json_str(rng, k),
                    ws(rng),
                    ws(rng),
                    json_str(rng, v)
                )
            })
            .collect();
        let ts = rng.pick(&[
            "2026-11-28T12:00:01Z",
            "2026-11-28T12:00:01.5+01:00",
            "yesterday",
        ]);
        let mut top: Vec<String> = vec![
            format!("\"timestamp\":{}", json_str(rng, ts)),
            format!("\"value\":{}{value}", ws(rng)),
            format!("\"labels\":{{{}{}}}", labels.join(","), ws(rng)),
        ];
        if rng.chance(95) {
            top.push(format!("\"name\":{}", json_str(rng, name)));
        }
        for i in 0..rng.below(3) {
            top.push(format!("\"extra{i}\":{}", junk(rng, 1)));
        }
        let n = top.len();
        for i in (1..n).rev() {
            top.swap(i, rng.below(i + 1));
        }
        let top: Vec<String> = top
            .into_iter()
            .map(|kv| format!("{}{kv}{}", ws(rng), ws(rng)))
            .collect();
        format!("{}{{{}}}{}", ws(rng), top.join(","), ws(rng))
    }

    fn same_value(a: f64, b: f64) -> bool {
        // serde_json's float parser may be one ulp off the correctly rounded result.
        a == b || (a.is_nan() && b.is_nan()) || (a.to_bits() as i64 - b.to_bits() as i64).abs() <= 1
    }

    #[test]
    fn differential_against_serde_json() {
        let mut rng = Rng(2026);
        let fields = FieldRegistry::default();
        let extra: Vec<Box<str>> = vec!["device".into(), "GPU_I_ID".into(), "nope".into()];
        let ctx = DecodeContext {
            fields: &fields,
            extra_labels: &extra,
        };
        let (mut accepted, mut rejected, mut mutated) = (0, 0, 0);
        for i in 0..6_000 {
            let mut m = generated(&mut rng).into_bytes();
            if i % 2 == 1 {
                mutated += 1;
                match rng.below(4) {
                    0 => m.truncate(rng.below(m.len())),
                    1 => {
                        let at = rng.below(m.len());
                        m[at] = rng.pick(b"{}[]\":,\\ x0e.-\xff\xc3\x80\x01");
                    }
                    2 => {
                        let at = rng.below(m.len());
                        m.remove(at);
                    }
                    _ => {
                        let at = rng.below(m.len());
                        m.insert(at, rng.pick(b"{}[]\":,\\ 0"));
                    }
                }
            }
            let mut c = Collect::default();
            let new = decode(&m, &ctx, &mut c).map(|_| c);
            let old = oracle(&m, &extra);
            let show = String::from_utf8_lossy(&m);
            match (new, old) {
                (Ok(n), Ok(o)) => {
                    accepted += 1;
                    assert_eq!(n.unknown, o.unknown, "{show}");
                    assert_eq!(n.got.len(), o.got.len(), "{show}");
                    for (a, b) in n.got.iter().zip(&o.got) {
                        assert!(
                            same_value(a.value, b.value),
                            "{show}: {} vs {}",
                            a.value,
                            b.value
                        );
                        assert_eq!(
                            (a.ts_ms, a.field, &a.labels, &a.extra),
                            (b.ts_ms, b.field, &b.labels, &b.extra),
                            "{show}"
                        );
                    }
                }
                (Err(_), Err(_)) => rejected += 1,
                (n, o) => panic!("disagree on {show}\nscanner: {n:?}\nserde: {o:?}"),
            }
        }
        // Both kinds must be well represented for the test to mean anything.
        assert!(
            accepted > 2_000 && rejected > 2_000,
            "{accepted} accepted, {rejected} rejected of which {mutated} mutated"
        );
    }
}
