//! `gpuledger._engine`: thin PyO3 bindings over gpuledger-engine.
//!
//! Messages arrive as a list of `bytes` (no per-event Python object is created) and windows
//! leave as `pyarrow.RecordBatch`es through the Arrow PyCapsule interface.

mod buffer_batch;
mod config;
mod engine;
mod errors;
mod kafka_batch;
mod kafka_consumer;
mod kafka_native_batch;
mod line_file;
mod noargs_method;
mod parquet_reader;
mod partitions_fed;
mod pool_merge;
mod pools;
mod shards;
mod sketch;

use pyo3::prelude::*;

#[pymodule]
fn _engine(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<engine::Engine>()?;
    m.add_class::<kafka_consumer::KafkaConsumer>()?;
    m.add_class::<kafka_native_batch::KafkaBatch>()?;
    m.add_class::<kafka_native_batch::KafkaEvent>()?;
    m.add_class::<sketch::LatencySketch>()?;
    m.add_function(wrap_pyfunction!(sketch::merge_sketches, m)?)?;
    m.add_class::<engine::ExpositionState>()?;
    m.add_class::<parquet_reader::ParquetBatches>()?;
    m.add_class::<parquet_reader::ParquetChunk>()?;
    m.add_class::<line_file::LineFile>()?;
    m.add_class::<line_file::LineChunk>()?;
    m.add_function(wrap_pyfunction!(engine::schemas, m)?)?;
    m.add_function(wrap_pyfunction!(pools::pool_demand_figures, m)?)?;
    m.add_function(wrap_pyfunction!(pool_merge::merge_pool_windows, m)?)?;
    m.add_function(wrap_pyfunction!(shards::shard_of_rows, m)?)?;
    // The exception classes live in Python (gpuledger.errors); these are the same objects.
    let classes = py.import("gpuledger.errors")?;
    for name in errors::REEXPORTED {
        m.add(name, classes.getattr(name)?)?;
    }
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
