//! Which partitions one Kafka push fed, as the daemon's offset bookkeeping needs them: shared by
//! the confluent-kafka message path (`kafka_batch.rs`) and the native batch path
//! (`kafka_native_batch.rs`), so both answer Python the same way. Tested from Python
//! (tests/test_push_kafka.py, tests/test_native_consumer.py): CI runs the engine crate's Rust
//! tests, not this crate's.

/// (topic, partition, offset of the partition's first message in the push, index in the batch
/// of its last message).
pub type FedRow = (String, i32, i64, usize);

/// Partitions in the order first fed. A push holds a handful of partitions, so a scan beats a
/// map; a partition's runs can come back after another partition's (interleaved polls).
pub struct PartitionsFed(Vec<FedRow>);

impl PartitionsFed {
    pub fn new() -> Self {
        PartitionsFed(Vec::new())
    }

    /// A run of `partition` of `topic` starting at `first_offset` and ending at batch index
    /// `last`: the first run fixes the first offset, every run moves the last index.
    pub fn note(&mut self, topic: &str, partition: i32, first_offset: i64, last: usize) {
        match self.0.iter_mut().find(|f| f.1 == partition && f.0 == topic) {
            Some(f) => f.3 = last,
            None => self
                .0
                .push((topic.to_string(), partition, first_offset, last)),
        }
    }

    pub fn into_rows(self) -> Vec<FedRow> {
        self.0
    }
}
