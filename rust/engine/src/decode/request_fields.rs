//! The fields both request JSON decoders read (`latency_json::decode_general` and
//! `latency_json_plain::decode_plain`), and the one place the rules that turn them into a
//! [`Request`] live: `model` as the service when there is no `service`, an error when
//! `"error": true` or `status >= 500`, and token counts 0 when absent.
//!
//! Each decoder parses values its own way into a [`RequestFields`], then calls
//! [`RequestFields::into_request`] with the timestamp and latency it settled on (how a
//! missing one is handled differs: the general decoder words a dead-letter reason or
//! derives latency from vLLM's `metrics`; the short path leaves the message to it). The
//! struct only holds already-parsed, borrowed values, and the call is inlined, so neither
//! decoder pays an allocation or a pass for it.

use super::latency_json::{Request, RequestValues};
use crate::time::EpochMs;
use std::borrow::Cow;

/// What a decoder read from one request event, before the request rules: absent text is
/// empty, absent numbers `None`.
#[derive(Debug)]
pub(super) struct RequestFields<'a> {
    pub service: Cow<'a, str>,
    /// vLLM's name for the served model: the service when `service` is empty.
    pub model: Cow<'a, str>,
    pub namespace: Cow<'a, str>,
    pub pod: Cow<'a, str>,
    pub request_id: Cow<'a, str>,
    pub ttft_ms: Option<f64>,
    pub tokens_in: Option<f64>,
    pub tokens_out: Option<f64>,
    pub status: Option<i64>,
    /// `"error": true` (a `null` or `false` flag leaves it false).
    pub error: bool,
}

impl<'a> RequestFields<'a> {
    /// Nothing read yet. (Not `Default`: that would make the text fields `Cow::Owned`.)
    #[inline(always)]
    pub fn new() -> Self {
        RequestFields {
            service: Cow::Borrowed(""),
            model: Cow::Borrowed(""),
            namespace: Cow::Borrowed(""),
            pod: Cow::Borrowed(""),
            request_id: Cow::Borrowed(""),
            ttft_ms: None,
            tokens_in: None,
            tokens_out: None,
            status: None,
            error: false,
        }
    }

    /// The request these fields make, at `ts_ms` and with `latency_ms`.
    #[inline(always)]
    pub fn into_request(self, ts_ms: EpochMs, latency_ms: f64) -> Request<'a> {
        Request {
            service: if self.service.is_empty() {
                self.model
            } else {
                self.service
            },
            namespace: self.namespace,
            pod: self.pod,
            values: RequestValues {
                ts_ms,
                latency_ms,
                ttft_ms: self.ttft_ms,
                error: self.error || self.status.is_some_and(|c| c >= 500),
                tokens_in: self.tokens_in.unwrap_or(0.0),
                tokens_out: self.tokens_out.unwrap_or(0.0),
                request_id: self.request_id,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> RequestFields<'static> {
        RequestFields {
            service: Cow::Borrowed("chat"),
            model: Cow::Borrowed("llama"),
            namespace: Cow::Borrowed("team"),
            pod: Cow::Borrowed("pod-0"),
            request_id: Cow::Borrowed("r-1"),
            ttft_ms: Some(4.0),
            tokens_in: Some(12.0),
            tokens_out: Some(3.0),
            status: Some(200),
            error: false,
        }
    }

    #[test]
    fn carries_the_values_through() {
        let r = fields().into_request(1_795_867_200_001, 90.5);
        assert_eq!(
            (&*r.service, &*r.namespace, &*r.pod, &*r.values.request_id),
            ("chat", "team", "pod-0", "r-1")
        );
        let v = r.values;
        assert_eq!(
            (v.ts_ms, v.latency_ms, v.ttft_ms),
            (1_795_867_200_001, 90.5, Some(4.0))
        );
        assert_eq!((v.tokens_in, v.tokens_out, v.error), (12.0, 3.0, false));
    }

    #[test]
    fn model_is_the_service_only_without_one() {
        let r = RequestFields {
            service: Cow::Borrowed(""),
            ..fields()
        };
        assert_eq!(&*r.into_request(0, 1.0).service, "llama");
        let r = RequestFields {
            model: Cow::Borrowed(""),
            ..fields()
        };
        assert_eq!(&*r.into_request(0, 1.0).service, "chat");
    }

    #[test]
    fn error_from_the_flag_or_a_5xx_status() {
        let error = |status, flag| {
            RequestFields {
                status,
                error: flag,
                ..fields()
            }
            .into_request(0, 1.0)
            .values
            .error
        };
        assert!(error(Some(500), false));
        assert!(error(Some(503), false));
        assert!(error(Some(200), true));
        assert!(error(None, true));
        assert!(!error(Some(499), false));
        assert!(!error(None, false));
    }

    #[test]
    fn absent_tokens_count_zero() {
        let v = RequestFields::new().into_request(0, 1.0).values;
        assert_eq!((v.tokens_in, v.tokens_out, v.ttft_ms), (0.0, 0.0, None));
        assert!(!v.error);
    }
}
