//! Parquet files read in Rust for replay: record batches whose string columns come straight
//! from Parquet's dictionary pages as Arrow dictionaries (no per-row string materializing),
//! ready for the columnar decoder.

use crate::decode::columnar::TIME_COLUMNS;
use crate::error::EngineError;
use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::arrow_reader::{
    ArrowReaderOptions, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder,
};
use std::fs::File;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

/// Batches of one Parquet file, in file order.
pub struct ParquetBatches {
    reader: ParquetRecordBatchReader,
    schema: SchemaRef,
    rows: u64,
}

impl ParquetBatches {
    /// Opens `path`; string columns other than time columns are read as
    /// `Dictionary(Int32, Utf8)`. Errors (input errors) name the file.
    pub fn open(path: &str, batch_size: usize) -> Result<Self, EngineError> {
        let err = |e: &dyn std::fmt::Display| EngineError::input(format!("{path}: {e}"));
        let file = File::open(path).map_err(|e| err(&e))?;
        let probe =
            ParquetRecordBatchReaderBuilder::try_new(file.try_clone().map_err(|e| err(&e))?)
                .map_err(|e| err(&e))?;
        let rows = probe.metadata().file_metadata().num_rows().max(0) as u64;
        let schema = dictionary_labels(probe.schema());
        drop(probe);
        let options = ArrowReaderOptions::new().with_schema(schema.clone());
        let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(file, options)
            .map_err(|e| err(&e))?
            .with_batch_size(batch_size.max(1))
            .build()
            .map_err(|e| err(&e))?;
        Ok(ParquetBatches {
            reader,
            schema,
            rows,
        })
    }

    /// Rows in the file (from its footer).
    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }
}

impl Iterator for ParquetBatches {
    type Item = Result<RecordBatch, EngineError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.reader
            .next()
            .map(|r| r.map_err(|e| EngineError::input(format!("reading Parquet: {e}"))))
    }
}

/// Batches of a file decoded up to `depth` ahead on a thread of their own, so decoding
/// overlaps with the engine's work on the batches before (on a second core; on one core it
/// costs a thread switch per batch). Dropping it stops the thread at its next batch.
pub struct ReadAhead {
    batches: Receiver<Result<RecordBatch, EngineError>>,
}

impl ParquetBatches {
    /// These batches, read ahead (see `ReadAhead`); `Err` when no thread can be started.
    pub fn read_ahead(self, depth: usize) -> Result<ReadAhead, EngineError> {
        let (tx, rx) = sync_channel(depth.max(1));
        std::thread::Builder::new()
            .name("gpuledger-parquet".into())
            .spawn(move || {
                for batch in self {
                    let failed = batch.is_err();
                    // A send fails once the reader is dropped: nobody wants the rest.
                    if tx.send(batch).is_err() || failed {
                        break;
                    }
                }
            })
            .map_err(|e| {
                EngineError::input(format!("starting the Parquet read-ahead thread: {e}"))
            })?;
        Ok(ReadAhead { batches: rx })
    }
}

impl Iterator for ReadAhead {
    type Item = Result<RecordBatch, EngineError>;

    fn next(&mut self) -> Option<Self::Item> {
        // The thread ends (and the channel closes) after the last batch or the first error.
        self.batches.recv().ok()
    }
}

/// The file's schema with plain string label columns as dictionaries.
fn dictionary_labels(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            // Time columns are never labels (kept as they are even when stored as strings).
            let label = !TIME_COLUMNS.contains(&f.name().as_str());
            match f.data_type() {
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View if label => {
                    let dict =
                        DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
                    f.as_ref().clone().with_data_type(dict)
                }
                _ => f.as_ref().clone(),
            }
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, Float64Array, StringArray, TimestampMillisecondArray};
    use parquet::arrow::ArrowWriter;

    fn write(path: &std::path::Path) {
        let n = 10_000;
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "ts",
                DataType::Timestamp(arrow_schema::TimeUnit::Millisecond, Some("UTC".into())),
                false,
            ),
            Field::new("gpu", DataType::Utf8, false),
            Field::new("value", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(
                    TimestampMillisecondArray::from_iter_values((0..n).map(|i| i * 1000))
                        .with_timezone("UTC"),
                ),
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("GPU-{}", i % 4)),
                )),
                Arc::new(Float64Array::from_iter_values((0..n).map(|i| i as f64))),
            ],
        )
        .unwrap();
        let mut w = ArrowWriter::try_new(File::create(path).unwrap(), schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }

    /// A fresh directory of this test process (remove it when done) and a file path in it.
    fn temp_file(tag: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("gpuledger-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.parquet");
        (dir, path)
    }

    /// `temp_file` holding the Parquet file of `write`.
    fn written(tag: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let (dir, path) = temp_file(tag);
        write(&path);
        (dir, path)
    }

    #[test]
    fn labels_come_as_dictionaries_and_rows_are_all_there() {
        let (dir, path) = written("pq");
        let batches = ParquetBatches::open(path.to_str().unwrap(), 4096).unwrap();
        assert_eq!(batches.rows(), 10_000);
        let mut seen = 0;
        for b in batches {
            let b = b.unwrap();
            assert!(matches!(
                b.column(1).data_type(),
                DataType::Dictionary(_, _)
            ));
            assert!(matches!(b.column(0).data_type(), DataType::Timestamp(_, _)));
            assert!(b.num_rows() <= 4096);
            seen += b.num_rows();
            assert_eq!(b.column(2).null_count(), 0);
        }
        assert_eq!(seen, 10_000);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn read_ahead_gives_the_same_batches_and_stops_when_dropped() {
        let (dir, path) = written("pq-ra");
        let path = path.to_str().unwrap();
        let direct: Vec<RecordBatch> = ParquetBatches::open(path, 1000)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let ahead: Vec<RecordBatch> = ParquetBatches::open(path, 1000)
            .unwrap()
            .read_ahead(2)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(direct.len(), 10);
        assert_eq!(direct, ahead);
        // Dropped after one batch, with the thread blocked on a full channel: no hang.
        let mut partial = ParquetBatches::open(path, 100)
            .unwrap()
            .read_ahead(1)
            .unwrap();
        assert!(partial.next().unwrap().is_ok());
        drop(partial);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn not_parquet_is_an_error_naming_the_file() {
        let (dir, path) = temp_file("pq-bad");
        std::fs::write(&path, b"PAR1 this is not a parquet file").unwrap();
        let e = ParquetBatches::open(path.to_str().unwrap(), 10)
            .err()
            .unwrap();
        assert!(matches!(e, EngineError::Input(_)), "{e}");
        assert!(e.to_string().starts_with(path.to_str().unwrap()), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
