//! Custom per-window aggregations without Rust: any DCGM field, a built-in reducer, grouped
//! by any label set. Each aggregation is its own output table (see docs/custom-aggregations.md).

use crate::arrow_util::{float_col, ts_col, ts_type};
use crate::attribution::Attribution;
use crate::fields::FieldId;
use crate::series::{Series, SeriesId};
use crate::stats::quantile_select;
use crate::time::EpochMs;
use crate::window::SeriesPoints;
use arrow_array::builder::{Int64Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reducer {
    Count,
    Sum,
    Mean,
    Min,
    Max,
    /// The value with the latest timestamp (ties: the larger value).
    Last,
    /// Quantile `q` in (0, 1), linear interpolation between closest ranks.
    Quantile(f64),
    /// Mean of the step function each series' samples draw: a sample holds until that
    /// series' next sample or the window end.
    TimeWeightedMean,
    /// Share of that step function's time with value strictly above the threshold.
    ShareAbove(f64),
}

impl Reducer {
    pub fn parse(name: &str, q: Option<f64>, threshold: Option<f64>) -> Result<Reducer, String> {
        let need =
            |v: Option<f64>, what: &str| v.ok_or_else(|| format!("reducer {name:?} needs {what}"));
        let r = match name {
            "count" => Reducer::Count,
            "sum" => Reducer::Sum,
            "mean" => Reducer::Mean,
            "min" => Reducer::Min,
            "max" => Reducer::Max,
            "last" => Reducer::Last,
            "quantile" => {
                let q = need(q, "q")?;
                if !(q > 0.0 && q < 1.0) {
                    return Err(format!("q must be in (0, 1), got {q}"));
                }
                Reducer::Quantile(q)
            }
            "time_weighted_mean" => Reducer::TimeWeightedMean,
            "share_above" => Reducer::ShareAbove(need(threshold, "threshold")?),
            _ => return Err(format!("unknown reducer {name:?}")),
        };
        Ok(r)
    }
}

/// A label a custom aggregation groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupLabel {
    GpuUuid,
    /// MIG instance id (`GPU_I_ID`), empty for a whole GPU.
    GpuInstanceId,
    GpuIndex,
    Hostname,
    ModelName,
    Namespace,
    Pod,
    Container,
    Team,
    /// A label beyond the standard ones, kept in this slot by the decoders.
    Extra(usize),
}

impl GroupLabel {
    /// The standard label a name denotes (DCGM spelling or gpuledger column name).
    pub fn standard(name: &str) -> Option<GroupLabel> {
        Some(match name {
            "UUID" | "gpu_uuid" => GroupLabel::GpuUuid,
            "GPU_I_ID" | "gpu_instance_id" => GroupLabel::GpuInstanceId,
            "gpu" | "gpu_index" => GroupLabel::GpuIndex,
            "Hostname" | "hostname" => GroupLabel::Hostname,
            "modelName" | "model_name" => GroupLabel::ModelName,
            "namespace" => GroupLabel::Namespace,
            "pod" => GroupLabel::Pod,
            "container" => GroupLabel::Container,
            "team" => GroupLabel::Team,
            _ => return None,
        })
    }

