//! Developer tool: where one-core Parquet replay spends its time inside the engine, phase by
//! phase (Parquet read, push, close, Arrow build), with no Python in the way, so `perf` and
//! `valgrind --tool=callgrind` see only Rust. Not part of any test.
//!
//! cargo run --release -p gpuledger-engine --example replay_phases -- FILE.parquet [REPEAT]
use gpuledger_engine::parquet_input::ParquetBatches;
use gpuledger_engine::{gpu_windows, idle_streaks, pool_windows, Engine, EngineConfig};
use std::time::{Duration, Instant};

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .expect("usage: replay_phases FILE.parquet [REPEAT]");
    let repeat: usize = args.next().map_or(3, |r| r.parse().expect("REPEAT"));
    for _ in 0..repeat {
        let (mut read, mut push, mut close, mut build) = (
            Duration::ZERO,
            Duration::ZERO,
            Duration::ZERO,
            Duration::ZERO,
        );
        let mut engine = Engine::new(EngineConfig::default()).expect("default config");
        let mut batches = ParquetBatches::open(&path, 65_536).expect("readable Parquet");
        let (mut row, mut out_rows) = (0i64, 0usize);
        loop {
            let t = Instant::now();
            let Some(batch) = batches.next() else { break };
            let batch = batch.expect("batch");
            read += t.elapsed();
            let t = Instant::now();
            engine
                .push_record_batch(&batch, None, &path, 0, row)
                .expect("push");
            row += batch.num_rows() as i64;
            push += t.elapsed();
            let t = Instant::now();
            let closed = engine.poll();
            close += t.elapsed();
            let t = Instant::now();
            let attribution = &engine.config().attribution;
            out_rows += gpu_windows::to_record_batch(&closed.gpu, engine.series(), attribution)
                .expect("gpu")
                .num_rows();
            out_rows += pool_windows::to_record_batch(&closed.pool)
                .expect("pool")
                .num_rows();
            out_rows += idle_streaks::to_record_batch(&closed.idle_streaks)
                .expect("idle")
                .num_rows();
            build += t.elapsed();
        }
        let t = Instant::now();
        let closed = engine.finish();
        close += t.elapsed();
        out_rows += closed.gpu.len() + closed.pool.len();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "rows {row}  read {:.0} ms  push {:.0} ms  close {:.0} ms  build {:.0} ms  ({out_rows} output rows)",
            ms(read),
            ms(push),
            ms(close),
            ms(build)
        );
    }
}
