//! The daemon's native Kafka consumer: a consumer-group member on librdkafka whose `consume()`
//! takes a whole batch with one `rd_kafka_consume_batch_queue` call and copies it into one
//! `KafkaBatch` with the GIL released, instead of one Python `Message` per record.
//!
//! It talks to librdkafka through its C API (`rdkafka::bindings`): the `rdkafka` crate's
//! consumer turns on librdkafka's event API, which hands out one message per poll (two clock
//! reads and a queue lock each: slower than confluent-kafka's batch call, measured) and
//! cannot serve rebalances inside a batch call. The crate's `TopicPartitionList` is used for
//! partition lists.
//!
//! The daemon's logic stays in Python: rebalances and commit results call back into the Python
//! wrapper (`gpuledger.daemon.native_consumer`) on the polling thread, as confluent-kafka's
//! callbacks do; librdkafka's log lines, which come from its own threads, are queued here and
//! handed to Python after each call, so no librdkafka thread ever waits for the GIL.

use crate::errors::kafka_exception;
use crate::kafka_native_batch::{KafkaBatch, KafkaEvent};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use rdkafka::bindings as rdsys;
use rdkafka::{Offset, TopicPartitionList};
use rdsys::rd_kafka_resp_err_t as Err;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// librdkafka log lines kept between two calls; more are counted, not kept.
const MAX_QUEUED_LOGS: usize = 1000;
const OFFSET_INVALID: i64 = rdsys::RD_KAFKA_OFFSET_INVALID as i64;

/// A (topic, partition, offset, metadata) as the Python side passes and receives it.
type PartitionOffset = (String, i32, i64, Option<String>);
/// librdkafka log lines (syslog level, facility, text) waiting for Python, and how many more
/// were dropped.
type QueuedLogs = (Vec<(i32, String, String)>, usize);

/// What librdkafka's callbacks share with Python; librdkafka holds a pointer to it (the
/// client's opaque), so it lives in a Box that outlives the client.
#[derive(Default)]
struct NativeContext {
    /// The Python wrapper: `_on_rebalance(kind, partitions)`, `_on_commit(error, offsets)`,
    /// `_on_logs(lines, dropped)`. None once closed.
    handler: Mutex<Option<Py<PyAny>>>,
    /// The first exception a callback raised, raised again by the call that ran it.
    failure: Mutex<Option<PyErr>>,
    logs: Mutex<QueuedLogs>,
    /// Client errors (broker down, fatal errors), put in the batch of the call that saw them.
    errors: Mutex<Vec<KafkaEvent>>,
    /// Whether the rebalance callback running now assigned partitions itself.
    assigned_in_callback: AtomicBool,
}

impl NativeContext {
    fn handler(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        let guard = self.handler.lock().expect("handler lock");
        guard.as_ref().map(|h| h.clone_ref(py))
    }

    fn failed(&self) -> bool {
        self.failure.lock().expect("failure lock").is_some()
    }

    /// Calls the Python handler's `method`, taking the GIL (the call that polls released
    /// it). After a callback failed, later ones are skipped until the failure is raised.
    fn call<A>(&self, method: &str, args: A)
    where
        A: for<'py> pyo3::call::PyCallArgs<'py>,
    {
        Python::attach(|py| {
            if self.failed() {
                return;
            }
            let Some(handler) = self.handler(py) else {
                return;
            };
            if let Err(e) = handler.call_method1(py, method, args) {
                *self.failure.lock().expect("failure lock") = Some(e);
            }
        });
    }

    fn log(&self, level: i32, facility: String, message: String) {
        let mut logs = self.logs.lock().expect("log lock");
        if logs.0.len() < MAX_QUEUED_LOGS {
            logs.0.push((level, facility, message));
        } else {
            logs.1 += 1;
        }
    }
}

fn cstr_lossy(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: librdkafka's strings are NUL-terminated and live for the call that gives them.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn err_text(e: Err) -> String {
    // SAFETY: rd_kafka_err2str returns a static string for every code.
    cstr_lossy(unsafe { rdsys::rd_kafka_err2str(e) })
}

