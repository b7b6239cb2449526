//! The `Engine` Python class: batches in (GIL released, Ctrl-C checked between chunks),
//! closed windows out as a dict of table name to `pyarrow.RecordBatch`.

use crate::config::engine_config;
use crate::errors::{input_err, reading_arrow_err, to_py_err};
use crate::parquet_reader::{ParquetBatches, ParquetChunk};
use arrow_array::RecordBatch;
use arrow_schema::ArrowError;
use gpuledger_engine::decode::columnar::{batch_max_time, Form};
use gpuledger_engine::decode::exposition::Exposition;
use gpuledger_engine::{
    custom_agg, gpu_windows, idle_streaks, late_dead, latency_windows, pool_windows, service_cost,
    window_points, Closed, Engine as Core, EngineError, MessageFormat, Offsets, Provenance,
};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use pyo3_arrow::input::AnyRecordBatch;
use pyo3_arrow::{PyArray, PyRecordBatch, PySchema};
use std::collections::HashMap;

/// Messages handed to Rust per GIL release; between chunks Ctrl-C is checked.
const CHUNK: usize = 65_536;

fn arrow_err(e: ArrowError) -> PyErr {
    to_py_err(EngineError::ArrowExport(e))
}

pub(crate) fn parse_form(form: Option<&str>) -> PyResult<Option<Form>> {
    match form {
        None => Ok(None),
        Some("long") => Ok(Some(Form::Long)),
        Some("wide") => Ok(Some(Form::Wide)),
        Some("requests") => Ok(Some(Form::Requests)),
        Some(other) => Err(input_err(format!(
            "form must be \"long\", \"wide\", \"requests\" or None, not {other:?}"
        ))),
    }
}

fn parse_format(s: &str) -> PyResult<MessageFormat> {
    match s {
        "prom_json" => Ok(MessageFormat::PromJson),
        "wide_json" => Ok(MessageFormat::WideJson),
        "latency_json" => Ok(MessageFormat::LatencyJson),
        _ => Err(input_err(format!(
            "unknown message format {s:?} (expected \"prom_json\", \"wide_json\" or \"latency_json\")"
        ))),
    }
}

/// Where an exposition text stands between chunks: the current `# scrape_ts`, lines read.
#[pyclass(module = "gpuledger._engine", name = "ExpositionState")]
pub struct ExpositionState {
    inner: Exposition,
}

#[pymethods]
impl ExpositionState {
    /// `default_ts_ms` stamps samples with no timestamp and no `# scrape_ts` before them.
    #[new]
    #[pyo3(signature = (default_ts_ms = None))]
    fn new(default_ts_ms: Option<i64>) -> Self {
        ExpositionState {
            inner: Exposition::new(default_ts_ms),
        }
    }

    #[getter]
    fn lines_read(&self) -> u64 {
        self.inner.lines_read()
    }
}

#[pyclass(module = "gpuledger._engine", name = "Engine")]
pub struct Engine {
    inner: Core,
    /// Each table's empty batch as a pyarrow object, exported once: most polls close
    /// nothing in most tables, and an export costs more than the poll itself.
    empty: HashMap<String, Py<PyAny>>,
}

