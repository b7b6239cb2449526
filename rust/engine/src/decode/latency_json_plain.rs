//! The short path of the request JSON decoder: one straight pass over a message in the
//! plain form producers write (no whitespace, no escapes, each known key at most once, plain
//! decimal numbers, scalar values), giving exactly what `latency_json::decode_general`
//! gives for it. Anything else returns `None`, and the general decoder (which also words the
//! dead-letter reasons) reads the message from the start. On bench_latency.py's events this
//! halves decoding (docs/decoders.md).
//!
//! Why results are equal: every accepted message is valid JSON that the general decoder
//! reads key by key the same way: strings are borrowed as they stand (no escapes to
//! decode; non-ASCII text is checked as UTF-8 as there), numbers are at most 15 digits
//! without sign or exponent, which `JsonNum::value` values with the same `exact_decimal`,
//! and no known key repeats (so "last wins" and "null keeps the earlier value" never
//! matter). `usage` and `metrics` (vLLM's form), a missing `ts` or `latency_ms`, and every
//! value the general path would reject are left to it.

use super::decimal::{exact_decimal, EXACT_DIGITS};
use super::json_scan::first_special16;
use super::latency_json::Request;
use super::request_fields::RequestFields;
use crate::time::unix_number_to_ms;
use std::borrow::Cow;

/// The keys the short path knows; `Other` is any key the general decoder ignores.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    Ts,
    Service,
    Model,
    Namespace,
    Pod,
    RequestId,
    Latency,
    Ttft,
    TokensIn,
    TokensOut,
    Status,
    Error,
    Other,
}

/// The key of a name; `None` for the keys whose values are objects (`usage`, `metrics`).
#[inline(always)]
fn key_of(name: &[u8]) -> Option<Key> {
    Some(match name {
        b"ts" => Key::Ts,
        b"service" => Key::Service,
        b"namespace" => Key::Namespace,
        b"pod" => Key::Pod,
        b"latency_ms" => Key::Latency,
        b"ttft_ms" => Key::Ttft,
        b"status" => Key::Status,
        b"tokens_in" => Key::TokensIn,
        b"tokens_out" => Key::TokensOut,
        b"request_id" => Key::RequestId,
        b"model" => Key::Model,
        b"error" => Key::Error,
        b"usage" | b"metrics" => return None,
        _ => Key::Other,
    })
}

/// The string whose opening quote is at `b[i - 1]`: its contents' end (the closing quote's
/// index) and whether it is all ASCII. `None` at an escape, a control character or the end
/// of the message.
#[inline(always)]
fn string_end(b: &[u8], mut i: usize) -> Option<(usize, bool)> {
    let mut ascii = true;
    loop {
        let c = match b.get(i..).and_then(<[u8]>::first_chunk::<16>) {
            Some(chunk) => {
                let k = first_special16(chunk);
                i += k;
                if k == 16 {
                    continue;
                }
                b[i]
            }
            None => *b.get(i)?,
        };
        match c {
            b'"' => return Some((i, ascii)),
            0x80.. => ascii = false,
            b'\\' | 0..=0x1f => return None,
            _ => {}
        }
        i += 1;
    }
}

/// The string value at `b[i]` (its opening quote), borrowed, and the index after it.
#[inline(always)]
fn string_at(b: &[u8], i: usize) -> Option<(Cow<'_, str>, usize)> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let (end, ascii) = string_end(b, i + 1)?;
    let raw = &b[i + 1..end];
    let s = if ascii {
        // SAFETY: `string_end` saw every byte of `raw` below 0x80: ASCII is valid UTF-8.
        unsafe { std::str::from_utf8_unchecked(raw) }
    } else {
        std::str::from_utf8(raw).ok()?
    };
    Some((Cow::Borrowed(s), end + 1))
}

/// The plain number at `b[i]`: `0` or `[1-9][0-9]*`, then optionally `.` and digits, at most
/// [`EXACT_DIGITS`] digits in all: its digits as an integer, its digits after the point, and
/// the index after it. What follows is the caller's to check (',' or '}').
#[inline(always)]
fn number_at(b: &[u8], mut i: usize) -> Option<(u64, usize, usize)> {
    let start = i;
    let mut m: u64 = 0;
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            while let Some(&c) = b.get(i).filter(|c| c.is_ascii_digit()) {
                m = m * 10 + u64::from(c - b'0');
                i += 1;
                if i - start > EXACT_DIGITS {
                    return None;
                }
            }
        }
        _ => return None,
    }
    let int_digits = i - start;
    let mut frac_digits = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        while let Some(&c) = b.get(i).filter(|c| c.is_ascii_digit()) {
            m = m * 10 + u64::from(c - b'0');
            i += 1;
            frac_digits += 1;
            if int_digits + frac_digits > EXACT_DIGITS {
                return None;
            }
        }
        if frac_digits == 0 {
            return None;
        }
    }
    Some((m, frac_digits, i))
}