/// (topic, partition, offset, error code) of a librdkafka partition list it owns.
fn raw_partitions(
    list: *const rdsys::rd_kafka_topic_partition_list_t,
) -> Vec<(String, i32, i64, i32)> {
    if list.is_null() {
        return Vec::new();
    }
    // SAFETY: `list` is valid for the callback; `elems` has `cnt` entries.
    unsafe {
        let l = &*list;
        (0..usize::try_from(l.cnt).unwrap_or(0))
            .map(|i| {
                let e = &*l.elems.add(i);
                (cstr_lossy(e.topic), e.partition, e.offset, e.err as i32)
            })
            .collect()
    }
}

/// The context behind a client's opaque pointer.
///
/// SAFETY (callers): `opaque` is the `NativeContext` the client was created with, alive
/// until the client is destroyed.
unsafe fn context<'a>(opaque: *mut c_void) -> &'a NativeContext {
    &*(opaque as *const NativeContext)
}

/// librdkafka's rebalance callback (on the polling thread, inside a consume, commit or
/// close call): the Python callback first, then the assignment (or its removal) unless the
/// callback assigned partitions itself, as confluent-kafka does. It does not call
/// `rd_kafka_yield`: inside `rd_kafka_consume_batch_queue` (librdkafka 2.12) a yield makes the
/// call drop the next message it dequeues (found by tests/test_native_consumer.py).
unsafe extern "C" fn on_rebalance(
    rk: *mut rdsys::rd_kafka_t,
    err: Err,
    partitions: *mut rdsys::rd_kafka_topic_partition_list_t,
    opaque: *mut c_void,
) {
    let ctx = context(opaque);
    let kind = match err {
        Err::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => "assign",
        Err::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS if rdsys::rd_kafka_assignment_lost(rk) != 0 => {
            "lost"
        }
        Err::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => "revoke",
        _ => "error",
    };
    let parts: Vec<(String, i32)> = raw_partitions(partitions)
        .into_iter()
        .map(|(t, p, _, _)| (t, p))
        .collect();
    ctx.assigned_in_callback.store(false, Ordering::SeqCst);
    if kind != "error" {
        ctx.call("_on_rebalance", (kind, parts));
    }
    if !ctx.assigned_in_callback.load(Ordering::SeqCst) {
        let cooperative = cstr_lossy(rdsys::rd_kafka_rebalance_protocol(rk)) == "COOPERATIVE";
        let failed = if cooperative {
            let e = if kind == "assign" {
                rdsys::rd_kafka_incremental_assign(rk, partitions)
            } else {
                rdsys::rd_kafka_incremental_unassign(rk, partitions)
            };
            let text = (!e.is_null()).then(|| cstr_lossy(rdsys::rd_kafka_error_string(e)));
            if !e.is_null() {
                rdsys::rd_kafka_error_destroy(e);
            }
            text
        } else {
            let to = if kind == "assign" {
                partitions
            } else {
                std::ptr::null_mut()
            };
            let e = rdsys::rd_kafka_assign(rk, to);
            (e != Err::RD_KAFKA_RESP_ERR_NO_ERROR).then(|| err_text(e))
        };
        if let Some(text) = failed {
            ctx.log(3, "REBALANCE".into(), format!("{kind} failed: {text}"));
        }
    }
}

/// Commit results (asynchronous commits; librdkafka reports synchronous ones too).
unsafe extern "C" fn on_commit(
    _rk: *mut rdsys::rd_kafka_t,
    err: Err,
    offsets: *mut rdsys::rd_kafka_topic_partition_list_t,
    opaque: *mut c_void,
) {
    let error = (err != Err::RD_KAFKA_RESP_ERR_NO_ERROR).then(|| (err as i32, err_text(err)));
    context(opaque).call("_on_commit", (error, raw_partitions(offsets)));
}

/// Client errors (served on the polling thread): events of the batch being taken.
unsafe extern "C" fn on_error(
    rk: *mut rdsys::rd_kafka_t,
    err: c_int,
    reason: *const c_char,
    opaque: *mut c_void,
) {
    let fatal = err == Err::RD_KAFKA_RESP_ERR__FATAL as c_int;
    let (mut code, mut text) = (err, cstr_lossy(reason));
    if fatal {
        // The underlying error of a fatal one, as confluent-kafka reports it.
        let mut buf = [0 as c_char; 512];
        code = rdsys::rd_kafka_fatal_error(rk, buf.as_mut_ptr(), buf.len()) as c_int;
        text = cstr_lossy(buf.as_ptr());
    }
    let event = KafkaEvent {
        topic: None,
        partition: -1,
        offset: -1,
        code,
        reason: text,
        fatal,
    };
    context(opaque)
        .errors
        .lock()
        .expect("errors lock")
        .push(event);
}

