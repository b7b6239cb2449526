//! The `LatencySketch` Python class and `merge_sketches`: decode, merge and query the
//! `latency_sketch` column (see docs/sketch-encoding.md) from Python.

use crate::errors::{input_err, reading_arrow_err, to_py_err};
use arrow_array::{Array, ArrayRef};
use gpuledger_engine::arrow_util::byte_values;
use gpuledger_engine::sketch::{
    LatencySketch as Core, SketchError, DEFAULT_MAX_BUCKETS, DEFAULT_RELATIVE_ACCURACY,
};
use gpuledger_engine::EngineError;
use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyTypeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyFloat, PyInt, PyTuple};
use pyo3_arrow::input::AnyArray;

/// Values per GIL release when inserting from a buffer; smaller batches keep the GIL.
const DETACH_MIN: usize = 1 << 15;

fn sketch_err(e: SketchError) -> PyErr {
    to_py_err(e.into())
}

/// A mergeable relative-error quantile sketch of latencies in milliseconds (DDSketch family).
#[pyclass(module = "gpuledger._engine", name = "LatencySketch", from_py_object)]
#[derive(Clone)]
pub struct LatencySketch {
    pub(crate) inner: Core,
}

/// Bytes of a `bytes`, `bytearray`, `memoryview` or other contiguous byte buffer.
fn with_bytes<R>(obj: &Bound<'_, PyAny>, f: impl FnOnce(&[u8]) -> R) -> PyResult<R> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(f(b.as_bytes()));
    }
    let buf = PyBuffer::<u8>::get(obj).map_err(|_| {
        PyTypeError::new_err(format!(
            "expected bytes or a LatencySketch, not {}",
            obj.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })?;
    let v = buf.to_vec(obj.py())?;
    Ok(f(&v))
}

/// True if the buffer holds native-endian f64 (PyBuffer's format check ignores byte order).
fn native_f64(buf: &PyBuffer<f64>) -> bool {
    let native: &[u8] = if cfg!(target_endian = "little") {
        b"<"
    } else {
        b">!"
    };
    match buf.format().to_bytes() {
        [b'd'] => true,
        [order, b'd'] => *order == b'@' || *order == b'=' || native.contains(order),
        _ => false,
    }
}

/// Merges one Arrow chunk of binary sketches (nulls skipped) into `acc`.
fn merge_arrow_chunk(acc: &mut Option<Core>, array: &ArrayRef, base: usize) -> Result<(), String> {
    let one = |acc: &mut Option<Core>, b: &[u8], i: usize| -> Result<(), String> {
        let row = base + i;
        match acc {
            None => *acc = Some(Core::from_bytes(b).map_err(|e| format!("row {row}: {e}"))?),
            Some(a) => a.merge_bytes(b).map_err(|e| format!("row {row}: {e}"))?,
        }
        Ok(())
    };
    let values = byte_values(array, false).ok_or_else(|| {
        format!(
            "a sketch column must be binary, large_binary or binary_view, not {}",
            array.data_type()
        )
    })?;
    for (i, b) in values.into_iter().enumerate() {
        if let Some(b) = b {
            one(acc, b, i)?;
        }
    }
    Ok(())
}

impl LatencySketch {
    fn add_slice(&mut self, py: Python<'_>, v: &[f64], skip_invalid: bool) -> PyResult<usize> {
        let inner = &mut self.inner;
        let mut run = move || -> Result<usize, SketchError> {
            if skip_invalid {
                Ok(v.len() - inner.insert_many_skip_invalid(v))
            } else {
                inner.insert_many(v).map(|()| v.len())
            }
        };
        if v.len() >= DETACH_MIN {
            py.detach(run)
        } else {
            run()
        }
        .map_err(sketch_err)
    }

    fn add_buffer(
        &mut self,
        py: Python<'_>,
        buf: &PyBuffer<f64>,
        skip_invalid: bool,
    ) -> PyResult<usize> {
        match buf.as_slice_ptr() {
            Some(ptr) => {
                // SAFETY: the buffer export (held by `buf` for this call) keeps the memory
                // alive; it is C-contiguous, non-null and aligned for f64 (checked by
                // PyBuffer). Like numpy's own kernels we assume nobody writes to the array
                // while it is being read.
                let v: &[f64] = unsafe { ptr.as_ref() };
                self.add_slice(py, v, skip_invalid)
            }
            None => {
                let v = buf.to_vec(py)?;
                self.add_slice(py, &v, skip_invalid)
            }
        }
    }
}

#[pymethods]
impl LatencySketch {
    /// An empty sketch. `relative_accuracy` (alpha) bounds the relative error of every
    /// quantile; at most `max_buckets` 8-byte counters are kept.
    #[new]
    #[pyo3(signature = (relative_accuracy = DEFAULT_RELATIVE_ACCURACY, max_buckets = DEFAULT_MAX_BUCKETS))]
    fn new(relative_accuracy: f64, max_buckets: u32) -> PyResult<Self> {
        Core::with_params(relative_accuracy, max_buckets)
            .map(|inner| Self { inner })
            .map_err(sketch_err)
    }

    /// Decodes a sketch from its bytes (the `latency_sketch` column); raises InputError.
    #[staticmethod]
    fn from_bytes(data: &Bound<'_, PyAny>) -> PyResult<Self> {
        with_bytes(data, Core::from_bytes)?
            .map(|inner| Self { inner })
            .map_err(sketch_err)
    }

    /// The versioned byte encoding (docs/sketch-encoding.md).
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.to_bytes())
    }

    fn __bytes__<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        self.to_bytes(py)
    }

    /// Adds latencies in milliseconds: a float, a numpy array (read in place when it is
    /// C-contiguous float64), any buffer or sequence of numbers. Negative, NaN and infinite
    /// values raise InputError and nothing is added, unless `skip_invalid` is true (then
    /// they are skipped). Returns the number of values added.
    #[pyo3(signature = (values, *, skip_invalid = false))]
    fn add(
        &mut self,
        py: Python<'_>,
        values: &Bound<'_, PyAny>,
        skip_invalid: bool,
    ) -> PyResult<usize> {
        if values.is_instance_of::<PyFloat>() || values.is_instance_of::<PyInt>() {
            let v: f64 = values.extract()?;
            return self.add_slice(py, &[v], skip_invalid);
        }
        if let Ok(buf) = PyBuffer::<f64>::get(values) {
            if native_f64(&buf) {
                return self.add_buffer(py, &buf, skip_invalid);
            }
        }
        // Other dtypes, lists, pyarrow arrays...: let numpy convert when it is installed.
        if let Ok(np) = py.import(intern!(py, "numpy")) {
            let arr = np.call_method1(
                intern!(py, "ascontiguousarray"),
                (values, intern!(py, "float64")),
            )?;
            let buf = PyBuffer::<f64>::get(&arr)?;
            if native_f64(&buf) {
                return self.add_buffer(py, &buf, skip_invalid);
            }
        }
        let v: Vec<f64> = values.extract()?;
        self.add_slice(py, &v, skip_invalid)
    }

    /// Merges another sketch (or its bytes) into this one: afterwards this is the sketch of
    /// the union. Raises InputError for a different relative accuracy or invalid bytes.
    fn merge(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<()> {
        if other.is(slf) {
            let copy = slf.borrow().inner.clone();
            return slf.borrow_mut().inner.merge(&copy).map_err(sketch_err);
        }
        if let Ok(o) = other.cast::<LatencySketch>() {
            let o = o.try_borrow()?;
            return slf
                .try_borrow_mut()?
                .inner
                .merge(&o.inner)
                .map_err(sketch_err);
        }
        let mut me = slf.try_borrow_mut()?;
        with_bytes(other, |b| me.inner.merge_bytes(b))?.map_err(sketch_err)
    }

    /// The q-quantile (0 <= q <= 1) in ms, within `relative_accuracy` of the true value; None
    /// when the sketch is empty.
    fn quantile(&self, q: f64) -> PyResult<Option<f64>> {
        if !(0.0..=1.0).contains(&q) {
            return Err(to_py_err(EngineError::Argument(format!(
                "quantile must be in [0, 1], not {q}"
            ))));
        }
        Ok(self.inner.quantile(q))
    }

    /// Several quantiles at once.
    fn quantiles(&self, qs: Vec<f64>) -> PyResult<Vec<Option<f64>>> {
        qs.into_iter().map(|q| self.quantile(q)).collect()
    }

    /// Non-empty buckets as (lower, upper, count): the values in (lower, upper] ms. The zero
    /// bucket (values below 1 µs) is not listed: see `zero_count`.
    fn buckets(&self) -> Vec<(f64, f64, u64)> {
        let g = self.inner.gamma();
        self.inner
            .buckets()
            .map(|(k, c)| {
                let upper = (k as f64 * g.ln()).exp();
                (upper / g, upper, c)
            })
            .collect()
    }

    /// A copy of this sketch.
    fn copy(&self) -> Self {
        self.clone()
    }

    fn __copy__(&self) -> Self {
        self.clone()
    }

    fn __deepcopy__(&self, _memo: &Bound<'_, PyAny>) -> Self {
        self.clone()
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let from_bytes = slf.get_type().getattr(intern!(py, "from_bytes"))?;
        let args = PyTuple::new(py, [slf.borrow().to_bytes(py)])?;
        Ok((from_bytes, args))
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<LatencySketch>()
            .map(|o| o.borrow().inner == self.inner)
            .unwrap_or(false)
    }

    fn __repr__(&self) -> String {
        let s = &self.inner;
        let f = |v: Option<f64>| v.map_or("None".to_string(), |v| format!("{v}"));
        format!(
            "LatencySketch(count={}, min={}, p50={}, p99={}, max={}, relative_accuracy={})",
            s.count(),
            f(s.min()),
            f(s.quantile(0.5)),
            f(s.quantile(0.99)),
            f(s.max()),
            s.relative_accuracy()
        )
    }

    /// Number of values added (exact).
    #[getter]
    fn count(&self) -> u64 {
        self.inner.count()
    }

    /// Sum of the values (ms).
    #[getter]
    fn sum(&self) -> f64 {
        self.inner.sum()
    }

    /// Exact minimum (ms), None when empty.
    #[getter]
    fn min(&self) -> Option<f64> {
        self.inner.min()
    }

    /// Exact maximum (ms), None when empty.
    #[getter]
    fn max(&self) -> Option<f64> {
        self.inner.max()
    }

    /// Mean (ms), None when empty.
    #[getter]
    fn mean(&self) -> Option<f64> {
        self.inner.mean()
    }

    /// Values counted in the zero bucket (below 1 µs).
    #[getter]
    fn zero_count(&self) -> u64 {
        self.inner.zero_count()
    }

    /// The relative accuracy alpha.
    #[getter]
    fn relative_accuracy(&self) -> f64 {
        self.inner.relative_accuracy()
    }

    /// The cap on bucket counters.
    #[getter]
    fn max_buckets(&self) -> u32 {
        self.inner.max_buckets()
    }

    /// Heap bytes held by the bucket counters (at most 8 * max_buckets).
    #[getter]
    fn heap_bytes(&self) -> usize {
        self.inner.heap_bytes()
    }

    /// Counters between the lowest and the highest non-empty bucket.
    #[getter]
    fn bucket_span(&self) -> usize {
        self.inner.bucket_span()
    }
}