    fn value(self, s: &Series, attribution: &Attribution) -> String {
        match self {
            GroupLabel::GpuUuid => s.gpu_uuid.to_string(),
            GroupLabel::GpuInstanceId => s
                .gpu_uuid
                .split_once('/')
                .map_or(String::new(), |(_, i)| i.to_string()),
            GroupLabel::GpuIndex => s.gpu_index.map_or(String::new(), |i| i.to_string()),
            GroupLabel::Hostname => s.hostname.to_string(),
            GroupLabel::ModelName => s.model_name.to_string(),
            GroupLabel::Namespace => s.namespace.to_string(),
            GroupLabel::Pod => s.pod.to_string(),
            GroupLabel::Container => s.container.to_string(),
            GroupLabel::Team => attribution.team_of(&s.namespace).to_string(),
            GroupLabel::Extra(slot) => s.extra[slot].to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct CustomAggregation {
    pub name: String,
    pub field: FieldId,
    pub reducer: Reducer,
    /// Output column name (as configured) and the label it reads.
    pub group_by: Vec<(String, GroupLabel)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CustomRow {
    pub window_start: EpochMs,
    pub window_end: EpochMs,
    pub group: Vec<String>,
    pub value: Option<f64>,
    pub samples: i64,
}

#[derive(Default)]
struct GroupAcc {
    count: i64,
    sum: f64,
    min: f64,
    max: f64,
    last: Option<(EpochMs, f64)>,
    values: Vec<f64>,
    weighted_sum: f64,
    weight: f64,
    weight_above: f64,
}

/// Accumulates one aggregation over the series of one closed window.
pub struct CustomBuilder<'a> {
    agg: &'a CustomAggregation,
    window_start: EpochMs,
    window_end: EpochMs,
    groups: BTreeMap<Vec<String>, GroupAcc>,
}

impl<'a> CustomBuilder<'a> {
    pub fn new(agg: &'a CustomAggregation, window_start: EpochMs, window_end: EpochMs) -> Self {
        CustomBuilder {
            agg,
            window_start,
            window_end,
            groups: BTreeMap::new(),
        }
    }

    pub fn add(&mut self, _id: SeriesId, s: &Series, attribution: &Attribution, p: &SeriesPoints) {
        let pts = p.points(self.agg.field);
        if pts.is_empty() {
            return;
        }
        let key: Vec<String> = self
            .agg
            .group_by
            .iter()
            .map(|(_, l)| l.value(s, attribution))
            .collect();
        let g = self.groups.entry(key).or_insert_with(|| GroupAcc {
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            ..GroupAcc::default()
        });
        for (i, &(ts, v)) in pts.iter().enumerate() {
            g.count += 1;
            g.sum += v;
            g.min = g.min.min(v);
            g.max = g.max.max(v);
            if g.last
                .is_none_or(|(lt, lv)| ts > lt || (ts == lt && v > lv))
            {
                g.last = Some((ts, v));
            }
            let until = pts
                .get(i + 1)
                .map_or(self.window_end, |n| n.0)
                .min(self.window_end);
            let w = (until - ts) as f64 / 1000.0;
            g.weighted_sum += v * w;
            g.weight += w;
            if let Reducer::ShareAbove(t) = self.agg.reducer {
                if v > t {
                    g.weight_above += w;
                }
            }
        }
        if let Reducer::Quantile(_) = self.agg.reducer {
            g.values.extend(pts.iter().map(|p| p.1));
        }
    }

    pub fn finish(self, out: &mut Vec<CustomRow>) {
        for (group, mut g) in self.groups {
            let ratio = |a: f64, b: f64| (b > 0.0).then(|| a / b);
            let value = match self.agg.reducer {
                Reducer::Count => Some(g.count as f64),
                Reducer::Sum => Some(g.sum),
                Reducer::Mean => ratio(g.sum, g.count as f64),
                Reducer::Min => Some(g.min),
                Reducer::Max => Some(g.max),
                Reducer::Last => g.last.map(|l| l.1),
                Reducer::Quantile(q) => quantile_select(&mut g.values, q),
                Reducer::TimeWeightedMean => ratio(g.weighted_sum, g.weight),
                Reducer::ShareAbove(_) => ratio(g.weight_above, g.weight),
            };
            out.push(CustomRow {
                window_start: self.window_start,
                window_end: self.window_end,
                group,
                value,
                samples: g.count,
            });
        }
    }
}

pub fn schema(agg: &CustomAggregation) -> Arc<Schema> {
    let ts = ts_type();
    let mut fields = vec![
        Field::new("window_start", ts.clone(), false),
        Field::new("window_end", ts, false),
    ];
    for (name, _) in &agg.group_by {
        fields.push(Field::new(name, DataType::Utf8, false));
    }
    fields.push(Field::new("value", DataType::Float64, true));
    fields.push(Field::new("samples", DataType::Int64, false));
    Arc::new(
        Schema::new(fields)
            .with_metadata([("gpuledger.aggregation".to_string(), agg.name.clone())].into()),
    )
}

pub fn to_record_batch(
    agg: &CustomAggregation,
    rows: &[CustomRow],
) -> Result<RecordBatch, ArrowError> {
    let mut columns: Vec<ArrayRef> = vec![
        ts_col(rows.iter().map(|r| r.window_start)),
        ts_col(rows.iter().map(|r| r.window_end)),
    ];
    for i in 0..agg.group_by.len() {
        let mut b = StringBuilder::with_capacity(rows.len(), rows.len() * 16);
        for r in rows {
            b.append_value(&r.group[i]);
        }
        columns.push(Arc::new(b.finish()));
    }
    columns.push(float_col(rows.iter().map(|r| r.value)));
    let mut samples = Int64Builder::with_capacity(rows.len());
    for r in rows {
        samples.append_value(r.samples);
    }
    columns.push(Arc::new(samples.finish()));
    RecordBatch::try_new(schema(agg), columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::{GpuLabels, SeriesTable};

    fn run(reducer: Reducer, pts: &[(i64, f64)]) -> CustomRow {
        let agg = CustomAggregation {
            name: "t".into(),
            field: FieldId(6),
            reducer,
            group_by: vec![("hostname".into(), GroupLabel::Hostname)],
        };
        let mut t = SeriesTable::default();
        let id = t.intern(&GpuLabels {
            uuid: "G",
            hostname: "h1",
            ..Default::default()
        });
        let mut p = SeriesPoints::default();
        for &(ts, v) in pts {
            p.insert(FieldId(6), ts, v);
        }
        let mut b = CustomBuilder::new(&agg, 0, 10_000);
        b.add(id, t.get(id), &Attribution::default(), &p);
        let mut out = Vec::new();
        b.finish(&mut out);
        assert_eq!(out[0].group, vec!["h1".to_string()]);
        out.remove(0)
    }

    #[test]
    fn reducers_on_a_worked_example() {
        // values 1 @0s, 3 @2s, 2 @6s in a 10 s window: holds 2 s, 4 s, 4 s
        let p = [(0, 1.0), (2000, 3.0), (6000, 2.0)];
        assert_eq!(run(Reducer::Count, &p).value, Some(3.0));
        assert_eq!(run(Reducer::Sum, &p).value, Some(6.0));
        assert_eq!(run(Reducer::Mean, &p).value, Some(2.0));
        assert_eq!(run(Reducer::Min, &p).value, Some(1.0));
        assert_eq!(run(Reducer::Max, &p).value, Some(3.0));
        assert_eq!(run(Reducer::Last, &p).value, Some(2.0));
        assert_eq!(run(Reducer::Quantile(0.5), &p).value, Some(2.0));
        // (1*2 + 3*4 + 2*4) / 10
        assert_eq!(run(Reducer::TimeWeightedMean, &p).value, Some(2.2));
        // above 1.5: 8 of 10 s
        assert_eq!(run(Reducer::ShareAbove(1.5), &p).value, Some(0.8));
        assert_eq!(run(Reducer::Sum, &p).samples, 3);
    }

    #[test]
    fn reducer_parsing_names_what_is_missing() {
        assert!(Reducer::parse("quantile", None, None)
            .unwrap_err()
            .contains("needs q"));
        assert!(Reducer::parse("quantile", Some(1.5), None).is_err());
        assert!(Reducer::parse("share_above", None, None)
            .unwrap_err()
            .contains("threshold"));
        assert!(Reducer::parse("median", None, None)
            .unwrap_err()
            .contains("unknown reducer"));
        assert_eq!(
            Reducer::parse("quantile", Some(0.9), None),
            Ok(Reducer::Quantile(0.9))
        );
    }
}