/// librdkafka's log lines, from any of its threads: queued, never a GIL wait.
unsafe extern "C" fn on_log(
    rk: *const rdsys::rd_kafka_t,
    level: c_int,
    fac: *const c_char,
    buf: *const c_char,
) {
    let opaque = rdsys::rd_kafka_opaque(rk);
    if !opaque.is_null() {
        context(opaque).log(level, cstr_lossy(fac), cstr_lossy(buf));
    }
}

/// A librdkafka consumer handle and its queue; released in `Drop`.
struct Client {
    rk: *mut rdsys::rd_kafka_t,
    queue: *mut rdsys::rd_kafka_queue_t,
}

// SAFETY: librdkafka handles are thread-safe (it locks internally).
unsafe impl Send for Client {}
unsafe impl Sync for Client {}

#[pyclass(frozen, module = "gpuledger._engine", name = "KafkaConsumer")]
pub struct KafkaConsumer {
    client: Client,
    ctx: Box<NativeContext>,
    /// close() began (a second one returns at once) / ended (later calls raise).
    closing: AtomicBool,
    closed: AtomicBool,
}

fn partition_list(parts: &[(String, i32)]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::with_capacity(parts.len());
    for (topic, partition) in parts {
        tpl.add_partition(topic, *partition);
    }
    tpl
}

fn offset_list(offsets: &[PartitionOffset]) -> PyResult<TopicPartitionList> {
    let mut tpl = TopicPartitionList::with_capacity(offsets.len());
    for (topic, partition, offset, metadata) in offsets {
        let mut e = tpl.add_partition(topic, *partition);
        e.set_offset(Offset::from_raw(*offset))
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        if let Some(m) = metadata {
            // With the C string's NUL, as confluent-kafka commits it: each client reads the
            // other's checkpoints (confluent-kafka reads metadata up to a NUL).
            e.set_metadata(format!("{m}\0"));
        }
    }
    Ok(tpl)
}

fn offsets_of(tpl: &TopicPartitionList) -> Vec<PartitionOffset> {
    tpl.elements()
        .iter()
        .map(|e| {
            let md = e.metadata();
            let md = md.strip_suffix('\0').unwrap_or(md);
            let offset = e.offset().to_raw().unwrap_or(OFFSET_INVALID);
            (
                e.topic().to_string(),
                e.partition(),
                offset,
                (!md.is_empty()).then(|| md.to_string()),
            )
        })
        .collect()
}

fn timeout_ms(seconds: f64) -> c_int {
    if seconds < 0.0 {
        -1 // librdkafka's "no timeout"
    } else {
        (seconds * 1000.0).round().min(f64::from(c_int::MAX)) as c_int
    }
}

