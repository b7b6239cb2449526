//! gpuledger-engine: the pure-Rust core of gpuledger. Decodes DCGM telemetry from raw
//! message bytes, keeps event-time windows with watermarks, and builds Arrow batches.

pub mod decode;
pub mod engine;
pub mod fields;
pub mod gpu_windows;
pub mod series;
pub mod time;
pub mod watermark;
pub mod window;

pub use engine::{DeadLetter, Engine, EngineConfig, Stats};
pub use gpu_windows::GpuWindowRow;
pub use window::WindowSpec;