/// Merges sketches into one: a pyarrow (or any Arrow PyCapsule) binary / large_binary /
/// binary_view array, chunked array or stream (read in Rust, nulls skipped), or any iterable
/// of bytes-like objects, LatencySketch objects and None (skipped). An empty input gives an
/// empty sketch of the default accuracy. Raises InputError on invalid bytes or a mix of
/// relative accuracies.
#[pyfunction]
pub fn merge_sketches(py: Python<'_>, sketches: &Bound<'_, PyAny>) -> PyResult<LatencySketch> {
    let mut acc: Option<Core> = None;
    let is_arrow = sketches.hasattr(intern!(py, "__arrow_c_array__"))?
        || sketches.hasattr(intern!(py, "__arrow_c_stream__"))?;
    if is_arrow {
        let reader = sketches.extract::<AnyArray>()?.into_reader()?;
        let mut base = 0;
        for chunk in reader {
            let chunk = chunk.map_err(reading_arrow_err)?;
            let acc_ref = &mut acc;
            py.detach(|| merge_arrow_chunk(acc_ref, &chunk, base))
                .map_err(input_err)?;
            base += chunk.len();
        }
    } else {
        for (row, item) in sketches.try_iter()?.enumerate() {
            let item = item?;
            if item.is_none() {
                continue;
            }
            let at_row = |e: SketchError| {
                to_py_err(EngineError::from(e).context(format_args!("item {row}")))
            };
            if let Ok(o) = item.cast::<LatencySketch>() {
                match &mut acc {
                    None => acc = Some(o.borrow().inner.clone()),
                    Some(a) => a.merge(&o.borrow().inner).map_err(at_row)?,
                }
            } else {
                match &mut acc {
                    None => acc = Some(with_bytes(&item, Core::from_bytes)?.map_err(at_row)?),
                    Some(a) => with_bytes(&item, |b| a.merge_bytes(b))?.map_err(at_row)?,
                }
            }
        }
    }
    Ok(LatencySketch {
        inner: acc.unwrap_or_default(),
    })
}
