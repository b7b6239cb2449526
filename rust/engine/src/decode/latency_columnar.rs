//! Columnar request latency events (docs/inputs.md 2, columnar input): one request per row
//! of an Arrow batch with the columns of gpuledger's JSON form (`ts`, `service`,
//! `namespace`, `pod`, `latency_ms`, `ttft_ms`, `status`, `error`, `tokens_in`,
//! `tokens_out`, `request_id`). Rows decode to the same [`Request`] as JSON events.

use super::arrow_cols::{find_column, num_column, str_column, NumCol, StrCol, TimeCol};
use super::latency_json::{Request, RequestValues};
use arrow_array::cast::AsArray;
use arrow_array::{Array, BooleanArray, RecordBatch};
use arrow_schema::DataType;
use std::borrow::Cow;

pub struct LatencyBatch<'a> {
    rows: usize,
    ts: TimeCol<'a>,
    latency: NumCol<'a>,
    service: Option<StrCol<'a>>,
    namespace: Option<StrCol<'a>>,
    pod: Option<StrCol<'a>>,
    request_id: Option<StrCol<'a>>,
    ttft: Option<NumCol<'a>>,
    status: Option<NumCol<'a>>,
    error: Option<&'a BooleanArray>,
    tokens_in: Option<NumCol<'a>>,
    tokens_out: Option<NumCol<'a>>,
}

fn text_at<'c>(c: &'c Option<StrCol<'_>>, i: usize) -> Cow<'c, str> {
    Cow::Borrowed(c.as_ref().and_then(|c| c.get(i)).unwrap_or(""))
}

/// An optional column's value at row `i`: `Some(None)` when absent or null, `None` when
/// not a finite number >= 0. Always inlined: as a closure called three times per row the
/// compiler kept it out of line, at 15 % of the request fast path.
#[inline(always)]
fn optional_non_negative(c: &Option<NumCol<'_>>, i: usize) -> Option<Option<f64>> {
    match c.as_ref().and_then(|c| c.get(i)) {
        Some(v) if !(v.is_finite() && v >= 0.0) => None,
        v => Some(v),
    }
}

/// Whether a batch looks like request events (it has a `latency_ms` column).
pub fn is_requests(batch: &RecordBatch) -> bool {
    find_column(batch, &["latency_ms"]).is_some()
}

impl<'a> LatencyBatch<'a> {
    /// Resolves the columns; `Err` when the batch as a whole cannot be read.
    pub fn new(b: &'a RecordBatch) -> Result<Self, String> {
        let ts = find_column(b, &["ts", "timestamp"])
            .ok_or("no time column (expected \"ts\" or \"timestamp\")")?;
        let ts = TimeCol::new(ts)
            .ok_or_else(|| format!("column \"ts\" has unsupported type {}", ts.data_type()))?;
        let error = match find_column(b, &["error"]) {
            None => None,
            Some(a) if a.data_type() == &DataType::Boolean => Some(a.as_boolean()),
            Some(a) => {
                return Err(format!(
                    "column \"error\" must be boolean, not {}",
                    a.data_type()
                ))
            }
        };
        Ok(LatencyBatch {
            rows: b.num_rows(),
            ts,
            latency: num_column(b, &["latency_ms"])?.ok_or("no \"latency_ms\" column")?,
            service: str_column(b, &["service"])?,
            namespace: str_column(b, &["namespace"])?,
            pod: str_column(b, &["pod"])?,
            request_id: str_column(b, &["request_id"])?,
            ttft: num_column(b, &["ttft_ms"])?,
            status: num_column(b, &["status"])?,
            error,
            tokens_in: num_column(b, &["tokens_in"])?,
            tokens_out: num_column(b, &["tokens_out"])?,
        })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The label columns (service, namespace, pod), for callers that resolve dictionary
    /// entries once per batch rather than once per row.
    pub fn labels(&self) -> [Option<&StrCol<'a>>; 3] {
        [
            self.service.as_ref(),
            self.namespace.as_ref(),
            self.pod.as_ref(),
        ]
    }

    /// The stored `latency_ms` and `ttft_ms` values when Float64 (row `i` of a plain row
    /// reads exactly these), for computing per block what depends on them alone.
    pub fn f64_latencies(&self) -> [Option<&'a [f64]>; 2] {
        [
            self.latency.f64_values(),
            self.ttft.as_ref().and_then(|c| c.f64_values()),
        ]
    }

    /// Row `i`'s values without its labels when every one is present where required and
    /// valid (what [`Self::row`] accepts); `None` when the row needs `row` (to be
    /// rejected with its reason, or otherwise checked).
    #[inline]
    pub fn plain_row(&self, i: usize) -> Option<RequestValues<'_>> {
        let ok = |v: f64| v.is_finite() && v >= 0.0;
        let opt = |c: &Option<NumCol<'_>>| optional_non_negative(c, i);
        let ts_ms = self.ts.get_ms(i)?;
        let latency_ms = self.latency.get(i).filter(|&v| ok(v))?;
        let status = self.status.as_ref().and_then(|c| c.get(i));
        let flagged = self.error.is_some_and(|e| e.is_valid(i) && e.value(i));
        Some(RequestValues {
            ts_ms,
            latency_ms,
            ttft_ms: opt(&self.ttft)?,
            error: flagged || status.is_some_and(|c| c >= 500.0),
            tokens_in: opt(&self.tokens_in)?.unwrap_or(0.0),
            tokens_out: opt(&self.tokens_out)?.unwrap_or(0.0),
            request_id: text_at(&self.request_id, i),
        })
    }

    /// Row `i` as a request; `Err` is its dead-letter reason.
    pub fn row(&self, i: usize) -> Result<Request<'_>, String> {
        let non_negative = |name: &str, v: Option<f64>| -> Result<Option<f64>, String> {
            match v {
                Some(x) if !(x.is_finite() && x >= 0.0) => {
                    Err(format!("{name} {x} is not a finite number >= 0"))
                }
                other => Ok(other),
            }
        };
        let latency_ms =
            non_negative("latency_ms", self.latency.get(i))?.ok_or("null latency_ms")?;
        let status = self.status.as_ref().and_then(|c| c.get(i));
        let flagged = self.error.is_some_and(|e| e.is_valid(i) && e.value(i));
        let values = RequestValues {
            ts_ms: self.ts.get(i)?,
            latency_ms,
            ttft_ms: non_negative("ttft_ms", self.ttft.as_ref().and_then(|c| c.get(i)))?,
            error: flagged || status.is_some_and(|c| c >= 500.0),
            tokens_in: non_negative("tokens_in", self.tokens_in.as_ref().and_then(|c| c.get(i)))?
                .unwrap_or(0.0),
            tokens_out: non_negative(
                "tokens_out",
                self.tokens_out.as_ref().and_then(|c| c.get(i)),
            )?
            .unwrap_or(0.0),
            request_id: text_at(&self.request_id, i),
        };
        Ok(Request {
            service: text_at(&self.service, i),
            namespace: text_at(&self.namespace, i),
            pod: text_at(&self.pod, i),
            values,
        })
    }
}
