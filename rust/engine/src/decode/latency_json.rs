//! Request latency events (docs/inputs.md 2): gpuledger's JSON and vLLM's per-request form.
//!
//! gpuledger: `{"ts":..,"service":..,"namespace":..,"pod":..,"latency_ms":..,"ttft_ms":..,
//! "status":200,"tokens_in":..,"tokens_out":..,"request_id":..,"error":false}`.
//! vLLM: `usage.prompt_tokens`, `usage.completion_tokens`, `metrics.time_to_first_token_ms`,
//! `metrics.queue_time_ms`, `metrics.generation_time_ms`, and `model` as the service when
//! there is no `service`.
//!
//! Rules (docs/decoders.md): `ts` as for wide JSON (Unix seconds, integer ms above 1e11, or
//! RFC 3339). Latency is `latency_ms` when given; else `queue_time_ms + ttft_ms +
//! generation_time_ms` from `metrics` (absent parts count 0, at least one present); else
//! the message is invalid. An error is `status >= 500` or `"error": true`. Latencies, TTFT
//! and token counts must be finite and >= 0. A request without a service gets one from the
//! pod-to-service patterns (engine); without either it is invalid there.

use super::decimal::parse_f64;
use super::json_scan::{Scanner, Tok};
use super::latency_json_plain::decode_plain;
use super::request_fields::RequestFields;
use super::wide_json::timestamp;
use crate::time::EpochMs;
use std::borrow::Cow;

/// One finished request: its labels and its values.
#[derive(Debug, Clone, PartialEq)]
pub struct Request<'a> {
    pub service: Cow<'a, str>,
    pub namespace: Cow<'a, str>,
    pub pod: Cow<'a, str>,
    pub values: RequestValues<'a>,
}

/// A request's values apart from its labels: what every input form decodes to and what
/// the latency panes add.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestValues<'a> {
    pub ts_ms: EpochMs,
    pub latency_ms: f64,
    pub ttft_ms: Option<f64>,
    pub error: bool,
    pub tokens_in: f64,
    pub tokens_out: f64,
    pub request_id: Cow<'a, str>,
}

fn number(key: &str, tok: Tok<'_>) -> Result<Option<f64>, String> {
    let v = match tok {
        Tok::Null => return Ok(None),
        Tok::Num(n) => n.value(),
        Tok::Str(s) => parse_f64(s.value().trim()),
        t => return Err(format!("{key} is {}, expected a number", t.kind())),
    };
    match v {
        Some(v) if v.is_finite() && v >= 0.0 => Ok(Some(v)),
        Some(v) => Err(format!("{key} {v} is not a finite number >= 0")),
        None => Err(format!("{key} is not a number")),
    }
}

fn text<'a>(key: &str, tok: Tok<'a>) -> Result<Cow<'a, str>, String> {
    match tok {
        Tok::Str(s) => Ok(s.value()),
        Tok::Null => Ok(Cow::Borrowed("")),
        Tok::Num(n) if key == "request_id" => Ok(Cow::Borrowed(n.text())),
        t => Err(format!("{key} is {}, expected a string", t.kind())),
    }
}

/// Reads the members of a nested object (`usage`, `metrics`) into `f(key, token)`.
fn nested<'a>(
    s: &mut Scanner<'a>,
    mut f: impl FnMut(&str, Tok<'a>) -> Result<(), String>,
) -> Result<(), String> {
    if s.peek() != Some(b'{') {
        let t = s.token(1)?;
        return match t {
            Tok::Null => Ok(()),
            t => Err(format!("expected an object, got {}", t.kind())),
        };
    }
    s.open_object()?;
    let mut first = true;
    while let Some(key) = s.next_key(&mut first)? {
        let tok = s.token(2)?;
        f(&key, tok)?;
    }
    Ok(())
}

/// Decodes one request event; `Err` is the dead-letter reason. Messages in the plain form
/// take the short path (`latency_json_plain`), which gives the same result.
#[inline]
pub fn decode(bytes: &[u8]) -> Result<Request<'_>, String> {
    match decode_plain(bytes) {
        Some(r) => Ok(r),
        None => decode_general(bytes),
    }
}

