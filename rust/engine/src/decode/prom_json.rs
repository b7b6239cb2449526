//! prometheus-kafka-adapter JSON: one DCGM sample per message (spec inputs.md 1a).
//!
//! `{"timestamp":"2026-11-28T12:00:01Z","value":"0.734","name":"DCGM_FI_...","labels":{...}}`
//! Strings are borrowed from the message unless they contain escapes.

use super::{DecodeContext, Reading, ReadingSink};
use crate::series::GpuLabels;
use crate::time::parse_rfc3339_ms;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    timestamp: Cow<'a, str>,
    value: Value,
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    labels: Labels<'a>,
}

#[derive(Deserialize, Default)]
struct Labels<'a> {
    #[serde(borrow, rename = "UUID", default)]
    uuid: Cow<'a, str>,
    #[serde(borrow, rename = "GPU_I_ID", default)]
    gpu_instance_id: Cow<'a, str>,
    #[serde(borrow, rename = "gpu", default)]
    gpu_index: Cow<'a, str>,
    #[serde(borrow, rename = "Hostname", default)]
    hostname_old: Cow<'a, str>,
    #[serde(borrow, rename = "hostname", default)]
    hostname_new: Cow<'a, str>,
    #[serde(borrow, rename = "modelName", default)]
    model_name: Cow<'a, str>,
    #[serde(borrow, default)]
    namespace: Cow<'a, str>,
    #[serde(borrow, default)]
    pod: Cow<'a, str>,
    #[serde(borrow, default)]
    container: Cow<'a, str>,
}

/// The adapter sends the value as a string ("0.734", "NaN", "+Inf"); numbers are accepted too.
struct Value(f64);

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or a string holding a number")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
                Ok(Value(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
                Ok(Value(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
                Ok(Value(v as f64))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
                // Prometheus spells special values NaN, +Inf, -Inf; Rust's parser takes those.
                s.trim()
                    .parse::<f64>()
                    .map(Value)
                    .map_err(|_| E::custom(format!("value {s:?} is not a number")))
            }
        }
        d.deserialize_any(V)
    }
}

