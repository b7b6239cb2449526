//! prometheus-kafka-adapter JSON: one DCGM sample per message (spec inputs.md 1a).
//!
//! `{"timestamp":"2026-11-28T12:00:01Z","value":"0.734","name":"DCGM_FI_...","labels":{...}}`
//! Strings are borrowed from the message unless they contain escapes.

use super::{GpuSample, SkipReason};
use crate::fields::{Field, DCGM_BLANK_THRESHOLD};
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

/// What one message decodes to.
pub enum Outcome<'a> {
    Sample(GpuSample<'a>),
    Skip(SkipReason),
    /// Not a valid sample; the string is the dead-letter reason.
    Invalid(String),
}

/// Decodes a message and hands the outcome to `f` (the closure form keeps borrows of
/// unescaped label strings alive without allocating).
pub fn decode<R>(bytes: &[u8], f: impl for<'a> FnOnce(Outcome<'a>) -> R) -> R {
    let msg: Message<'_> = match serde_json::from_slice(bytes) {
        Ok(m) => m,
        Err(e) => return f(Outcome::Invalid(format!("invalid JSON: {e}"))),
    };
    let Some(field) = Field::from_dcgm_name(&msg.name) else {
        return f(Outcome::Skip(SkipReason::UnknownField));
    };
    let value = msg.value.0;
    if value.is_finite() && value >= DCGM_BLANK_THRESHOLD {
        return f(Outcome::Skip(SkipReason::Blank));
    }
    if let Err(reason) = field.validate(value) {
        return f(Outcome::Invalid(reason));
    }
    let Some(ts_ms) = parse_rfc3339_ms(&msg.timestamp) else {
        return f(Outcome::Invalid(format!(
            "timestamp {:?} is not RFC 3339",
            &*msg.timestamp
        )));
    };
    let l = &msg.labels;
    if l.uuid.is_empty() {
        return f(Outcome::Invalid("missing UUID label".to_string()));
    }
    let hostname = if l.hostname_new.is_empty() {
        &l.hostname_old
    } else {
        &l.hostname_new
    };
    f(Outcome::Sample(GpuSample {
        ts_ms,
        field,
        value,
        labels: GpuLabels {
            uuid: &l.uuid,
            gpu_instance_id: &l.gpu_instance_id,
            gpu_index: &l.gpu_index,
            hostname,
            model_name: &l.model_name,
            namespace: &l.namespace,
            pod: &l.pod,
            container: &l.container,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_EXAMPLE: &str = r#"{"timestamp":"2026-11-28T12:00:01Z","value":"0.734","name":"DCGM_FI_PROF_GR_ENGINE_ACTIVE","labels":{"__name__":"DCGM_FI_PROF_GR_ENGINE_ACTIVE","gpu":"3","UUID":"GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e52","device":"nvidia3","modelName":"NVIDIA H100 80GB HBM3","Hostname":"gpu-node-17","namespace":"team-search","pod":"ranker-7f9c-2","container":"main"}}"#;

    fn outcome(s: &[u8]) -> Result<(i64, Field, f64, String, String), String> {
        decode(s, |o| match o {
            Outcome::Sample(g) => Ok((
                g.ts_ms,
                g.field,
                g.value,
                g.labels.hostname.to_string(),
                g.labels.uuid.to_string(),
            )),
            Outcome::Skip(r) => Err(format!("skip {r:?}")),
            Outcome::Invalid(r) => Err(r),
        })
    }

    #[test]
    fn decodes_the_spec_example() {
        let (ts, field, v, host, uuid) = outcome(SPEC_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(ts, 1_795_867_201_000);
        assert_eq!(field, Field::GrEngineActive);
        assert_eq!(v, 0.734);
        assert_eq!(host, "gpu-node-17");
        assert_eq!(uuid, "GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e52");
    }

    #[test]
    fn accepts_lowercase_hostname_and_escapes() {
        let m = br#"{"timestamp":"2026-11-28T12:00:01Z","value":"87","name":"DCGM_FI_DEV_GPU_UTIL","labels":{"UUID":"GPU-\u0041","hostname":"n\"1"}}"#;
        let (_, field, v, host, uuid) = outcome(m).unwrap();
        assert_eq!((field, v), (Field::GpuUtil, 87.0));
        assert_eq!(host, "n\"1");
        assert_eq!(uuid, "GPU-A");
    }

    #[test]
    fn blanks_and_unknown_fields_are_skips() {
        let blank = br#"{"timestamp":"2026-11-28T12:00:01Z","value":"9223372036854775794","name":"DCGM_FI_DEV_POWER_USAGE","labels":{"UUID":"GPU-1"}}"#;
        assert_eq!(outcome(blank).unwrap_err(), "skip Blank");
        let unknown = br#"{"timestamp":"2026-11-28T12:00:01Z","value":"40","name":"DCGM_FI_DEV_MEMORY_TEMP","labels":{"UUID":"GPU-1"}}"#;
        assert_eq!(outcome(unknown).unwrap_err(), "skip UnknownField");
    }

    #[test]
    fn bad_messages_are_invalid_with_a_reason() {
        let cases: &[(&[u8], &str)] = &[
            (b"{\"timestamp\":\"2026-11-28T12:00:01Z\",\"val", "invalid JSON"),
            (br#"{"timestamp":"2026-11-28T12:00:01Z","value":"NaN","name":"DCGM_FI_DEV_GPU_UTIL","labels":{"UUID":"G"}}"#, "non-finite"),
            (br#"{"timestamp":"2026-11-28T12:00:01Z","value":"+Inf","name":"DCGM_FI_DEV_GPU_UTIL","labels":{"UUID":"G"}}"#, "non-finite"),
            (br#"{"timestamp":"2026-11-28T12:00:01Z","value":"140","name":"DCGM_FI_DEV_GPU_UTIL","labels":{"UUID":"G"}}"#, "outside the valid range"),
            (br#"{"timestamp":"2026-11-28T12:00:01Z","value":"abc","name":"DCGM_FI_DEV_GPU_UTIL","labels":{"UUID":"G"}}"#, "not a number"),
            (br#"{"timestamp":12,"value":"1","name":"DCGM_FI_DEV_GPU_UTIL","labels":{"UUID":"G"}}"#, "invalid JSON"),
            (br#"{"timestamp":"yesterday","value":"1","name":"DCGM_FI_DEV_GPU_UTIL","labels":{"UUID":"G"}}"#, "not RFC 3339"),
            (br#"{"timestamp":"2026-11-28T12:00:01Z","value":"1","name":"DCGM_FI_DEV_GPU_UTIL","labels":{}}"#, "missing UUID"),
            (b"{\"timestamp\":\"2026-11-28T12:00:01Z\",\"value\":\"1\",\"name\":\"DCGM_FI_DEV_GPU_UTIL\",\"labels\":{\"UUID\":\"\xff\"}}", "invalid JSON"),
        ];
        for (msg, want) in cases {
            let err = outcome(msg).unwrap_err();
            assert!(err.contains(want), "{err} should contain {want}");
        }
    }

    #[test]
    fn deep_nesting_is_invalid_not_a_crash() {
        let mut m = String::from(
            r#"{"timestamp":"2026-11-28T12:00:01Z","value":"1","name":"DCGM_FI_DEV_GPU_UTIL","labels":{"UUID":"G"},"x":"#,
        );
        m.push_str(&"[".repeat(100_000));
        assert!(outcome(m.as_bytes()).unwrap_err().contains("invalid JSON"));
    }
}
