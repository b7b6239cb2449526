//! Engine configuration as the engine needs it (the typed file/env configuration lives in
//! Python, `gpuledger.config`, and is translated into this).

use crate::attribution::Attribution;
use crate::custom_agg::Reducer;
use crate::error::EngineError;
use crate::fields::Unit;
use crate::services::Services;
use crate::window::WindowSpec;

/// A custom aggregation as configured: by names, resolved when the engine is built.
#[derive(Debug, Clone)]
pub struct AggregationConfig {
    pub name: String,
    pub field: String,
    pub reducer: Reducer,
    pub group_by: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub windows: Vec<WindowSpec>,
    pub allowed_lateness_ms: i64,
    pub sample_interval_s: f64,
    /// Messages larger than this are dead letters, never parsed.
    pub max_message_bytes: usize,
    /// Event times later than wall-clock now plus this are dead letters.
    pub max_future_ms: i64,
    /// Raw bytes kept per dead letter.
    pub dead_letter_max_bytes: usize,
    pub attribution: Attribution,
    /// Units messages carry per DCGM field, where they differ from the defaults.
    pub units: Vec<(String, Unit)>,
    pub aggregations: Vec<AggregationConfig>,
    /// Also output every closed window's raw points (for Python window functions).
    pub keep_points: bool,
    /// DCGM fields to keep beyond the built-in ones (for window functions).
    pub extra_fields: Vec<String>,
    /// SLOs and pod-to-service patterns for request latency.
    pub services: Services,
    /// `idle_streaks`: a window whose utilization is below this is idle (`[idle] threshold`).
    pub idle_threshold: f64,
    /// `idle_streaks`: streaks longer than this are reported (`[idle] ttl_s`).
    pub idle_ttl_ms: i64,
    /// One shard of several engines sharing the input (`shard.rs`); None: the only engine.
    pub shard: Option<crate::shard::Shard>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            windows: vec![WindowSpec::tumbling(60)],
            allowed_lateness_ms: 30_000,
            sample_interval_s: 1.0,
            max_message_bytes: 1 << 20,
            max_future_ms: 86_400_000,
            dead_letter_max_bytes: 4096,
            attribution: Attribution::default(),
            units: Vec::new(),
            aggregations: Vec::new(),
            keep_points: false,
            extra_fields: Vec::new(),
            services: Services::default(),
            idle_threshold: 0.05,
            idle_ttl_ms: 6 * 3_600_000,
            shard: None,
        }
    }
}

impl EngineConfig {
    /// Checks the configuration; the error names the offending key.
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |key: &str, problem: String| Err(EngineError::config(key, problem));
        if self.windows.is_empty() {
            return bad("engine.window_s", "at least one window is needed".into());
        }
        for (i, w) in self.windows.iter().enumerate() {
            if self.windows[..i].contains(w) {
                return bad(
                    "engine.window_s",
                    format!(
                        "the window of {} s sliding by {} s is configured twice",
                        w.size_ms / 1000,
                        w.slide_ms / 1000
                    ),
                );
            }
            if w.size_ms <= 0 || w.slide_ms <= 0 || w.slide_ms > w.size_ms {
                return bad(
                    "engine.window_s",
                    format!(
                        "window of {} ms sliding by {} ms is invalid (need 0 < slide <= size)",
                        w.size_ms, w.slide_ms
                    ),
                );
            }
        }
        if self.allowed_lateness_ms < 0 {
            return bad("engine.allowed_lateness_s", "must be >= 0".into());
        }
        if !(self.sample_interval_s.is_finite() && self.sample_interval_s > 0.0) {
            return bad(
                "engine.sample_interval_s",
                format!(
                    "must be a finite number > 0, got {}",
                    self.sample_interval_s
                ),
            );
        }
        if self.max_message_bytes == 0 {
            return bad("engine.max_message_bytes", "must be > 0".into());
        }
        let a = &self.attribution;
        if !(a.default_price.is_finite() && a.default_price >= 0.0) {
            return bad("prices.default", "must be a finite number >= 0".into());
        }
        if let Some((m, p)) = a
            .prices
            .iter()
            .find(|(_, p)| !(p.is_finite() && **p >= 0.0))
        {
            return bad(
                &format!("prices.{m:?}"),
                format!("must be a finite number >= 0, got {p}"),
            );
        }
        for (name, slo) in std::iter::once(("default", &self.services.default_slo))
            .chain(self.services.slos.iter().map(|(k, v)| (k.as_str(), v)))
        {
            if !(slo.latency_ms.is_finite() && slo.latency_ms > 0.0) {
                return bad(
                    &format!("services.{name:?}.slo_latency_ms"),
                    "must be a finite number > 0".into(),
                );
            }
            if !(slo.target > 0.0 && slo.target < 1.0) {
                return bad(
                    &format!("services.{name:?}.slo_target"),
                    "must be in (0, 1)".into(),
                );
            }
        }
        if !(self.idle_threshold >= 0.0 && self.idle_threshold <= 1.0) {
            return bad(
                "idle.threshold",
                format!("must be a number in 0..1, got {}", self.idle_threshold),
            );
        }
        if self.idle_ttl_ms <= 0 {
            return bad(
                "idle.ttl_s",
                format!("must be > 0, got {} ms", self.idle_ttl_ms),
            );
        }
        if let Some(s) = self.shard {
            if s.count == 0 || s.index >= s.count {
                return bad(
                    "shard",
                    format!("index {} of {} shards is not a shard", s.index, s.count),
                );
            }
        }
        Ok(())
    }

    /// The window family whose windows drive `idle_streaks`: the tumbling family (slide =
    /// size) of the smallest size; `None` when only hopping windows are configured.
    pub fn idle_family(&self) -> Option<usize> {
        self.windows
            .iter()
            .enumerate()
            .filter(|(_, w)| w.slide_ms == w.size_ms)
            .min_by_key(|(_, w)| w.size_ms)
            .map(|(k, _)| k)
    }

    /// Pane length: the greatest common divisor of every window size and slide.
    pub fn pane_ms(&self) -> i64 {
        fn gcd(a: i64, b: i64) -> i64 {
            if b == 0 {
                a
            } else {
                gcd(b, a % b)
            }
        }
        self.windows
            .iter()
            .fold(0, |g, w| gcd(gcd(g, w.size_ms), w.slide_ms))
    }
}