impl KafkaConsumer {
    fn check_open(&self) -> PyResult<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(PyRuntimeError::new_err("the Kafka consumer is closed"));
        }
        Ok(())
    }

    /// After each call: librdkafka's queued log lines to Python, then a callback's exception.
    fn settle(&self, py: Python<'_>) -> PyResult<()> {
        let (lines, dropped) = {
            let mut logs = self.ctx.logs.lock().expect("log lock");
            (std::mem::take(&mut logs.0), std::mem::take(&mut logs.1))
        };
        if !lines.is_empty() || dropped > 0 {
            if let Some(handler) = self.ctx.handler(py) {
                handler.call_method1(py, "_on_logs", (lines, dropped))?;
            }
        }
        match self.ctx.failure.lock().expect("failure lock").take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// `code` as a Python exception unless it is no error.
    fn check(&self, py: Python<'_>, code: Err) -> PyResult<()> {
        if code == Err::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Ok(());
        }
        Err(kafka_exception(py, code as i32, &err_text(code)))
    }

    /// One batch call; the GIL is not held.
    fn take_batch(&self, max: usize, wait_ms: c_int) -> KafkaBatch {
        let mut batch = KafkaBatch::default();
        let mut msgs: Vec<*mut rdsys::rd_kafka_message_t> = Vec::with_capacity(max);
        // SAFETY: `msgs` has room for `max` pointers; librdkafka fills the first `n`.
        let n = unsafe {
            rdsys::rd_kafka_consume_batch_queue(self.client.queue, wait_ms, msgs.as_mut_ptr(), max)
        };
        let n = usize::try_from(n).unwrap_or(0);
        // SAFETY: the first `n` entries were written.
        unsafe { msgs.set_len(n) };
        for &m in &msgs {
            // SAFETY: each message is valid until rd_kafka_message_destroy below.
            unsafe {
                let msg = &*m;
                let topic = if msg.rkt.is_null() {
                    None
                } else {
                    Some(CStr::from_ptr(rdsys::rd_kafka_topic_name(msg.rkt)))
                };
                if msg.err != Err::RD_KAFKA_RESP_ERR_NO_ERROR {
                    let topic = topic.map(|t| t.to_string_lossy().into_owned());
                    let text = cstr_lossy(rdsys::rd_kafka_message_errstr(m));
                    let fatal = msg.err == Err::RD_KAFKA_RESP_ERR__FATAL;
                    batch.push_event(KafkaEvent {
                        topic,
                        partition: msg.partition,
                        offset: msg.offset,
                        code: msg.err as i32,
                        reason: text,
                        fatal,
                    });
                } else if let Some(topic) = topic {
                    let value: &[u8] = if msg.payload.is_null() {
                        &[] // a tombstone: an empty message, a dead letter downstream
                    } else {
                        std::slice::from_raw_parts(msg.payload as *const u8, msg.len)
                    };
                    let mut kind =
                        rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
                    let ts = rdsys::rd_kafka_message_timestamp(m, &mut kind);
                    batch.push_message(topic.to_bytes(), msg.partition, value, msg.offset, ts);
                }
                rdsys::rd_kafka_message_destroy(m);
            }
        }
        for event in self.ctx.errors.lock().expect("errors lock").drain(..) {
            batch.push_event(event);
        }
        batch
    }
}

#[pymethods]
impl KafkaConsumer {
    /// A group member from librdkafka `settings` (strings); `handler` receives rebalances,
    /// commit results and log lines; `log_level` is a syslog level (7 = debug), or negative to
    /// keep the one in `settings`.
    #[new]
    fn new(
        py: Python<'_>,
        settings: Vec<(String, String)>,
        handler: Py<PyAny>,
        log_level: i32,
    ) -> PyResult<Self> {
        if !settings
            .iter()
            .any(|(k, v)| k == "group.id" && !v.is_empty())
        {
            return Err(PyRuntimeError::new_err(
                "the native Kafka consumer needs a group.id",
            ));
        }
        let ctx = Box::new(NativeContext {
            handler: Mutex::new(Some(handler)),
            ..NativeContext::default()
        });
        let mut errstr = [0 as c_char; 512];
        let invalid =
            |text: String| kafka_exception(py, Err::RD_KAFKA_RESP_ERR__INVALID_ARG as i32, &text);
        // SAFETY: the conf is ours until rd_kafka_new takes it (or we destroy it on error);
        // the strings are NUL-terminated copies; the opaque outlives the client (`ctx`).
        unsafe {
            let conf = rdsys::rd_kafka_conf_new();
            // A negative level: the user's own `log_level` setting stands.
            let level = log_level.min(7).to_string();
            let ours = (log_level >= 0).then_some(("log_level", level.as_str()));
            let all = settings.iter().map(|(k, v)| (k.as_str(), v.as_str()));
            for (k, v) in all.chain(ours) {
                let (ck, cv) = match (CString::new(k), CString::new(v)) {
                    (Ok(ck), Ok(cv)) => (ck, cv),
                    _ => {
                        rdsys::rd_kafka_conf_destroy(conf);
                        return Err(invalid(format!("setting {k:?} holds a NUL character")));
                    }
                };
                let res = rdsys::rd_kafka_conf_set(
                    conf,
                    ck.as_ptr(),
                    cv.as_ptr(),
                    errstr.as_mut_ptr(),
                    errstr.len(),
                );
                if res != rdsys::rd_kafka_conf_res_t::RD_KAFKA_CONF_OK {
                    rdsys::rd_kafka_conf_destroy(conf);
                    return Err(invalid(format!(
                        "Client config error: {}",
                        cstr_lossy(errstr.as_ptr())
                    )));
                }
            }
            rdsys::rd_kafka_conf_set_opaque(conf, &*ctx as *const NativeContext as *mut c_void);
            rdsys::rd_kafka_conf_set_rebalance_cb(conf, Some(on_rebalance));
            rdsys::rd_kafka_conf_set_offset_commit_cb(conf, Some(on_commit));
            rdsys::rd_kafka_conf_set_error_cb(conf, Some(on_error));
            rdsys::rd_kafka_conf_set_log_cb(conf, Some(on_log));
            let rk = rdsys::rd_kafka_new(
                rdsys::rd_kafka_type_t::RD_KAFKA_CONSUMER,
                conf,
                errstr.as_mut_ptr(),
                errstr.len(),
            );
            if rk.is_null() {
                rdsys::rd_kafka_conf_destroy(conf);
                return Err(invalid(format!(
                    "Client creation error: {}",
                    cstr_lossy(errstr.as_ptr())
                )));
            }
            rdsys::rd_kafka_poll_set_consumer(rk);
            let queue = rdsys::rd_kafka_queue_get_consumer(rk);
            Ok(KafkaConsumer {
                client: Client { rk, queue },
                ctx,
                closing: AtomicBool::new(false),
                closed: AtomicBool::new(false),
            })
        }
    }

