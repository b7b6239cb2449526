//! A batch of confluent-kafka `Message` objects straight into the engine: grouped by topic
//! and partition in Rust (no Python loop per message), the GIL released while the engine
//! works. Error messages (end of partition, broker errors) are handed back to Python.

use crate::errors::input_err;
use crate::noargs_method::NoArgsMethod;
use crate::partitions_fed::{FedRow, PartitionsFed};
use gpuledger_engine::{Engine as Core, MessageFormat, Offsets, Provenance};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};

/// One run of consecutive messages from one partition.
struct Run<'py> {
    topic: Bound<'py, PyString>,
    partition: i32,
    format: MessageFormat,
    values: Vec<Bound<'py, PyBytes>>,
    offsets: Vec<i64>,
    stamps: Vec<i64>,
    /// Index in the batch of its last message.
    last: usize,
}

/// What Python needs back: per partition fed (`PartitionsFed` rows), and the (index,
/// message) of every error message.
pub type PushedKafka<'py> = (Vec<FedRow>, Vec<(usize, Bound<'py, PyAny>)>);

pub fn push_kafka<'py>(
    core: &mut Core,
    py: Python<'py>,
    messages: &Bound<'py, PyList>,
    formats: &[(String, MessageFormat)],
    assigned: Option<&[(String, i32)]>,
) -> PyResult<PushedKafka<'py>> {
    let empty = PyBytes::new(py, b"");
    let mut runs: Vec<Run<'py>> = Vec::new();
    let mut errors = Vec::new();
    let mut fed = PartitionsFed::new();
    let mut skipping: Option<(Bound<'py, PyString>, i32)> = None;
    // One consume() returns one message type: its methods are looked up once per batch
    // (an empty batch, a consume() that timed out, looks up nothing).
    let Some(ty) = messages.iter().next().map(|m| m.get_type()) else {
        return Ok((fed.into_rows(), errors));
    };
    let method = |name: &'static str| NoArgsMethod::resolve(&ty, &PyString::intern(py, name));
    let (error, topic_of, partition_of) = (method("error"), method("topic"), method("partition"));
    let (value_of, offset_of, timestamp_of) =
        (method("value"), method("offset"), method("timestamp"));
    for (i, m) in messages.iter().enumerate() {
        if !error.call(&m)?.is_none() {
            errors.push((i, m));
            continue;
        }
        let topic = topic_of.call(&m)?.cast_into::<PyString>()?;
        let partition: i32 = partition_of.call(&m)?.extract()?;
        // Compared as UTF-8 (a pointer into the string for ASCII names), not with Python's
        // rich comparison: this runs once per message.
        let name_now = topic.to_str()?;
        let is_of = |t: &Bound<'py, PyString>, p: i32| {
            p == partition && t.to_str().is_ok_and(|n| n == name_now)
        };
        if skipping.as_ref().is_some_and(|(t, p)| is_of(t, *p)) {
            continue;
        }
        if !runs.last().is_some_and(|r| is_of(&r.topic, r.partition)) {
            let name = topic.to_str()?;
            // A partition no longer assigned (right around a rebalance): not ours to read.
            if assigned.is_some_and(|a| !a.iter().any(|(t, p)| *p == partition && t == name)) {
                skipping = Some((topic, partition));
                continue;
            }
            skipping = None;
            let Some(format) = formats.iter().find(|f| f.0 == name).map(|f| f.1) else {
                return Err(input_err(format!("no message format for topic {name:?}")));
            };
            runs.push(Run {
                topic,
                partition,
                format,
                values: Vec::new(),
                offsets: Vec::new(),
                stamps: Vec::new(),
                last: i,
            });
        }
        let run = runs.last_mut().expect("a run was just pushed");
        let value = value_of.call(&m)?;
        // A null value (tombstone) is an empty message: a dead letter, not a crash.
        run.values.push(
            value
                .cast_into::<PyBytes>()
                .unwrap_or_else(|_| empty.clone()),
        );
        run.offsets.push(offset_of.call(&m)?.extract()?);
        let (_, ts): (i32, i64) = timestamp_of.call(&m)?.extract()?;
        run.stamps.push(ts);
        run.last = i;
    }
    for run in &runs {
        fed.note(run.topic.to_str()?, run.partition, run.offsets[0], run.last);
    }
    for run in &runs {
        let slices: Vec<&[u8]> = run.values.iter().map(|b| b.as_bytes()).collect();
        let source = run.topic.to_str()?;
        let prov = Provenance {
            source,
            partition: run.partition,
            offsets: Offsets::Each(&run.offsets),
            received_at: Some(&run.stamps),
        };
        let format = run.format;
        // The bytes objects stay alive (held in `run`) and are immutable while detached.
        py.detach(|| core.push_messages(format, &slices, prov));
        py.check_signals()?;
    }
    Ok((fed.into_rows(), errors))
}
