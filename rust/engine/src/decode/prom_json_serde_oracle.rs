// The serde_json prometheus-kafka-adapter decoder that the hand-written scanner in
// prom_json.rs replaced, kept verbatim (commit a698b6d) as the baseline of
// benches/decoders.rs and as the oracle of prom_json's differential test. Not a module of
// the crate: both pull it in with `include!`, with `gpuledger_engine` naming the engine crate.

use gpuledger_engine::decode::{DecodeContext, Reading, ReadingSink};
use gpuledger_engine::series::GpuLabels;
use gpuledger_engine::time::parse_rfc3339_ms;
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
