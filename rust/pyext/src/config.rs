//! Translation of the Python configuration (`Config.to_engine_kwargs()`) into `EngineConfig`.

use crate::errors::ConfigError;
use gpuledger_engine::custom_agg::Reducer;
use gpuledger_engine::fields::Unit;
use gpuledger_engine::services::{PodRule, Services, Slo};
use gpuledger_engine::{AggregationConfig, Attribution, EngineConfig, WindowSpec};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::collections::HashMap;

fn seconds_to_ms(key: &str, s: f64) -> PyResult<i64> {
    if !s.is_finite() || s < 0.0 {
        return Err(ConfigError::new_err(format!(
            "{key}: must be a finite number >= 0, got {s}"
        )));
    }
    Ok((s * 1000.0).round() as i64)
}

/// One `[[aggregations]]` entry: {name, field, reducer, q?, threshold?, group_by}.
fn aggregation(i: usize, d: &Bound<'_, PyDict>) -> PyResult<AggregationConfig> {
    let key = |k: &str| format!("aggregations[{i}].{k}");
    let get = |k: &str| -> PyResult<Bound<'_, PyAny>> {
        d.get_item(k)?
            .ok_or_else(|| ConfigError::new_err(format!("{}: required", key(k))))
    };
    let opt_f64 = |k: &str| -> PyResult<Option<f64>> {
        match d.get_item(k)? {
            Some(v) if !v.is_none() => Ok(Some(v.extract()?)),
            _ => Ok(None),
        }
    };
    let reducer: String = get("reducer")?.extract()?;
    let reducer = Reducer::parse(&reducer, opt_f64("q")?, opt_f64("threshold")?)
        .map_err(|e| ConfigError::new_err(format!("{}: {e}", key("reducer"))))?;
    Ok(AggregationConfig {
        name: get("name")?.extract()?,
        field: get("field")?.extract()?,
        reducer,
        group_by: get("group_by")?.extract()?,
    })
}

#[allow(clippy::too_many_arguments)]
pub fn engine_config(
    window_s: Vec<i64>,
    hopping: Vec<(i64, i64)>,
    allowed_lateness_s: f64,
    sample_interval_s: f64,
    max_message_bytes: usize,
    max_future_s: f64,
    dead_letter_max_bytes: usize,
    units: HashMap<String, String>,
    prices: HashMap<String, f64>,
    default_price: f64,
    teams: HashMap<String, String>,
    aggregations: Vec<Bound<'_, PyDict>>,
    keep_points: bool,
    extra_fields: Vec<String>,
    default_slo: (f64, f64),
    slos: HashMap<String, (f64, f64)>,
    pod_rules: Vec<(String, String, String)>,
) -> PyResult<EngineConfig> {
    let slo = |(latency_ms, target): (f64, f64)| Slo { latency_ms, target };
    let services = Services {
        default_slo: slo(default_slo),
        slos: slos.into_iter().map(|(k, v)| (k, slo(v))).collect(),
        pod_rules: pod_rules
            .into_iter()
            .map(|(namespace, pattern, service)| PodRule {
                namespace,
                pattern,
                service,
            })
            .collect(),
    };
    if let Some(w) = window_s.iter().find(|&&w| w <= 0) {
        return Err(ConfigError::new_err(format!(
            "engine.window_s: {w} is not a positive number of seconds"
        )));
    }
    let mut windows: Vec<WindowSpec> = window_s.into_iter().map(WindowSpec::tumbling).collect();
    windows.extend(
        hopping
            .into_iter()
            .map(|(size, slide)| WindowSpec::hopping(size, slide)),
    );
    let mut unit_overrides = Vec::new();
    let mut names: Vec<_> = units.into_iter().collect();
    names.sort();
    for (field, unit) in names {
        let u = Unit::parse(&unit)
            .ok_or_else(|| ConfigError::new_err(format!("units.{field}: unknown unit {unit:?}")))?;
        unit_overrides.push((field, u));
    }
    let aggregations = aggregations
        .iter()
        .enumerate()
        .map(|(i, d)| aggregation(i, d))
        .collect::<PyResult<_>>()?;
    Ok(EngineConfig {
        windows,
        allowed_lateness_ms: seconds_to_ms("engine.allowed_lateness_s", allowed_lateness_s)?,
        sample_interval_s,
        max_message_bytes,
        max_future_ms: seconds_to_ms("engine.max_future_s", max_future_s)?,
        dead_letter_max_bytes,
        attribution: Attribution {
            prices,
            default_price,
            teams,
        },
        units: unit_overrides,
        aggregations,
        keep_points,
        extra_fields,
        services,
    })
}