/// The value of a plain number at `b[i]` and the index after it.
#[inline(always)]
fn value_at(b: &[u8], i: usize) -> Option<(f64, usize)> {
    let (m, frac, end) = number_at(b, i)?;
    Some((exact_decimal(m, frac, false), end))
}

/// Skips the scalar (string, plain number, `true`, `false`, `null`) at `b[i]`.
#[inline]
fn skip_scalar(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => string_at(b, i).map(|(_, end)| end),
        b'0'..=b'9' => number_at(b, i).map(|(_, _, end)| end),
        _ => literal_at(b, i).map(|(_, end)| end),
    }
}

/// `true`, `false` or `null` at `b[i]`: whether it is `true`, and the index after it.
#[inline]
fn literal_at(b: &[u8], i: usize) -> Option<(bool, usize)> {
    let rest = b.get(i..)?;
    if rest.starts_with(b"true") {
        Some((true, i + 4))
    } else if rest.starts_with(b"false") {
        Some((false, i + 5))
    } else if rest.starts_with(b"null") {
        Some((false, i + 4))
    } else {
        None
    }
}

/// Decodes a request event in the plain form; `None`: not in that form (the general
/// decoder then reads it, and may accept or reject it).
#[inline]
pub fn decode_plain(b: &[u8]) -> Option<Request<'_>> {
    if b.first() != Some(&b'{') || b.last() != Some(&b'}') {
        return None;
    }
    let mut seen: u16 = 0;
    let (mut ts, mut latency) = (None, None);
    let mut f = RequestFields::new();
    let mut i = 1;
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        // Keys are short: one 16-byte step finds their end.
        let (end, ascii) = string_end(b, i + 1)?;
        if !ascii || b.get(end + 1) != Some(&b':') {
            return None;
        }
        let key = key_of(&b[i + 1..end])?;
        i = end + 2;
        if key != Key::Other {
            let bit = 1u16 << key as u16;
            if seen & bit != 0 {
                return None;
            }
            seen |= bit;
        }
        i = match key {
            Key::Ts => {
                let (v, end) = value_at(b, i)?;
                ts = Some(unix_number_to_ms(v)?);
                end
            }
            Key::Latency | Key::Ttft | Key::TokensIn | Key::TokensOut => {
                let (v, end) = value_at(b, i)?;
                *match key {
                    Key::Latency => &mut latency,
                    Key::Ttft => &mut f.ttft_ms,
                    Key::TokensIn => &mut f.tokens_in,
                    _ => &mut f.tokens_out,
                } = Some(v);
                end
            }
            Key::Service | Key::Model | Key::Namespace | Key::Pod | Key::RequestId => {
                let (s, end) = string_at(b, i)?;
                *match key {
                    Key::Service => &mut f.service,
                    Key::Model => &mut f.model,
                    Key::Namespace => &mut f.namespace,
                    Key::Pod => &mut f.pod,
                    _ => &mut f.request_id,
                } = s;
                end
            }
            Key::Status => {
                let (m, frac, end) = number_at(b, i)?;
                if frac > 0 {
                    return None; // "200.0": the general decoder says it is not an integer
                }
                // At most 15 digits: within i64.
                f.status = Some(m as i64);
                end
            }
            Key::Error => {
                let (is_true, end) = literal_at(b, i)?;
                f.error = is_true;
                end
            }
            Key::Other => skip_scalar(b, i)?,
        };
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') if i + 1 == b.len() => break,
            _ => return None,
        }
    }
    Some(f.into_request(ts?, latency?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::latency_json::{decode, decode_general};
    use crate::decode::test_support::Rng;

    /// bench_latency.py's form.
    const BENCH: &str = r#"{"ts":1795867200.001,"service":"chat-llm","namespace":"team-chat-llm","pod":"chat-llm-1","latency_ms":90.017,"ttft_ms":20.5,"status":200,"tokens_in":1234,"tokens_out":56,"request_id":"r-1"}"#;

    /// Both paths give the same request, or the same dead-letter reason (compared through
    /// `Debug`, which tells -0.0 from 0.0).
    fn same_as_general(m: &[u8]) -> bool {
        let (got, want) = (decode(m), decode_general(m));
        assert_eq!(
            format!("{got:?}"),
            format!("{want:?}"),
            "{:?}",
            String::from_utf8_lossy(m)
        );
        decode_plain(m).is_some()
    }

    #[test]
    fn the_plain_forms_take_the_short_path() {
        for m in [
            BENCH,
            r#"{"ts":1764331201.532,"service":"chat-llm","namespace":"team-chat","pod":"vllm-chat-5d8c-0","latency_ms":182.4,"ttft_ms":41.0,"status":200,"tokens_in":512,"tokens_out":128,"request_id":"r-8f1c"}"#,
            r#"{"ts":1764331201532,"model":"llama","latency_ms":0,"error":false,"route":"/v1/chat","n":3,"ok":true,"x":null}"#,
            r#"{"latency_ms":5.25,"ts":1764331201,"service":"caf\u00e9","pod":"p\u00f6d-0","status":503}"#,
        ] {
            let m = m.replace("\\u00e9", "\u{e9}").replace("\\u00f6", "\u{f6}");
            assert!(same_as_general(m.as_bytes()), "{m}");
        }
        let r = decode_plain(BENCH.as_bytes()).unwrap();
        assert_eq!((&*r.service, &*r.pod), ("chat-llm", "chat-llm-1"));
        assert_eq!(r.values.ts_ms, 1_795_867_200_001);
        assert_eq!(
            (r.values.latency_ms, r.values.ttft_ms),
            (90.017, Some(20.5))
        );
        assert_eq!((r.values.tokens_in, r.values.tokens_out), (1234.0, 56.0));
        assert!(!r.values.error);
    }

    /// Inputs outside the plain form go to the general decoder: accepted the same, or
    /// rejected with its reason.
    #[test]
    fn other_forms_and_bad_messages_go_to_the_general_path() {
        #[rustfmt::skip]
        let cases: &[(&str, Option<&str>)] = &[
            (r#"{ "ts":1764331201,"service":"s","latency_ms":1}"#, None),
            (r#"{"ts":1764331201,"service":"s","latency_ms":1} "#, None),
            (r#"{"ts":1764331201,"service":"s\"q","latency_ms":1}"#, None),
            (r#"{"t\u0073":1764331201,"service":"s","latency_ms":1}"#, None),
            (r#"{"ts":1764331201,"service":"s","latency_ms":1e2}"#, None),
            (r#"{"ts":"1764331201","service":"s","latency_ms":1}"#, None),
            (r#"{"ts":1764331201,"service":"s","latency_ms":1,"latency_ms":null}"#, Some("missing latency_ms")),
            (r#"{"ts":1764331201,"service":"s","latency_ms":1,"ttft_ms":2,"ttft_ms":null}"#, None),
            (r#"{"ts":1764331201,"service":"s","latency_ms":-5}"#, Some("not a finite number >= 0")),
            (r#"{"ts":1764331201,"service":"s","latency_ms":"NaN"}"#, Some("not a finite number >= 0")),
            (r#"{"ts":1764331201,"service":"s","latency_ms":01}"#, Some("invalid JSON at byte")),
            (r#"{"ts":1764331201,"service":"s","latency_ms":1.}"#, Some("invalid JSON at byte")),
            (r#"{"ts":1764331201,"service":"s","latency_ms":12345678901234567}"#, None),
            (r#"{"ts":1764331201,"service":"s","latency_ms":1,"status":200.0}"#, Some("status 200.0 is not an integer")),
            (r#"{"ts":1764331201,"service":"s","latency_ms":1,"status":"ok"}"#, Some("status is a string")),
            (r#"{"ts":1764331201,"service":"s","latency_ms":1,"error":"yes"}"#, Some("error is a string")),
            (r#"{"ts":1764331201,"service":5,"latency_ms":1}"#, Some("service is a number")),
            (r#"{"ts":1764331201,"service":"s","latency_ms":1,"usage":{"prompt_tokens":3}}"#, None),
            (r#"{"ts":1764331201,"service":"s","latency_ms":1,"extra":[1,{"a":2}]}"#, None),
            (r#"{"ts":1764331201,"service":"s","latency_ms":1,"bad":"\u0001"}"#, None),
            (r#"{"ts":1764331201,"service":"s"}"#, Some("missing latency_ms")),
            (r#"{"service":"s","latency_ms":1}"#, Some("missing ts")),
            (r#"{"ts":1764331201,"service":"s","latency_ms":1"#, Some("unexpected end of input")),
            (r#"{"ts":1764331201,"service":"s","latency_ms":1}}"#, Some("trailing characters")),
            (r#"{"ts":1764331201,"service":"s","latency_ms":1,}"#, Some("expected a string key")),
            (r#"{"ts":1764331201,,"service":"s","latency_ms":1}"#, Some("expected a string key")),
            (r#"{"ts":1764331201"service":"s","latency_ms":1}"#, Some("expected ',' or '}'")),
            (r#"{"ts":1764331201,"service":"s","latency_ms":tru}"#, Some("invalid literal")),
            ("[1]", Some("expected a JSON object")),
            ("{}", Some("missing ts")),
            ("", Some("unexpected end of input")),
        ];
        for (m, reason) in cases {
            // The control character of the `bad` case must be raw in the message.
            let m = m.replace("\\u0001", "\u{1}");
            assert!(!same_as_general(m.as_bytes()), "{m}: took the short path");
            if let Some(want) = reason {
                let e = decode(m.as_bytes()).unwrap_err();
                assert!(e.contains(want), "{m}: {e:?} should contain {want:?}");
            }
        }
        // Invalid UTF-8 in a value: the general path's reason.
        let m = b"{\"ts\":1764331201,\"service\":\"\xff\xfe\",\"latency_ms\":1}";
        assert!(!same_as_general(m));
        assert!(decode(m).unwrap_err().contains("invalid UTF-8"));
    }

    /// Plain numbers (up to 15 digits, any position of the point) are valued as
    /// `str::parse::<f64>` values them, bit for bit.
    #[test]
    fn plain_numbers_equal_the_standard_parser() {
        let mut rng = Rng(41);
        let mut texts: Vec<String> = [
            "0",
            "0.0",
            "0.5",
            "1",
            "9",
            "10",
            "0.1",
            "0.2",
            "0.3",
            "0.000000000000001",
            "999999999999999",
            "99999999999999.9",
            "9007199254740991",
            "1795867200.001",
            "1795867200123",
            "123456789012.345",
            "0.123456789012345",
        ]
        .map(String::from)
        .to_vec();
        for _ in 0..200_000 {
            let digits = 1 + rng.below(15);
            let mut t: String = (0..digits)
                .map(|_| (b'0' + rng.below(10) as u8) as char)
                .collect();
            if t.len() > 1 && t.starts_with('0') {
                t.replace_range(..1, "1");
            }
            let point = rng.below(digits + 1);
            if point > 0 && point < digits {
                if t[..point].starts_with('0') && point > 1 {
                    t.replace_range(..1, "7");
                }
                t.insert(point, '.');
            }
            texts.push(t);
        }
        let mut valued = 0;
        for t in &texts {
            let m = format!("{t},");
            let want = t.parse::<f64>().unwrap();
            match value_at(m.as_bytes(), 0) {
                Some((v, end)) => {
                    assert_eq!(v.to_bits(), want.to_bits(), "{t}");
                    assert_eq!(end, t.len(), "{t}");
                    valued += 1;
                }
                // Only more than 15 digits leave the short path.
                None => assert!(
                    t.bytes().filter(u8::is_ascii_digit).count() > EXACT_DIGITS,
                    "{t}"
                ),
            }
        }
        assert!(valued > texts.len() - 10, "{valued} of {}", texts.len());
    }

    /// Generated messages, valid and not, in and out of the plain form: the decoder with the
    /// short path agrees with the general path on every one, and the short path takes most
    /// of the plain ones.
    #[test]
    fn agrees_with_the_general_path_on_generated_messages() {
        let mut rng = Rng(7);
        let texts = [
            r#""chat-llm""#,
            r#""""#,
            "\"caf\u{e9}-\u{4e16}\"",
            r#""a\"b""#,
            r#""\u00e9""#,
            r#""a-much-longer-label-value-past-sixteen-bytes-0123456789""#,
            "null",
            "5",
            "[1]",
            "{}",
            "true",
        ];
        let numbers = [
            "182.4",
            "0",
            "0.5",
            "512",
            "-1",
            "-0",
            "1e3",
            "1E-2",
            r#""12.5""#,
            "null",
            "01",
            "1.",
            "123456789012345",
            "1234567890123456",
            "0.000000000000001",
            "true",
            r#""NaN""#,
            "[]",
            "90.017",
        ];
        let stamps = [
            "1795867200.123",
            "1795867200",
            "1795867200123",
            "1.7958672e9",
            "-5",
            "0",
            r#""1795867200.5""#,
            r#""2026-11-28T12:00:01Z""#,
            "null",
            "12345678901234567",
            "1795867200.1234567",
            "946684799.999",
        ];
        let statuses = [
            "200", "503", "500", "499", "200.0", "-500", r#""ok""#, "null", "1e3", "0",
        ];
        let flags = ["true", "false", "null", r#""yes""#, "1"];
        let others = [
            "1",
            "2.5",
            r#""x""#,
            "true",
            "false",
            "null",
            "[1,2]",
            r#"{"a":1}"#,
            "-3",
            "1e5",
            "123456789012345678",
        ];
        let keys = [
            "ts",
            "service",
            "namespace",
            "pod",
            "latency_ms",
            "ttft_ms",
            "status",
            "tokens_in",
            "tokens_out",
            "request_id",
            "model",
            "error",
            "route",
            "x",
            "",
            "usage",
            "metrics",
        ];
        let alphabet = br#"{}[]":,.-+0123456789eE \tnultrfasx\"#;
        let (mut total, mut plain) = (0, 0);
        for n in 0..30_000 {
            let mut members: Vec<(String, String)> = Vec::new();
            for &k in &keys {
                let core = matches!(k, "ts" | "service" | "latency_ms");
                let rare = matches!(k, "usage" | "metrics" | "error" | "model" | "x" | "");
                let keep = (core && rng.chance(97)) || rng.chance(if rare { 4 } else { 50 });
                if !keep {
                    continue;
                }
                let v = match k {
                    "ts" if rng.chance(95) => "1795867200.001".to_string(),
                    "ts" => rng.pick(&stamps).to_string(),
                    "service" | "namespace" | "pod" | "model" | "request_id" if rng.chance(95) => {
                        format!("\"{k}-{}\"", rng.below(9))
                    }
                    "service" | "namespace" | "pod" | "model" | "request_id" => {
                        rng.pick(&texts).to_string()
                    }
                    "latency_ms" | "ttft_ms" | "tokens_in" | "tokens_out" if rng.chance(95) => {
                        format!("{}.{}", rng.below(5000), rng.below(1000))
                    }
                    "latency_ms" | "ttft_ms" | "tokens_in" | "tokens_out" => {
                        rng.pick(&numbers).to_string()
                    }
                    "status" if rng.chance(80) => "200".to_string(),
                    "status" => rng.pick(&statuses).to_string(),
                    "error" => rng.pick(&flags).to_string(),
                    "usage" => r#"{"prompt_tokens":10,"completion_tokens":5}"#.to_string(),
                    "metrics" => r#"{"time_to_first_token_ms":40.0,"queue_time_ms":1}"#.to_string(),
                    _ => rng.pick(&others).to_string(),
                };
                members.push((k.to_string(), v));
            }
            if rng.chance(30) {
                for i in (1..members.len()).rev() {
                    members.swap(i, rng.below(i + 1));
                }
            }
            if rng.chance(5) && !members.is_empty() {
                let again = members[rng.below(members.len())].clone();
                members.push(again);
            }
            let mut m = String::from("{");
            for (i, (k, v)) in members.iter().enumerate() {
                if i > 0 {
                    m.push(',');
                }
                m.push_str(&format!("\"{k}\":{v}"));
            }
            m.push('}');
            let mut bytes = m.into_bytes();
            if rng.chance(3) {
                let at = rng.below(bytes.len() + 1);
                bytes.insert(at, rng.pick(b" \t\r\n"));
            }
            if n % 4 == 3 {
                bytes = rng.mutate(&bytes, alphabet);
            }
            total += 1;
            plain += same_as_general(&bytes) as usize;
        }
        assert!(plain > total / 3, "short path for {plain} of {total}");
        assert!(plain < total, "every message took the short path");
    }
}
