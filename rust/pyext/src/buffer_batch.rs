//! Messages packed in one buffer into the engine: a byte buffer with an offsets array, a
//! byte buffer of newline-separated messages, or an Arrow binary/string column (PyCapsule).
//! One Python object for the whole batch instead of one `bytes` per message.

use crate::errors::{input_err, reading_arrow_err, to_py_err};
use arrow_array::{Array, ArrayRef};
use gpuledger_engine::arrow_util::byte_values;
use gpuledger_engine::decode::packed::{split_lines, split_offsets, Packed};
use gpuledger_engine::{Engine as Core, MessageFormat, Offsets, Provenance};
use pyo3::buffer::PyBuffer;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3_arrow::input::AnyArray;

/// Messages per GIL release; between chunks Ctrl-C is checked.
const CHUNK: usize = 65_536;

/// Where a batch's messages come from, and how their offsets are numbered.
pub struct Batch<'a> {
    pub format: MessageFormat,
    pub source: &'a str,
    pub partition: i32,
    pub first_offset: i64,
}

/// Feeds `packed` in chunks, the GIL released while the engine works.
fn feed(core: &mut Core, py: Python<'_>, packed: &Packed<'_>, b: &Batch<'_>) -> PyResult<()> {
    let n = packed.messages.len();
    let mut base = 0;
    while base < n {
        let end = (base + CHUNK).min(n);
        let offsets = match &packed.numbers {
            Some(v) => Offsets::Each(&v[base..end]),
            None => Offsets::From(b.first_offset + base as i64),
        };
        let prov = Provenance {
            source: b.source,
            partition: b.partition,
            offsets,
            received_at: None,
        };
        let chunk = &packed.messages[base..end];
        py.detach(|| core.push_messages(b.format, chunk, prov));
        py.check_signals()?;
        base = end;
    }
    Ok(())
}

/// A contiguous view of a buffer export, copied only when the exporter's memory is not
/// C-contiguous.
fn contiguous<T: pyo3::buffer::Element + Copy>(
    py: Python<'_>,
    buf: &PyBuffer<T>,
    copy: &mut Vec<T>,
) -> PyResult<*const [T]> {
    if let Some(s) = buf.as_slice_ptr() {
        return Ok(s.as_ptr() as *const [T]);
    }
    *copy = buf.to_vec(py)?;
    Ok(copy.as_slice() as *const [T])
}

/// `data` (any bytes-like object) split by `offsets` (a buffer of int64 or int32 positions,
/// `n + 1` for `n` messages) or, without offsets, into lines.
pub fn push_bytes_like(
    core: &mut Core,
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    offsets: Option<&Bound<'_, PyAny>>,
    batch: &Batch<'_>,
) -> PyResult<()> {
    let buf = PyBuffer::<u8>::get(data).map_err(|_| {
        input_err(format!(
            "data must be bytes-like (bytes, bytearray, memoryview, a uint8 array) or an \
             Arrow binary or string column, not {}",
            data.get_type()
        ))
    })?;
    let mut data_copy = Vec::new();
    // SAFETY: `buf` holds the export for the rest of this call, so the memory stays alive;
    // like numpy's kernels we assume nobody writes to it while it is being read.
    let bytes: &[u8] = unsafe { &*contiguous(py, &buf, &mut data_copy)? };
    let packed = match offsets {
        None => split_lines(bytes, batch.first_offset),
        Some(o) => {
            let split = if let Ok(b64) = PyBuffer::<i64>::get(o) {
                let mut copy = Vec::new();
                // SAFETY: as above, `b64` holds the export.
                let v: &[i64] = unsafe { &*contiguous(py, &b64, &mut copy)? };
                split_offsets(bytes, v)
            } else if let Ok(b32) = PyBuffer::<i32>::get(o) {
                let mut copy = Vec::new();
                // SAFETY: as above, `b32` holds the export.
                let v: &[i32] = unsafe { &*contiguous(py, &b32, &mut copy)? };
                split_offsets(bytes, v)
            } else {
                let list: Vec<i64> = o.extract().map_err(|_| {
                    input_err(format!(
                        "offsets must be a buffer of int64 or int32 (numpy, array.array, an \
                         Arrow buffer) or a sequence of ints, not {}",
                        o.get_type()
                    ))
                })?;
                split_offsets(bytes, &list)
            };
            split.map_err(to_py_err)?
        }
    };
    feed(core, py, &packed, batch)
}

/// An Arrow column of raw messages (binary, large_binary, binary_view or their string
/// kinds), read in place through the PyCapsule interface; a null is an empty message (a
/// dead letter, like a Kafka tombstone). Row numbers from `first_offset` are the offsets.
pub fn push_arrow_column(
    core: &mut Core,
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    batch: &Batch<'_>,
) -> PyResult<()> {
    let reader = data.extract::<AnyArray>()?.into_reader()?;
    let mut first = batch.first_offset;
    for chunk in reader {
        let chunk = chunk.map_err(reading_arrow_err)?;
        let packed = Packed {
            messages: column_values(&chunk).map_err(input_err)?,
            numbers: None,
        };
        feed(
            core,
            py,
            &packed,
            &Batch {
                first_offset: first,
                ..*batch
            },
        )?;
        first += chunk.len() as i64;
    }
    Ok(())
}

fn column_values(a: &ArrayRef) -> Result<Vec<&[u8]>, String> {
    let values = byte_values(a, true).ok_or_else(|| {
        format!(
            "a column of messages must be binary or string (any offset width or view), not {}",
            a.data_type()
        )
    })?;
    Ok(values.into_iter().map(|v| v.unwrap_or(b"")).collect())
}

/// True when `obj` speaks the Arrow PyCapsule interface.
pub fn is_arrow(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = obj.py();
    Ok(obj.hasattr(intern!(py, "__arrow_c_array__"))?
        || obj.hasattr(intern!(py, "__arrow_c_stream__"))?)
}
