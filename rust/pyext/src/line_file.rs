//! `LineFile`: an uncompressed file of JSON lines read in Rust for replay, cut into chunks
//! of whole lines. Python used to read each chunk into a `bytes` object, join it to the
//! previous chunk's unfinished line, look for the last newline and count the newlines:
//! about 40 % of a JSON replay. Here the file is read straight into a reused buffer, the
//! last newline and the line count are found with SIMD (`memchr`), and the chunk goes to
//! `Engine.push_buffer` through the buffer protocol, without a copy.
//!
//! The chunks are exactly those of the Python reader (`gpuledger.replay.forms.json_lines`)
//! for the same `chunk_bytes`: each is the previous chunk's unfinished line plus the next
//! `chunk_bytes` of the file, up to its last newline; a line longer than `max_line` with no
//! newline in sight is cut there and its rest skipped (read 1 MiB at a time); an
//! unterminated last line is a chunk of its own. So replay writes the same files either way.

use crate::errors::input_err;
use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::ffi::{c_int, c_void};
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::sync::{Arc, Mutex};

/// Bytes read at a time while skipping the rest of an over-long line (as the Python reader).
const SKIP_READ: usize = 1 << 20;

/// A carry up to this long (the usual: part of one line) is copied into a pooled buffer; a
/// longer one is read on in place.
const SMALL_CARRY: usize = 1 << 16;

/// Buffers of chunks that Python has let go of, for the next chunks to reuse: a fresh 8 MiB
/// buffer per chunk costs page faults and zeroing in the kernel on every chunk.
type Pool = Arc<Mutex<Vec<Vec<u8>>>>;

#[pyclass(module = "gpuledger._engine", name = "LineFile")]
pub struct LineFile {
    path: String,
    file: Option<File>,
    chunk_bytes: usize,
    max_line: usize,
    /// The unfinished line after the last chunk's last newline (or, after an over-long
    /// line was skipped, what followed it in the last read).
    carry: Vec<u8>,
    /// True when the carry may hold newlines (it follows a skipped line).
    carry_has_lines: bool,
    /// 1-based number of the first line of the next chunk.
    next_line: i64,
    /// Bytes of the file read so far.
    position: u64,
    pool: Pool,
}

/// Whole lines of a `LineFile`, read-only, exported through the buffer protocol (so
/// `Engine.push_buffer` reads them in place). Its buffer goes back to the file's pool when
/// the chunk is freed.
#[pyclass(module = "gpuledger._engine", name = "LineChunk", frozen)]
pub struct LineChunk {
    buf: Vec<u8>,
    len: usize,
    first_line: i64,
    lines: i64,
    pool: Pool,
}

impl LineFile {
    fn read_error(&self, e: std::io::Error) -> PyErr {
        input_err(format!("{}: reading failed: {e}", self.path))
    }

    /// Reads until `buf` is full or the file ends; the bytes read.
    fn read_full(&mut self, buf: &mut [u8]) -> PyResult<usize> {
        let Some(file) = self.file.as_mut() else {
            return Ok(0);
        };
        let mut done = 0;
        while done < buf.len() {
            match file.read(&mut buf[done..]) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(self.read_error(e)),
            }
        }
        self.position += done as u64;
        Ok(done)
    }

    /// A buffer of at least `len` bytes (its contents are overwritten by the caller).
    fn buffer(&self, len: usize) -> Vec<u8> {
        let reused = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut buf = reused.unwrap_or_default();
        if buf.len() < len {
            buf.resize(len, 0);
        }
        buf
    }

    fn recycle(&self, buf: Vec<u8>) {
        self.pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(buf);
    }

    fn chunk(&mut self, buf: Vec<u8>, len: usize, lines: i64) -> LineChunk {
        let first_line = self.next_line;
        self.next_line += lines;
        LineChunk {
            buf,
            len,
            first_line,
            lines,
            pool: self.pool.clone(),
        }
    }

    /// Skips the rest of an over-long line; what follows its newline becomes the carry.
    fn skip_line(&mut self) -> PyResult<()> {
        let mut piece = vec![0u8; SKIP_READ];
        loop {
            let n = self.read_full(&mut piece)?;
            if n == 0 {
                self.file = None;
                return Ok(());
            }
            if let Some(i) = memchr::memchr(b'\n', &piece[..n]) {
                self.carry.extend_from_slice(&piece[i + 1..n]);
                self.carry_has_lines = true;
                return Ok(());
            }
        }
    }

    /// The next chunk, or None at the end of the file.
    fn next(&mut self) -> PyResult<Option<LineChunk>> {
        loop {
            let c = self.carry.len();
            let mut buf = if c <= SMALL_CARRY {
                // The usual case: the carry is part of one line; a pooled buffer.
                let mut buf = self.buffer(c + self.chunk_bytes);
                buf[..c].copy_from_slice(&self.carry);
                self.carry.clear();
                buf
            } else {
                // A long line in the making: read on at its end rather than copy it over
                // for every read (which would be quadratic in the line's length).
                let mut buf = std::mem::take(&mut self.carry);
                buf.resize(c + self.chunk_bytes, 0);
                buf
            };
            let n = self.read_full(&mut buf[c..c + self.chunk_bytes])?;
            if n == 0 {
                self.file = None;
                if c == 0 {
                    self.recycle(buf);
                    return Ok(None);
                }
                // An unterminated last line (and, after a skipped line, the lines the last
                // read brought along with it).
                let lines = if self.carry_has_lines {
                    let newlines = memchr::memchr_iter(b'\n', &buf[..c]).count();
                    (newlines + usize::from(buf[c - 1] != b'\n')) as i64
                } else {
                    1
                };
                self.carry_has_lines = false;
                return Ok(Some(self.chunk(buf, c, lines)));
            }
            let filled = c + n;
            // Only the bytes just read can hold a newline, unless the carry is what followed
            // a skipped line.
            let from = if self.carry_has_lines { 0 } else { c };
            let Some(last) = memchr::memrchr(b'\n', &buf[from..filled]).map(|i| from + i) else {
                // No complete line yet.
                if filled > self.max_line {
                    // No newline in sight: cut here, skip to the next line.
                    let chunk = self.chunk(buf, filled, 1);
                    self.carry_has_lines = false;
                    self.skip_line()?;
                    return Ok(Some(chunk));
                }
                buf.truncate(filled);
                self.carry = buf;
                continue;
            };
            let cut = last + 1;
            let lines = memchr::memchr_iter(b'\n', &buf[..cut]).count() as i64;
            self.carry.extend_from_slice(&buf[cut..filled]);
            self.carry_has_lines = false;
            return Ok(Some(self.chunk(buf, cut, lines)));
        }
    }
}