/// Decodes one message into `sink`; `Err` is the dead-letter reason for the whole message.
pub fn decode(
    bytes: &[u8],
    ctx: &DecodeContext<'_>,
    sink: &mut impl ReadingSink,
) -> Result<(), String> {
    let msg: Message<'_> =
        serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON: {e}"))?;
    let Some(field) = ctx.fields.lookup(&msg.name) else {
        sink.unknown_field();
        return Ok(());
    };
    let ts_ms = parse_rfc3339_ms(&msg.timestamp)
        .ok_or_else(|| format!("timestamp {:?} is not RFC 3339", &*msg.timestamp))?;
    let l = &msg.labels;
    if l.uuid.is_empty() {
        return Err("missing UUID label".to_string());
    }
    let hostname = if l.hostname_new.is_empty() {
        &l.hostname_old
    } else {
        &l.hostname_new
    };
    sink.reading(Reading {
        ts_ms,
        field,
        value: msg.value.0 * ctx.fields.source_scale(field),
        labels: GpuLabels {
            uuid: &l.uuid,
            gpu_instance_id: &l.gpu_instance_id,
            gpu_index: &l.gpu_index,
            hostname,
            model_name: &l.model_name,
            namespace: &l.namespace,
            pod: &l.pod,
            container: &l.container,
            extra: Default::default(),
        },
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::{FieldId, FieldRegistry};

    const SPEC_EXAMPLE: &str = r#"{"timestamp":"2026-11-28T12:00:01Z","value":"0.734","name":"DCGM_FI_PROF_GR_ENGINE_ACTIVE","labels":{"__name__":"DCGM_FI_PROF_GR_ENGINE_ACTIVE","gpu":"3","UUID":"GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e52","device":"nvidia3","modelName":"NVIDIA H100 80GB HBM3","Hostname":"gpu-node-17","namespace":"team-search","pod":"ranker-7f9c-2","container":"main"}}"#;

    #[derive(Default)]
    struct Collect {
        got: Vec<(i64, FieldId, f64, String, String)>,
        unknown: usize,
    }
    impl ReadingSink for Collect {
        fn reading(&mut self, r: Reading<'_>) {
            let l = r.labels;
            self.got
                .push((r.ts_ms, r.field, r.value, l.hostname.into(), l.uuid.into()));
        }
        fn unknown_field(&mut self) {
            self.unknown += 1;
        }
    }

    fn run(s: &[u8]) -> Result<Collect, String> {
        let fields = FieldRegistry::default();
        let ctx = DecodeContext {
            fields: &fields,
            extra_labels: &[],
        };
        let mut c = Collect::default();
        decode(s, &ctx, &mut c).map(|_| c)
    }

    #[test]
    fn decodes_the_spec_example() {
        let c = run(SPEC_EXAMPLE.as_bytes()).unwrap();
        let (ts, field, v, host, uuid) = c.got[0].clone();
        assert_eq!(ts, 1_795_867_201_000);
        assert_eq!(field, FieldId::GR_ENGINE_ACTIVE);
        assert_eq!(v, 0.734);
        assert_eq!(host, "gpu-node-17");
        assert_eq!(uuid, "GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e52");
    }

    #[test]
    fn accepts_lowercase_hostname_and_escapes() {
        let m = br#"{"timestamp":"2026-11-28T12:00:01Z","value":"87","name":"DCGM_FI_DEV_GPU_UTIL","labels":{"UUID":"GPU-\u0041","hostname":"n\"1"}}"#;
        let (_, field, v, host, uuid) = run(m).unwrap().got[0].clone();
        assert_eq!((field, v), (FieldId::GPU_UTIL, 87.0));
        assert_eq!(host, "n\"1");
        assert_eq!(uuid, "GPU-A");
    }

    #[test]
    fn unknown_fields_are_reported_not_errors() {
        let unknown = br#"{"timestamp":"2026-11-28T12:00:01Z","value":"40","name":"DCGM_FI_DEV_MEMORY_TEMP","labels":{"UUID":"GPU-1"}}"#;
        let c = run(unknown).unwrap();
        assert_eq!((c.got.len(), c.unknown), (0, 1));
    }

    #[test]
    fn bad_messages_are_errors_with_a_reason() {
        let cases: &[(&[u8], &str)] = &[
            (b"{\"timestamp\":\"2026-11-28T12:00:01Z\",\"val", "invalid JSON"),
            (br#"{"timestamp":"2026-11-28T12:00:01Z","value":"abc","name":"DCGM_FI_DEV_GPU_UTIL","labels":{"UUID":"G"}}"#, "not a number"),
            (br#"{"timestamp":12,"value":"1","name":"DCGM_FI_DEV_GPU_UTIL","labels":{"UUID":"G"}}"#, "invalid JSON"),
            (br#"{"timestamp":"yesterday","value":"1","name":"DCGM_FI_DEV_GPU_UTIL","labels":{"UUID":"G"}}"#, "not RFC 3339"),
            (br#"{"timestamp":"2026-11-28T12:00:01Z","value":"1","name":"DCGM_FI_DEV_GPU_UTIL","labels":{}}"#, "missing UUID"),
            (b"{\"timestamp\":\"2026-11-28T12:00:01Z\",\"value\":\"1\",\"name\":\"DCGM_FI_DEV_GPU_UTIL\",\"labels\":{\"UUID\":\"\xff\"}}", "invalid JSON"),
        ];
        for (msg, want) in cases {
            let err = run(msg).err().unwrap();
            assert!(err.contains(want), "{err} should contain {want}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let mut m = String::from(
            r#"{"timestamp":"2026-11-28T12:00:01Z","value":"1","name":"DCGM_FI_DEV_GPU_UTIL","labels":{"UUID":"G"},"x":"#,
        );
        m.push_str(&"[".repeat(100_000));
        assert!(run(m.as_bytes()).err().unwrap().contains("invalid JSON"));
    }
}
