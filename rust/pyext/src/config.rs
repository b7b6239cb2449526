//! Translation of the Python configuration (`Config.to_engine_kwargs()`) into `EngineConfig`.

use crate::errors::to_py_err;
use gpuledger_engine::custom_agg::Reducer;
use gpuledger_engine::fields::Unit;
use gpuledger_engine::services::{PodRule, Services, Slo};
use gpuledger_engine::shard::Shard;
use gpuledger_engine::{AggregationConfig, Attribution, EngineConfig, EngineError, WindowSpec};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::collections::HashMap;

/// A configuration error naming `key`, as a Python `gpuledger.errors.ConfigError`.
fn config_err(key: impl Into<String>, problem: impl Into<String>) -> PyErr {
    to_py_err(EngineError::config(key, problem))
}

fn seconds_to_ms(key: &str, s: f64) -> PyResult<i64> {
    if !s.is_finite() || s < 0.0 {
        return Err(config_err(
            key,
            format!("must be a finite number >= 0, got {s}"),
        ));
    }
    Ok((s * 1000.0).round() as i64)
}

/// One `[[aggregations]]` entry: {name, field, reducer, q?, threshold?, group_by}.
fn aggregation(i: usize, d: &Bound<'_, PyDict>) -> PyResult<AggregationConfig> {
    let key = |k: &str| format!("aggregations[{i}].{k}");
    let get = |k: &str| -> PyResult<Bound<'_, PyAny>> {
        d.get_item(k)?.ok_or_else(|| config_err(key(k), "required"))
    };
    let opt_f64 = |k: &str| -> PyResult<Option<f64>> {
        match d.get_item(k)? {
            Some(v) if !v.is_none() => Ok(Some(v.extract()?)),
            _ => Ok(None),
        }
    };
    let reducer: String = get("reducer")?.extract()?;
    let reducer = Reducer::parse(&reducer, opt_f64("q")?, opt_f64("threshold")?)
        .map_err(|e| config_err(key("reducer"), e))?;
    Ok(AggregationConfig {
        name: get("name")?.extract()?,
        field: get("field")?.extract()?,
        reducer,
        group_by: get("group_by")?.extract()?,
    })
}

/// Keyword arguments the constructor takes; any other key is a configuration error.
const KEYS: [&str; 20] = [
    "window_s",
    "hopping",
    "allowed_lateness_s",
    "sample_interval_s",
    "max_message_bytes",
    "max_future_s",
    "dead_letter_max_bytes",
    "units",
    "prices",
    "default_price",
    "teams",
    "aggregations",
    "keep_points",
    "extra_fields",
    "default_slo",
    "slos",
    "pod_rules",
    "idle_threshold",
    "idle_ttl_s",
    "shard",
];

/// Reads `key` from the keyword arguments, or `default` when absent; a value of the wrong
/// type is a ConfigError naming the key.
fn arg<'py, T>(kwargs: Option<&Bound<'py, PyDict>>, key: &str, default: T) -> PyResult<T>
where
    T: for<'a> FromPyObject<'a, 'py>,
    for<'a> <T as FromPyObject<'a, 'py>>::Error: Into<PyErr>,
{
    match kwargs.map(|d| d.get_item(key)).transpose()?.flatten() {
        None => Ok(default),
        Some(v) => v.extract::<T>().map_err(|e| {
            let e: PyErr = e.into();
            config_err(key, e.to_string())
        }),
    }
}

/// Builds the engine configuration from `Engine(**kwargs)`.
pub fn engine_config(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<EngineConfig> {
    if let Some(d) = kwargs {
        for k in d.keys() {
            let k: String = k.extract()?;
            if !KEYS.contains(&k.as_str()) {
                return Err(config_err(k, "not an engine setting"));
            }
        }
    }
    let window_s: Vec<i64> = arg(kwargs, "window_s", vec![60])?;
    let hopping: Vec<(i64, i64)> = arg(kwargs, "hopping", vec![])?;
    let allowed_lateness_s: f64 = arg(kwargs, "allowed_lateness_s", 30.0)?;
    let sample_interval_s: f64 = arg(kwargs, "sample_interval_s", 1.0)?;
    let max_message_bytes: usize = arg(kwargs, "max_message_bytes", 1 << 20)?;
    let max_future_s: f64 = arg(kwargs, "max_future_s", 86_400.0)?;
    let dead_letter_max_bytes: usize = arg(kwargs, "dead_letter_max_bytes", 4096)?;
    let units: HashMap<String, String> = arg(kwargs, "units", HashMap::new())?;
    let prices: HashMap<String, f64> = arg(kwargs, "prices", HashMap::new())?;
    let default_price: f64 = arg(kwargs, "default_price", 2.0)?;
    let teams: HashMap<String, String> = arg(kwargs, "teams", HashMap::new())?;
    let aggregations: Vec<Bound<'_, PyDict>> = arg(kwargs, "aggregations", vec![])?;
    let keep_points: bool = arg(kwargs, "keep_points", false)?;
    let extra_fields: Vec<String> = arg(kwargs, "extra_fields", vec![])?;
    let default_slo: (f64, f64) = arg(kwargs, "default_slo", (200.0, 0.95))?;
    let slos: HashMap<String, (f64, f64)> = arg(kwargs, "slos", HashMap::new())?;
    let pod_rules: Vec<(String, String, String)> = arg(kwargs, "pod_rules", vec![])?;
    let idle_threshold: f64 = arg(kwargs, "idle_threshold", 0.05)?;
    let idle_ttl_s: f64 = arg(kwargs, "idle_ttl_s", 21_600.0)?;
    // (index, count, filter): one of several engines sharing the input (docs/scale-out.md).
    let shard: Option<(u32, u32, bool)> = arg(kwargs, "shard", None)?;
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
        return Err(config_err(
            "engine.window_s",
            format!("{w} is not a positive number of seconds"),
        ));
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
        let u = Unit::parse(&unit).ok_or_else(|| {
            config_err(format!("units.{field}"), format!("unknown unit {unit:?}"))
        })?;
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
        idle_threshold,
        idle_ttl_ms: seconds_to_ms("idle.ttl_s", idle_ttl_s)?,
        shard: shard.map(|(index, count, filter)| Shard {
            index,
            count,
            filter,
        }),
    })
}