impl Engine {
    fn batches<'py>(&mut self, py: Python<'py>, closed: Closed) -> PyResult<Bound<'py, PyDict>> {
        let e = &mut self.inner;
        let late = e.take_late_events();
        let dead = e.take_dead_letters();
        let attribution = &e.config().attribution;
        let mut out: Vec<(String, RecordBatch)> = vec![
            (
                "gpu_windows".into(),
                gpu_windows::to_record_batch(&closed.gpu, e.series(), attribution)
                    .map_err(arrow_err)?,
            ),
            (
                "pool_windows".into(),
                pool_windows::to_record_batch(&closed.pool).map_err(arrow_err)?,
            ),
            (
                "latency_windows".into(),
                latency_windows::to_record_batch(&closed.latency).map_err(arrow_err)?,
            ),
            (
                "service_cost_windows".into(),
                service_cost::to_record_batch(&closed.service_cost).map_err(arrow_err)?,
            ),
            (
                "idle_streaks".into(),
                idle_streaks::to_record_batch(&closed.idle_streaks).map_err(arrow_err)?,
            ),
            (
                "late_events".into(),
                late_dead::late_batch(&late).map_err(arrow_err)?,
            ),
            (
                "dead_letters".into(),
                late_dead::dead_batch(&dead).map_err(arrow_err)?,
            ),
        ];
        for (agg, rows) in e.aggregations().iter().zip(&closed.custom) {
            out.push((
                agg.name.clone(),
                custom_agg::to_record_batch(agg, rows).map_err(arrow_err)?,
            ));
        }
        if e.config().shard.is_some() {
            out.push((
                "service_members".into(),
                service_cost::members_to_record_batch(&closed.service_members)
                    .map_err(arrow_err)?,
            ));
        }
        if e.config().keep_points {
            let b =
                window_points::to_record_batch(&closed.points, e.series(), e.fields(), attribution)
                    .map_err(arrow_err)?;
            out.push(("window_points".into(), b));
        }
        let d = PyDict::new(py);
        for (name, batch) in out {
            if batch.num_rows() > 0 {
                d.set_item(name, PyRecordBatch::new(batch).into_pyarrow(py)?)?;
                continue;
            }
            // pyarrow batches are immutable: one empty batch per table serves every poll.
            let empty = match self.empty.get(&name) {
                Some(b) => b.bind(py).clone(),
                None => {
                    let b = PyRecordBatch::new(batch).into_pyarrow(py)?;
                    self.empty.insert(name.clone(), b.clone().unbind());
                    b
                }
            };
            d.set_item(name, empty)?;
        }
        Ok(d)
    }
}

#[pymethods]
impl Engine {
    /// Creates an engine from `gpuledger.Config.to_engine_kwargs()`.
    #[new]
    #[pyo3(signature = (**kwargs))]
    fn new(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let cfg = engine_config(kwargs)?;
        let inner = Core::new(cfg).map_err(to_py_err)?;
        Ok(Engine {
            inner,
            empty: HashMap::new(),
        })
    }