#[pymethods]
impl LineFile {
    /// Opens `path` (an uncompressed file) to be read `chunk_bytes` at a time; a line with
    /// no newline within `max_line` bytes is cut there.
    #[new]
    #[pyo3(signature = (path, chunk_bytes, max_line))]
    fn new(path: String, chunk_bytes: usize, max_line: usize) -> PyResult<Self> {
        if chunk_bytes == 0 {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "chunk_bytes must be >= 1",
            ));
        }
        let file = File::open(&path).map_err(|e| input_err(format!("{path}: {e}")))?;
        Ok(Self {
            path,
            file: Some(file),
            chunk_bytes,
            max_line,
            carry: Vec::new(),
            carry_has_lines: false,
            next_line: 1,
            position: 0,
            pool: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// The next chunk of whole lines, or None at the end (the file is then closed).
    fn next_chunk(&mut self, py: Python<'_>) -> PyResult<Option<LineChunk>> {
        py.detach(|| self.next())
    }

    /// Bytes of the file read so far.
    #[getter]
    fn position(&self) -> u64 {
        self.position
    }

    /// Closes the file; `next_chunk` gives None from now on.
    fn close(&mut self) {
        self.file = None;
        self.carry = Vec::new();
        self.carry_has_lines = false;
    }
}

#[pymethods]
impl LineChunk {
    /// 1-based number of the chunk's first line.
    #[getter]
    fn first_line(&self) -> i64 {
        self.first_line
    }

    /// Lines in the chunk (its newlines, and 1 for an unterminated or cut last line).
    #[getter]
    fn lines(&self) -> i64 {
        self.lines
    }

    fn __len__(&self) -> usize {
        self.len
    }

    /// The chunk's last `n` bytes, as `bytes` (for the time of its last lines).
    fn tail<'py>(&self, py: Python<'py>, n: usize) -> Bound<'py, PyBytes> {
        let data = &self.buf[..self.len];
        PyBytes::new(py, &data[data.len().saturating_sub(n)..])
    }

    /// # Safety
    /// `view` is the Py_buffer CPython hands in. The bytes stay valid and unchanged for as
    /// long as the view lives: the view holds a reference to the chunk, the chunk is frozen
    /// and its buffer only leaves it when the chunk is freed.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        if view.is_null() {
            return Err(PyBufferError::new_err("view is null"));
        }
        if (flags & ffi::PyBUF_WRITABLE) == ffi::PyBUF_WRITABLE {
            return Err(PyBufferError::new_err("a LineChunk is read-only"));
        }
        let (ptr, len) = {
            let chunk = slf.get();
            (chunk.buf.as_ptr(), chunk.len)
        };
        // SAFETY: `view` is non-null and CPython's to fill; see above for the lifetime.
        unsafe {
            (*view).obj = slf.into_any().into_ptr();
            (*view).buf = ptr as *mut c_void;
            (*view).len = len as isize;
            (*view).readonly = 1;
            (*view).itemsize = 1;
            (*view).format = if (flags & ffi::PyBUF_FORMAT) == ffi::PyBUF_FORMAT {
                c"B".as_ptr() as *mut _
            } else {
                std::ptr::null_mut()
            };
            (*view).ndim = 1;
            (*view).shape = if (flags & ffi::PyBUF_ND) == ffi::PyBUF_ND {
                &mut (*view).len
            } else {
                std::ptr::null_mut()
            };
            (*view).strides = if (flags & ffi::PyBUF_STRIDES) == ffi::PyBUF_STRIDES {
                &mut (*view).itemsize
            } else {
                std::ptr::null_mut()
            };
            (*view).suboffsets = std::ptr::null_mut();
            (*view).internal = std::ptr::null_mut();
        }
        Ok(())
    }
}

impl Drop for LineChunk {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < 2 {
            pool.push(buf);
        }
    }
}
