//! gpuledger-engine: the pure-Rust core of gpuledger. Decodes DCGM telemetry from raw
//! message bytes, keeps event-time windows with watermarks, and builds Arrow batches.

pub mod arrow_util;
pub mod attribution;
pub mod config;
pub mod custom_agg;
pub mod decode;
pub mod engine;
pub mod error;
pub mod exact_sum;
pub mod fields;
pub mod gpu_windows;
pub mod idle_streaks;
pub mod late_dead;
pub mod latency_store;
pub mod latency_windows;
pub mod panes;
pub mod parquet_input;
pub mod pod_table;
pub mod pool_merge;
pub mod pool_windows;
pub mod series;
pub mod service_cost;
pub mod services;
pub mod shard;
pub mod sketch;
mod sketch_key;
pub mod stats;
#[cfg(test)]
mod test_rng;
pub mod time;
pub mod watermark;
pub mod window;
pub mod window_points;

pub use attribution::Attribution;
pub use config::{AggregationConfig, EngineConfig};
pub use engine::{Closed, Engine, MessageFormat, Offsets, Provenance, Stats};
pub use error::EngineError;
pub use gpu_windows::GpuWindowRow;
pub use idle_streaks::IdleStreakRow;
pub use window::WindowSpec;