    /// Ingests a list of messages (bytes) of one format from one partition. Offsets are
    /// `first_offset`, `first_offset + 1`, ... unless `offsets` gives one per message.
    /// `timestamps` (epoch ms, one per message, e.g. Kafka timestamps) are when messages
    /// were received: dead letters' `received_at` and the "now" of the future-time check.
    #[pyo3(signature = (messages, format = "prom_json", source = "", partition = 0, first_offset = 0, offsets = None, timestamps = None))]
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        py: Python<'_>,
        messages: &Bound<'_, PyList>,
        format: &str,
        source: &str,
        partition: i32,
        first_offset: i64,
        offsets: Option<Vec<i64>>,
        timestamps: Option<Vec<i64>>,
    ) -> PyResult<()> {
        let format = parse_format(format)?;
        for (name, v) in [("offsets", &offsets), ("timestamps", &timestamps)] {
            if let Some(o) = v {
                if o.len() != messages.len() {
                    return Err(input_err(format!(
                        "{name} has {} entries for {} messages",
                        o.len(),
                        messages.len()
                    )));
                }
            }
        }
        // Holding the Bound references keeps every bytes object alive while the GIL is
        // released; bytes are immutable, so borrowing their buffers is sound.
        let owned: Vec<Bound<'_, PyBytes>> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                m.cast_into::<PyBytes>().map_err(|e| {
                    input_err(format!(
                        "messages[{i}] must be bytes, not {}",
                        e.into_inner().get_type()
                    ))
                })
            })
            .collect::<PyResult<_>>()?;
        let slices: Vec<&[u8]> = owned.iter().map(|b| b.as_bytes()).collect();
        for (c, chunk) in slices.chunks(CHUNK).enumerate() {
            let base = c * CHUNK;
            let offs = match &offsets {
                Some(o) => Offsets::Each(&o[base..base + chunk.len()]),
                None => Offsets::From(first_offset + base as i64),
            };
            let prov = Provenance {
                source,
                partition,
                offsets: offs,
                received_at: timestamps.as_ref().map(|t| &t[base..base + chunk.len()]),
            };
            let inner = &mut self.inner;
            py.detach(|| inner.push_messages(format, chunk, prov));
            py.check_signals()?;
        }
        Ok(())
    }

    /// Ingests messages packed in one object, without a Python object per message: a
    /// bytes-like `data` cut by `offsets` (n + 1 int64 or int32 byte positions, Arrow's
    /// binary layout) or, without offsets, into lines (blank lines are not messages but keep
    /// their numbers); or an Arrow binary or string column (PyCapsule), one message per row.
    /// Offsets (line or row numbers) start at `first_offset`.
    #[pyo3(signature = (data, offsets = None, format = "prom_json", source = "", partition = 0, first_offset = 0))]
    #[allow(clippy::too_many_arguments)]
    fn push_buffer(
        &mut self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        offsets: Option<&Bound<'_, PyAny>>,
        format: &str,
        source: &str,
        partition: i32,
        first_offset: i64,
    ) -> PyResult<()> {
        let batch = crate::buffer_batch::Batch {
            format: parse_format(format)?,
            source,
            partition,
            first_offset,
        };
        if crate::buffer_batch::is_arrow(data)? {
            if offsets.is_some() {
                return Err(input_err(
                    "offsets are for a byte buffer; an Arrow column brings its own",
                ));
            }
            return crate::buffer_batch::push_arrow_column(&mut self.inner, py, data, &batch);
        }
        crate::buffer_batch::push_bytes_like(&mut self.inner, py, data, offsets, &batch)
    }

    /// Ingests Arrow data in the long or wide columnar form from any producer of the Arrow
    /// PyCapsule interface (pyarrow, Polars, DuckDB, ...), without copying. `form` is
    /// "long", "wide" or None (detect). Row numbers, from `first_row`, are the offsets.
    /// `row_shards` (a uint32 array from `shard_of_rows`, one per row of `data`): this shard
    /// engine reads only its own rows of it.
    #[pyo3(signature = (data, form = None, source = "", partition = 0, first_row = 0, row_shards = None))]
    #[allow(clippy::too_many_arguments)]
    fn push_arrow(
        &mut self,
        py: Python<'_>,
        data: AnyRecordBatch,
        form: Option<&str>,
        source: &str,
        partition: i32,
        first_row: i64,
        row_shards: Option<PyArray>,
    ) -> PyResult<()> {
        let form = parse_form(form)?;
        let ids: Option<Vec<u32>> = match row_shards {
            None => None,
            Some(a) => Some(
                a.as_ref()
                    .as_any()
                    .downcast_ref::<arrow_array::UInt32Array>()
                    .ok_or_else(|| input_err("row_shards must be a uint32 array"))?
                    .values()
                    .to_vec(),
            ),
        };
        let reader = data.into_reader()?;
        let mut row = first_row;
        for batch in reader {
            let batch = batch.map_err(reading_arrow_err)?;
            let inner = &mut self.inner;
            let offset = (row - first_row) as usize;
            let end = offset + batch.num_rows();
            let mine = match &ids {
                Some(v) if v.len() < end => {
                    return Err(input_err(format!(
                        "{} row_shards for {} rows or more",
                        v.len(),
                        end
                    )))
                }
                Some(v) => Some(&v[offset..end]),
                None => None,
            };
            py.detach(|| match mine {
                Some(m) => {
                    inner.push_record_batch_of_shard(&batch, form, source, partition, row, m)
                }
                None => inner.push_record_batch(&batch, form, source, partition, row),
            })
            .map_err(to_py_err)?;
            row += batch.num_rows() as i64;
            py.check_signals()?;
        }
        Ok(())
    }

    /// Pushes the next batches of `reader` (as `push_arrow` would, row numbers from
    /// `first_row`) until they hold at least `max_bytes` of Arrow data or the file ends, with
    /// no Python object per batch. Returns the rows pushed (0: the file had ended) and the
    /// largest event time among them (None: no readable time). Raises `InputError`: reading
    /// errors start "reading Parquet", a batch whose columns cannot be read "rows from N".
    #[pyo3(signature = (reader, max_bytes, form = None, source = "", partition = 0, first_row = 0))]
    #[allow(clippy::too_many_arguments)]
    fn push_parquet(
        &mut self,
        py: Python<'_>,
        reader: PyRef<'_, ParquetBatches>,
        max_bytes: usize,
        form: Option<&str>,
        source: &str,
        partition: i32,
        first_row: i64,
    ) -> PyResult<(u64, Option<i64>)> {
        let form = parse_form(form)?;
        let reader: &ParquetBatches = &reader;
        let (mut row, mut bytes, mut end) = (first_row, 0usize, None);
        while bytes < max_bytes.max(1) {
            let inner = &mut self.inner;
            let pushed = py.detach(|| {
                let batch = match reader.next_batch() {
                    None => return Ok(None),
                    Some(b) => b?,
                };
                inner
                    .push_record_batch(&batch, form, source, partition, row)
                    .map_err(|e| e.context(format_args!("rows from {row}")))?;
                Ok::<_, EngineError>(Some((
                    batch.num_rows(),
                    batch.get_array_memory_size(),
                    batch_max_time(&batch),
                )))
            });
            let Some((rows, size, max_time)) = pushed.map_err(to_py_err)? else {
                break;
            };
            row += rows as i64;
            bytes += size;
            end = end.max(max_time);
            py.check_signals()?;
        }
        Ok(((row - first_row) as u64, end))
    }

    /// Pushes a chunk taken with `ParquetBatches.next_chunk` (as `push_arrow` would, row
    /// numbers from `first_row`). Raises `InputError` "rows from N: ..." for a batch whose
    /// columns cannot be read.
    #[pyo3(signature = (chunk, form = None, source = "", partition = 0, first_row = 0))]
    fn push_parquet_chunk(
        &mut self,
        py: Python<'_>,
        chunk: PyRef<'_, ParquetChunk>,
        form: Option<&str>,
        source: &str,
        partition: i32,
        first_row: i64,
    ) -> PyResult<()> {
        let form = parse_form(form)?;
        let mut row = first_row;
        // A shard engine given a chunk whose rows were assigned to shards (`assign_shards`)
        // reads only its own rows.
        let shard = self.inner.config().shard;
        let shards = chunk
            .shards
            .get()
            .filter(|(n, _)| Some(*n) == shard.map(|s| s.count));
        let me = shard.map_or(0, |s| s.index as usize);
        for (b, batch) in chunk.batches.iter().enumerate() {
            let inner = &mut self.inner;
            py.detach(|| match shards {
                Some((_, rows)) => {
                    inner.push_record_batch_rows(batch, form, source, partition, row, &rows[b][me])
                }
                None => inner.push_record_batch(batch, form, source, partition, row),
            })
            .map_err(|e| to_py_err(e.context(format_args!("rows from {row}"))))?;
            row += batch.num_rows() as i64;
            py.check_signals()?;
        }
        Ok(())
    }

    /// Every partition's watermark clock: (source, partition, newest event time ms, covered
    /// until ms, idle). Shards of one input exchange them (`merge_watermark_clocks`) after each
    /// batch, so each holds the watermark one engine reading all of it would.
    fn watermark_clocks(&self) -> Vec<(String, i32, i64, i64, bool)> {
        self.inner.watermark_clocks()
    }

    /// Takes other shards' `watermark_clocks`.
    fn merge_watermark_clocks(&mut self, clocks: Vec<(String, i32, i64, i64, bool)>) {
        self.inner.merge_watermark_clocks(&clocks);
    }

    /// Ingests dcgm-exporter exposition text. With `last` false, an unfinished last line
    /// is left unread; returns the number of bytes read (carry the rest to the next call).
    #[pyo3(signature = (state, text, last = true, source = "", partition = 0))]
    fn push_exposition(
        &mut self,
        py: Python<'_>,
        state: &mut ExpositionState,
        text: &[u8],
        last: bool,
        source: &str,
        partition: i32,
    ) -> PyResult<usize> {
        let inner = &mut self.inner;
        let st = &mut state.inner;
        let used = py.detach(|| inner.push_exposition(st, text, last, source, partition, 0));
        py.check_signals()?;
        Ok(used)
    }

    /// Stops (`source`, `partition`) from holding the watermark back until it sends data.
    #[pyo3(signature = (partition, source = ""))]
    fn mark_idle(&mut self, partition: i32, source: &str) {
        self.inner.mark_idle(source, partition);
    }

    /// Ingests a list of confluent-kafka `Message` objects as they come from
    /// `Consumer.consume()`: grouped by partition in Rust, formats by topic (`formats`:
    /// {topic: format}); Kafka timestamps are the receive times. Returns ([(topic, partition,
    /// first offset, index of its last message)], [(index, error message)]). With `assigned`
    /// [(topic, partition)], messages of other partitions are skipped.
    fn push_kafka<'py>(
        &mut self,
        py: Python<'py>,
        messages: &Bound<'py, PyList>,
        formats: Vec<(String, String)>,
        assigned: Option<Vec<(String, i32)>>,
    ) -> PyResult<crate::kafka_batch::PushedKafka<'py>> {
        let formats = formats
            .into_iter()
            .map(|(t, f)| Ok((t, parse_format(&f)?)))
            .collect::<PyResult<Vec<_>>>()?;
        crate::kafka_batch::push_kafka(&mut self.inner, py, messages, &formats, assigned.as_deref())
    }

    /// `push_kafka` for a batch of the native consumer (`KafkaConsumer.consume()`): the same
    /// grouping and answer, read from Rust buffers.
    fn push_kafka_batch(
        &mut self,
        py: Python<'_>,
        batch: PyRef<'_, crate::kafka_native_batch::KafkaBatch>,
        formats: Vec<(String, String)>,
        assigned: Option<Vec<(String, i32)>>,
    ) -> PyResult<crate::kafka_native_batch::PushedBatch> {
        let formats = formats
            .into_iter()
            .map(|(t, f)| Ok((t, parse_format(&f)?)))
            .collect::<PyResult<Vec<_>>>()?;
        let batch: &crate::kafka_native_batch::KafkaBatch = &batch;
        crate::kafka_native_batch::push_kafka_batch(
            &mut self.inner,
            py,
            batch,
            &formats,
            assigned.as_deref(),
        )
    }

    /// A fixed receive time (epoch ms) for following batches without their own timestamps
    /// (`push_arrow`, `push_exposition`, `push` without `timestamps`); None: the wall clock.
    fn set_receive_time(&mut self, at_ms: Option<i64>) {
        self.inner.set_receive_time(at_ms);
    }

    /// Makes a partition hold the watermark back before its first event (just assigned).
    #[pyo3(signature = (partition, source = ""))]
    fn expect_partition(&mut self, partition: i32, source: &str) {
        self.inner.expect_partition(source, partition);
    }

    /// Restarts from a checkpoint (before any data). `partitions`: a list of (source,
    /// partition, replay_until, written_through_ms): offsets below `replay_until` are
    /// re-reads whose late and dead rows were written already; windows ending at or before
    /// `written_through_ms` (None: none) were written with this partition's events.
    fn resume(&mut self, partitions: Vec<(String, i32, i64, Option<i64>)>) {
        let parts: Vec<(&str, i32, i64, Option<i64>)> = partitions
            .iter()
            .map(|(s, p, o, f)| (s.as_str(), *p, *o, *f))
            .collect();
        self.inner.resume(&parts);
    }

    /// Rebuilds the idle streaks from `gpu_windows` rows written earlier (any Arrow PyCapsule
    /// producer; any order), before new data: the next windows continue the streaks as an
    /// uninterrupted run would. Returns the number of windows taken.
    fn seed_idle_streaks(
        &mut self,
        py: Python<'_>,
        gpu_windows: AnyRecordBatch,
    ) -> PyResult<usize> {
        let reader = gpu_windows.into_reader()?;
        let mut batches = Vec::new();
        for batch in reader {
            batches.push(batch.map_err(reading_arrow_err)?);
        }
        let inner = &mut self.inner;
        py.detach(|| inner.seed_idle_streaks(&batches))
            .map_err(to_py_err)
    }

    /// Number of (GPU, namespace, pod) currently in an idle streak.
    #[getter]
    fn idle_streaks_open(&self) -> usize {
        self.inner.idle_streaks_open()
    }

    /// The largest event time seen in any partition, epoch ms (None before any data).
    #[getter]
    fn max_event_ms(&self) -> Option<i64> {
        self.inner.max_event_time()
    }

    /// [(source, partition, commit_offset, next_offset)] for every partition seen or resumed:
    /// a restart re-reads from `commit_offset` (the oldest event a window not yet emitted
    /// still needs); `next_offset` is one past the last offset consumed.
    fn positions(&self) -> Vec<(String, i32, i64, i64)> {
        self.inner
            .positions()
            .into_iter()
            .map(|(s, p, pos)| (s.to_string(), p, pos.commit_offset, pos.next_offset))
            .collect()
    }

    /// Closes the windows the watermark has passed. Returns {table name: RecordBatch}.
    fn poll<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let inner = &mut self.inner;
        let closed = py.detach(|| inner.poll());
        self.batches(py, closed)
    }

    /// Moves the watermark to at least `ts_ms` (epoch ms) and closes what that finishes.
    fn advance_to<'py>(&mut self, py: Python<'py>, ts_ms: i64) -> PyResult<Bound<'py, PyDict>> {
        let inner = &mut self.inner;
        let closed = py.detach(|| inner.advance_to(ts_ms));
        self.batches(py, closed)
    }

    /// Every partition has gone quiet: closes every window ending at or before
    /// `quiet_close_ms` (the newest reading plus the sample interval, or the newest request's
    /// end time). Returns {table name: RecordBatch}.
    fn close_quiet<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let inner = &mut self.inner;
        let closed = py.detach(|| inner.close_quiet());
        self.batches(py, closed)
    }

    /// How far the data seen covers event time, epoch ms (None before any data).
    #[getter]
    fn quiet_close_ms(&self) -> Option<i64> {
        self.inner.quiet_close_time()
    }

    /// End of input: closes every window holding data.
    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let inner = &mut self.inner;
        let closed = py.detach(|| inner.finish());
        self.batches(py, closed)
    }

    /// Counters: consumed = aggregated + skipped_* + late + dead.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.stats();
        let d = PyDict::new(py);
        d.set_item("consumed", s.consumed)?;
        d.set_item("aggregated", s.aggregated)?;
        d.set_item("skipped_unknown_field", s.skipped_unknown_field)?;
        d.set_item("skipped_blank", s.skipped_blank)?;
        d.set_item("skipped_duplicate", s.skipped_duplicate)?;
        d.set_item("skipped_replayed", s.skipped_replayed)?;
        d.set_item("late", s.late)?;
        d.set_item("dead", s.dead)?;
        d.set_item("windows_emitted", s.windows_emitted)?;
        Ok(d)
    }

    /// Approximate bytes of window state held.
    fn state_bytes(&self) -> usize {
        self.inner.state_bytes()
    }

    /// Number of open (pane, GPU series) entries.
    fn open_series_panes(&self) -> usize {
        self.inner.open_series_panes()
    }

    /// The current watermark in epoch milliseconds (None before any data).
    #[getter]
    fn watermark_ms(&self) -> Option<i64> {
        let w = self.inner.watermark();
        (w != i64::MIN).then_some(w)
    }

    /// Names of the custom aggregation tables, in configuration order.
    #[getter]
    fn aggregation_names(&self) -> Vec<String> {
        self.inner
            .aggregations()
            .iter()
            .map(|a| a.name.clone())
            .collect()
    }
}

/// Schemas of the built-in tables: {name: pyarrow.Schema}.
#[pyfunction]
pub fn schemas(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    for (name, schema) in [
        ("gpu_windows", gpu_windows::schema()),
        ("pool_windows", pool_windows::schema()),
        ("latency_windows", latency_windows::schema()),
        ("service_cost_windows", service_cost::schema()),
        ("idle_streaks", idle_streaks::schema()),
        ("late_events", late_dead::late_schema()),
        ("dead_letters", late_dead::dead_schema()),
        ("window_points", window_points::schema()),
    ] {
        d.set_item(name, PySchema::new(schema).into_pyarrow(py)?)?;
    }
    Ok(d)
}