    fn subscribe(&self, py: Python<'_>, topics: Vec<String>) -> PyResult<()> {
        self.check_open()?;
        let mut tpl = TopicPartitionList::with_capacity(topics.len());
        for t in &topics {
            tpl.add_partition(t, -1); // RD_KAFKA_PARTITION_UA: any partition
        }
        // SAFETY: a valid client and list; librdkafka copies the list.
        let e = unsafe { rdsys::rd_kafka_subscribe(self.client.rk, tpl.ptr()) };
        self.check(py, e)
    }

    /// Up to `num_messages` messages (and the events among them) within `timeout` seconds,
    /// as confluent-kafka's `consume()`.
    fn consume(&self, py: Python<'_>, num_messages: usize, timeout: f64) -> PyResult<KafkaBatch> {
        self.check_open()?;
        let wait = timeout_ms(timeout.max(0.0));
        let batch = py.detach(|| self.take_batch(num_messages.max(1), wait));
        self.settle(py)?;
        Ok(batch)
    }

    fn assign(&self, py: Python<'_>, offsets: Vec<PartitionOffset>) -> PyResult<()> {
        self.check_open()?;
        let tpl = offset_list(&offsets)?;
        self.ctx.assigned_in_callback.store(true, Ordering::SeqCst);
        // SAFETY: a valid client and list; librdkafka copies the list.
        let e = py.detach(|| unsafe { rdsys::rd_kafka_assign(self.client.rk, tpl.ptr()) });
        self.check(py, e)
    }

    /// Committed offsets and their metadata: (topic, partition, offset, metadata or None).
    fn committed(
        &self,
        py: Python<'_>,
        partitions: Vec<(String, i32)>,
        timeout: f64,
    ) -> PyResult<Vec<PartitionOffset>> {
        self.check_open()?;
        let tpl = partition_list(&partitions);
        // SAFETY: a valid client and list, filled in place.
        let e = py.detach(|| unsafe {
            rdsys::rd_kafka_committed(self.client.rk, tpl.ptr(), timeout_ms(timeout))
        });
        self.check(py, e)?;
        Ok(offsets_of(&tpl))
    }

    /// Commits offsets with their metadata; an asynchronous commit's result reaches
    /// `_on_commit` during a later call.
    fn commit(
        &self,
        py: Python<'_>,
        offsets: Vec<PartitionOffset>,
        asynchronous: bool,
    ) -> PyResult<()> {
        self.check_open()?;
        let tpl = offset_list(&offsets)?;
        let mode = c_int::from(asynchronous);
        // SAFETY: a valid client and list; librdkafka copies the list.
        let e = py.detach(|| unsafe { rdsys::rd_kafka_commit(self.client.rk, tpl.ptr(), mode) });
        self.settle(py)?; // a synchronous commit can run the commit callback
        self.check(py, e)
    }

    fn pause(&self, py: Python<'_>, partitions: Vec<(String, i32)>) -> PyResult<()> {
        self.check_open()?;
        let tpl = partition_list(&partitions);
        // SAFETY: a valid client and list.
        let e = unsafe { rdsys::rd_kafka_pause_partitions(self.client.rk, tpl.ptr()) };
        self.check(py, e)
    }