/// `decode` for any message: the key-by-key path, which words every dead-letter reason.
pub fn decode_general(bytes: &[u8]) -> Result<Request<'_>, String> {
    let mut s = Scanner::new(bytes);
    s.open_message()?;
    let (mut ts, mut latency) = (None, None);
    let mut f = RequestFields::new();
    let (mut queue, mut generation) = (None, None);
    let mut first = true;
    while let Some(key) = s.next_key(&mut first)? {
        match &*key {
            "usage" => nested(&mut s, |k, t| {
                match k {
                    "prompt_tokens" => {
                        f.tokens_in = f.tokens_in.or(number("usage.prompt_tokens", t)?)
                    }
                    "completion_tokens" => {
                        f.tokens_out = f.tokens_out.or(number("usage.completion_tokens", t)?)
                    }
                    _ => {}
                }
                Ok(())
            })
            .map_err(|e| format!("usage: {e}"))?,
            "metrics" => nested(&mut s, |k, t| {
                match k {
                    "time_to_first_token_ms" => {
                        f.ttft_ms = f.ttft_ms.or(number("metrics.time_to_first_token_ms", t)?)
                    }
                    "queue_time_ms" => queue = number("metrics.queue_time_ms", t)?,
                    "generation_time_ms" => generation = number("metrics.generation_time_ms", t)?,
                    _ => {}
                }
                Ok(())
            })
            .map_err(|e| format!("metrics: {e}"))?,
            "error" => {
                let is_true = s.peek() == Some(b't');
                match s.token(1)? {
                    Tok::Bool | Tok::Null => f.error = is_true,
                    t => return Err(format!("error is {}, expected true or false", t.kind())),
                }
            }
            k => {
                let tok = s.token(1)?;
                match k {
                    "ts" => ts = Some(timestamp(tok)?),
                    "service" => f.service = text(k, tok)?,
                    "model" => f.model = text(k, tok)?,
                    "namespace" => f.namespace = text(k, tok)?,
                    "pod" => f.pod = text(k, tok)?,
                    "request_id" => f.request_id = text(k, tok)?,
                    "latency_ms" => latency = number(k, tok)?,
                    "ttft_ms" => f.ttft_ms = number(k, tok)?.or(f.ttft_ms),
                    "tokens_in" => f.tokens_in = number(k, tok)?.or(f.tokens_in),
                    "tokens_out" => f.tokens_out = number(k, tok)?.or(f.tokens_out),
                    "status" => {
                        f.status = match tok {
                            Tok::Num(n) => {
                                Some(n.text().parse::<i64>().map_err(|_| {
                                    format!("status {} is not an integer", n.text())
                                })?)
                            }
                            Tok::Null => None,
                            t => {
                                return Err(format!("status is {}, expected an integer", t.kind()))
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    s.finish()?;
    let ts_ms = ts.ok_or("missing ts")?;
    let latency_ms = match latency {
        Some(l) => l,
        None if queue.is_some() || generation.is_some() || f.ttft_ms.is_some() => {
            queue.unwrap_or(0.0) + f.ttft_ms.unwrap_or(0.0) + generation.unwrap_or(0.0)
        }
        None => return Err("missing latency_ms (and no vLLM metrics to derive it)".into()),
    };
    Ok(f.into_request(ts_ms, latency_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"{"ts":1764331201.532,"service":"chat-llm","namespace":"team-chat","pod":"vllm-chat-5d8c-0","latency_ms":182.4,"ttft_ms":41.0,"status":200,"tokens_in":512,"tokens_out":128,"request_id":"r-8f1c"}"#;

    #[test]
    fn decodes_the_spec_example() {
        let d = decode(SPEC.as_bytes()).unwrap();
        assert_eq!(
            (&*d.service, &*d.namespace, &*d.pod),
            ("chat-llm", "team-chat", "vllm-chat-5d8c-0")
        );
        let r = d.values;
        assert_eq!(r.ts_ms, 1_764_331_201_532);
        assert_eq!((r.latency_ms, r.ttft_ms), (182.4, Some(41.0)));
        assert_eq!((r.tokens_in, r.tokens_out, r.error), (512.0, 128.0, false));
        assert_eq!(&*r.request_id, "r-8f1c");
    }

    #[test]
    fn vllm_form_derives_latency_and_tokens() {
        let m = br#"{"ts":1764331201000,"model":"llama-3-70b","pod":"vllm-0","usage":{"prompt_tokens":100,"completion_tokens":20,"total_tokens":120},"metrics":{"queue_time_ms":5.0,"time_to_first_token_ms":40.0,"generation_time_ms":300.0,"extra":[1,2]}}"#;
        let d = decode(m).unwrap();
        assert_eq!(&*d.service, "llama-3-70b");
        let r = d.values;
        assert_eq!(r.latency_ms, 345.0);
        assert_eq!(
            (r.ttft_ms, r.tokens_in, r.tokens_out),
            (Some(40.0), 100.0, 20.0)
        );
        assert_eq!(r.ts_ms, 1_764_331_201_000);
    }

    #[test]
    fn errors_from_status_or_flag() {
        let e1 = br#"{"ts":1764331201,"service":"s","latency_ms":1,"status":503}"#;
        let e2 = br#"{"ts":1764331201,"service":"s","latency_ms":1,"status":200,"error":true}"#;
        let ok = br#"{"ts":1764331201,"service":"s","latency_ms":1,"status":404,"error":false}"#;
        assert!(decode(e1).unwrap().values.error);
        assert!(decode(e2).unwrap().values.error);
        assert!(!decode(ok).unwrap().values.error);
    }

    #[test]
    fn bad_requests_have_reasons() {
        let cases: &[(&[u8], &str)] = &[
            (
                br#"{"ts":1764331201,"service":"s","latency_ms":-5}"#,
                "not a finite number >= 0",
            ),
            (
                br#"{"ts":1764331201,"service":"s","latency_ms":"NaN"}"#,
                "not a finite number >= 0",
            ),
            (br#"{"ts":1764331201,"service":"s"}"#, "missing latency_ms"),
            (br#"{"service":"s","latency_ms":1}"#, "missing ts"),
            (
                br#"{"ts":1764331201,"service":"s","latency_ms":1,"status":"ok"}"#,
                "status is a string",
            ),
            (
                br#"{"ts":1764331201,"service":"s","latency_ms":1,"usage":[1]}"#,
                "usage: expected an object",
            ),
            (
                br#"{"ts":1764331201,"service":"s","latency_ms":1,"error":"yes"}"#,
                "error is a string",
            ),
            (
                br#"{"ts":1764331201,"service":"s","latency_ms":1"#,
                "unexpected end of input",
            ),
            (b"[1]", "expected a JSON object"),
        ];
        for (m, want) in cases {
            let e = decode(m).unwrap_err();
            assert!(e.contains(want), "{e:?} should contain {want:?}");
        }
    }
}
