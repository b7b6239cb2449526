//! One poll of the native Kafka consumer (`kafka_consumer.rs`) as Rust buffers: each run of
//! consecutive messages of one partition keeps its payloads in one byte buffer, so a batch of
//! 20,000 messages is a handful of allocations and no Python object per message. The engines
//! of a daemon all read the same batch (it is immutable), each taking its own partitions.

use crate::errors::input_err;
use crate::partitions_fed::{FedRow, PartitionsFed};
use gpuledger_engine::{Engine as Core, MessageFormat, Offsets, Provenance};
use pyo3::prelude::*;

/// Consecutive messages of one partition.
pub struct RawRun {
    pub topic: String,
    pub partition: i32,
    /// The payloads, end to end; message `i` is `data[ends[i - 1]..ends[i]]`.
    pub data: Vec<u8>,
    pub ends: Vec<usize>,
    pub offsets: Vec<i64>,
    /// Kafka timestamps (ms since the epoch; -1 when the broker gave none).
    pub stamps: Vec<i64>,
    /// Index in the batch of its last message.
    pub last: usize,
}

impl RawRun {
    fn payloads(&self) -> Vec<&[u8]> {
        let mut start = 0;
        self.ends
            .iter()
            .map(|&end| {
                let s = &self.data[start..end];
                start = end;
                s
            })
            .collect()
    }
}

/// A client event in the batch: end of a partition, or an error librdkafka reported.
#[pyclass(frozen, module = "gpuledger._engine", name = "KafkaEvent")]
#[derive(Clone)]
pub struct KafkaEvent {
    pub(crate) topic: Option<String>,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    /// librdkafka's `rd_kafka_resp_err_t`.
    pub(crate) code: i32,
    pub(crate) reason: String,
    pub(crate) fatal: bool,
}

#[pymethods]
impl KafkaEvent {
    /// The event as confluent-kafka's `KafkaError`, so the daemon handles both clients' events
    /// with one code path.
    fn error<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::errors::confluent_kafka_error(py, self.code, &self.reason, self.fatal)
    }

    fn topic(&self) -> Option<&str> {
        self.topic.as_deref()
    }

    fn partition(&self) -> i32 {
        self.partition
    }

    fn offset(&self) -> i64 {
        self.offset
    }

    fn value(&self) -> Option<&[u8]> {
        None
    }

    fn __repr__(&self) -> String {
        format!(
            "KafkaEvent(topic={:?}, partition={}, code={}, reason={:?})",
            self.topic, self.partition, self.code, self.reason
        )
    }
}

/// What one `KafkaConsumer.consume()` returned: runs of messages and the events among them.
#[pyclass(frozen, module = "gpuledger._engine", name = "KafkaBatch")]
#[derive(Default)]
pub struct KafkaBatch {
    pub runs: Vec<RawRun>,
    /// (index in the batch, event).
    pub events: Vec<(usize, KafkaEvent)>,
    pub len: usize,
}

impl KafkaBatch {
    /// Appends one message, opening a new run when its partition differs from the last one's.
    pub fn push_message(&mut self, topic: &[u8], partition: i32, value: &[u8], off: i64, ts: i64) {
        let i = self.len;
        self.len += 1;
        let same = self
            .runs
            .last()
            .is_some_and(|r| r.partition == partition && r.topic.as_bytes() == topic);
        if !same {
            self.runs.push(RawRun {
                topic: String::from_utf8_lossy(topic).into_owned(),
                partition,
                data: Vec::new(),
                ends: Vec::new(),
                offsets: Vec::new(),
                stamps: Vec::new(),
                last: i,
            });
        }
        let run = self.runs.last_mut().expect("a run was just pushed");
        run.data.extend_from_slice(value);
        run.ends.push(run.data.len());
        run.offsets.push(off);
        run.stamps.push(ts);
        run.last = i;
    }

    pub fn push_event(&mut self, event: KafkaEvent) {
        self.events.push((self.len, event));
        self.len += 1;
    }
}

#[pymethods]
impl KafkaBatch {
    fn __len__(&self) -> usize {
        self.len
    }

    /// The (index, event) pairs of the batch: ends of partitions and client errors.
    fn events(&self) -> Vec<(usize, KafkaEvent)> {
        self.events.clone()
    }

    /// Number of messages (events not counted).
    #[getter]
    fn messages(&self) -> usize {
        self.len - self.events.len()
    }
}

/// Per partition fed (`PartitionsFed` rows), and the (index, event) of every event in the batch.
pub type PushedBatch = (Vec<FedRow>, Vec<(usize, KafkaEvent)>);

/// `push_kafka` for a native batch: the same grouping, the same (fed, events) answer.
pub fn push_kafka_batch(
    core: &mut Core,
    py: Python<'_>,
    batch: &KafkaBatch,
    formats: &[(String, MessageFormat)],
    assigned: Option<&[(String, i32)]>,
) -> PyResult<PushedBatch> {
    let is_assigned = |r: &RawRun| {
        assigned.is_none_or(|a| a.iter().any(|(t, p)| *p == r.partition && *t == r.topic))
    };
    let mut fed = PartitionsFed::new();
    let mut jobs = Vec::new();
    for run in batch.runs.iter().filter(|r| is_assigned(r)) {
        let Some(format) = formats.iter().find(|f| f.0 == run.topic).map(|f| f.1) else {
            return Err(input_err(format!(
                "no message format for topic {:?}",
                run.topic
            )));
        };
        fed.note(&run.topic, run.partition, run.offsets[0], run.last);
        jobs.push((run, format));
    }
    for (run, format) in jobs {
        let slices = run.payloads();
        let prov = Provenance {
            source: &run.topic,
            partition: run.partition,
            offsets: Offsets::Each(&run.offsets),
            received_at: Some(&run.stamps),
        };
        py.detach(|| core.push_messages(format, &slices, prov));
        py.check_signals()?;
    }
    Ok((fed.into_rows(), batch.events.clone()))
}