    fn resume(&self, py: Python<'_>, partitions: Vec<(String, i32)>) -> PyResult<()> {
        self.check_open()?;
        let tpl = partition_list(&partitions);
        // SAFETY: a valid client and list.
        let e = unsafe { rdsys::rd_kafka_resume_partitions(self.client.rk, tpl.ptr()) };
        self.check(py, e)
    }

    /// Moves a partition's fetch position (asynchronously, as confluent-kafka's `seek`).
    fn seek(&self, py: Python<'_>, topic: String, partition: i32, offset: i64) -> PyResult<()> {
        self.check_open()?;
        let tpl = offset_list(&[(topic, partition, offset, None)])?;
        // SAFETY: a valid client and list; the error object is released here.
        unsafe {
            let e = rdsys::rd_kafka_seek_partitions(self.client.rk, tpl.ptr(), 0);
            if !e.is_null() {
                let (code, text) = (
                    rdsys::rd_kafka_error_code(e),
                    cstr_lossy(rdsys::rd_kafka_error_string(e)),
                );
                rdsys::rd_kafka_error_destroy(e);
                return Err(kafka_exception(py, code as i32, &text));
            }
        }
        Ok(())
    }

    /// The application positions of `partitions` (next offset to read; -1001 if none yet).
    fn position(
        &self,
        py: Python<'_>,
        partitions: Vec<(String, i32)>,
    ) -> PyResult<Vec<(String, i32, i64)>> {
        self.check_open()?;
        let tpl = partition_list(&partitions);
        // SAFETY: a valid client and list, filled in place.
        let e = unsafe { rdsys::rd_kafka_position(self.client.rk, tpl.ptr()) };
        self.check(py, e)?;
        Ok(offsets_of(&tpl)
            .into_iter()
            .map(|(t, p, o, _)| (t, p, o))
            .collect())
    }

    /// (low, high) offsets: from the last fetch response (`cached`), or asked of the broker.
    fn watermarks(
        &self,
        py: Python<'_>,
        topic: &str,
        partition: i32,
        cached: bool,
        timeout: f64,
    ) -> PyResult<(i64, i64)> {
        self.check_open()?;
        let name = CString::new(topic).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        let (mut low, mut high) = (0i64, 0i64);
        let client = &self.client;
        // SAFETY: plain out-parameters; the name is NUL-terminated.
        let e = if cached {
            unsafe {
                rdsys::rd_kafka_get_watermark_offsets(
                    client.rk,
                    name.as_ptr(),
                    partition,
                    &mut low,
                    &mut high,
                )
            }
        } else {
            let wait = timeout_ms(timeout);
            let (lo, hi) = (&mut low, &mut high);
            py.detach(|| unsafe {
                rdsys::rd_kafka_query_watermark_offsets(
                    client.rk,
                    name.as_ptr(),
                    partition,
                    lo,
                    hi,
                    wait,
                )
            })
        };
        self.check(py, e)?;
        Ok((low, high))
    }

    /// Leaves the group: the last revoke runs the Python callback (which commits), then the
    /// client stops. Later calls raise; a second close does nothing.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if self.closing.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        // SAFETY: a valid client; the rebalance callback runs on this thread.
        let e = py.detach(|| unsafe { rdsys::rd_kafka_consumer_close(self.client.rk) });
        self.closed.store(true, Ordering::SeqCst);
        let settled = self.settle(py);
        self.ctx.handler.lock().expect("handler lock").take();
        settled?;
        self.check(py, e)
    }
}

impl Drop for KafkaConsumer {
    fn drop(&mut self) {
        // Dropped without close(): no Python callback runs from the destructor.
        if let Ok(mut h) = self.ctx.handler.lock() {
            h.take();
        }
        // SAFETY: the handles are released once, the queue before the client; the context
        // (`self.ctx`) is dropped after this, when no callback can run any more.
        unsafe {
            if !self.closing.load(Ordering::SeqCst) {
                rdsys::rd_kafka_consumer_close(self.client.rk);
            }
            rdsys::rd_kafka_queue_destroy(self.client.queue);
            rdsys::rd_kafka_destroy(self.client.rk);
        }
    }
}
