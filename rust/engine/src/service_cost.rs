//! Table `service_cost_windows`: each service's window joined with the `gpu_windows` rows of
//! the pods that served it, giving cost per request and token, and headroom.
//!
//! A pod that served requests is joined to the services of those requests; a pod that served
//! several services in one window splits its GPU rows among them in proportion to the
//! requests it served for each (costs add up, none is counted twice). A pod without requests
//! in the window is joined through the pod-to-service patterns, wholly.

use crate::arrow_util::{float_col, int_col, str_col, ts_col, ts_type};
use crate::gpu_windows::GpuWindowRow;
use crate::latency_store::{LatencyAcc, ServiceId, ServiceTable};
use crate::pod_table::PodTable;
use crate::series::SeriesTable;
use crate::services::Services;
use crate::time::EpochMs;
use arrow_array::builder::BooleanBuilder;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, OnceLock};

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceCostRow {
    pub window_start: EpochMs,
    pub window_end: EpochMs,
    pub service: String,
    pub requests: i64,
    pub pods: i64,
    pub gpus: i64,
    pub gpu_s: f64,
    pub busy_gpu_s: f64,
    pub cost_usd: f64,
    pub provisioned_gpus: f64,
    pub demand_mean_gpus: f64,
    pub headroom_gpus: f64,
    pub headroom_cost_usd: f64,
    pub cost_per_1k_requests_usd: Option<f64>,
    pub cost_per_1m_tokens_usd: Option<f64>,
    pub slo_met: Option<bool>,
}

/// One share of a service's window: a pod that served its requests (no GPU, no values), or a
/// `gpu_windows` row joined to it with the share of its GPU time and cost the service got.
/// Shards write these (`service_members`): distinct pods and GPUs, and the sums in the
/// engine's order (by GPU row), are then taken over all shards, giving one engine's values.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceMemberRow {
    pub window_start: EpochMs,
    pub window_end: EpochMs,
    pub service: String,
    pub namespace: String,
    pub pod: String,
    /// The joined row's labels, in the engine's row order; None for a request pod.
    pub gpu_uuid: Option<String>,
    pub container: Option<String>,
    pub hostname: Option<String>,
    pub gpu_s: f64,
    pub busy_gpu_s: f64,
    pub cost_usd: f64,
}

#[derive(Default)]
struct Acc<'a> {
    pods: HashSet<(&'a str, &'a str)>,
    gpus: HashSet<&'a str>,
    gpu_s: f64,
    busy: f64,
    cost: f64,
}

/// Joins one window's latency accumulators with its GPU rows.
#[allow(clippy::too_many_arguments)]
pub fn join(
    start: EpochMs,
    end: EpochMs,
    latency: &[(ServiceId, LatencyAcc)],
    gpu_rows: &[GpuWindowRow],
    series: &SeriesTable,
    pods: &PodTable,
    services: &Services,
    names: &mut ServiceTable,
    mut members: Option<&mut Vec<ServiceMemberRow>>,
) -> Vec<ServiceCostRow> {
    // Requests per (namespace, pod) and service.
    let mut served: HashMap<(&str, &str), Vec<(ServiceId, u64)>> = HashMap::new();
    for (sid, acc) in latency {
        for (&id, n) in &acc.pods {
            let (ns, pod) = pods.get(id);
            if !pod.is_empty() {
                served.entry((ns, pod)).or_default().push((*sid, *n));
            }
        }
    }
    let mut accs: BTreeMap<ServiceId, Acc<'_>> = BTreeMap::new();
    for (sid, acc) in latency {
        let a = accs.entry(*sid).or_default();
        a.pods.extend(
            acc.pods
                .keys()
                .map(|&id| pods.get(id))
                .filter(|k| !k.1.is_empty()),
        );
        if let Some(out) = members.as_deref_mut() {
            let service = names.name(*sid);
            let mut served: Vec<_> = a.pods.iter().collect();
            served.sort();
            out.extend(served.into_iter().map(|(ns, pod)| ServiceMemberRow {
                window_start: start,
                window_end: end,
                service: service.to_string(),
                namespace: ns.to_string(),
                pod: pod.to_string(),
                gpu_uuid: None,
                container: None,
                hostname: None,
                gpu_s: 0.0,
                busy_gpu_s: 0.0,
                cost_usd: 0.0,
            }));
        }
    }
    for row in gpu_rows {
        let s = series.get(row.series);
        if s.pod.is_empty() {
            continue;
        }
        let key = (&*s.namespace, &*s.pod);
        let shares: Vec<(ServiceId, f64)> = match served.get(&key) {
            Some(list) => {
                let total: u64 = list.iter().map(|x| x.1).sum();
                list.iter()
                    .map(|&(sid, n)| (sid, n as f64 / total as f64))
                    .collect()
            }
            None => match services.service_of_pod(key.0, key.1) {
                Some(name) => vec![(names.intern(name), 1.0)],
                None => continue,
            },
        };
        for (sid, share) in shares {
            let a = accs.entry(sid).or_default();
            a.pods.insert(key);
            a.gpus.insert(&s.gpu_uuid);
            let (gpu_s, busy, cost) = (
                share * row.covered_s,
                share * row.busy_gpu_s,
                share * row.cost_usd,
            );
            a.gpu_s += gpu_s;
            a.busy += busy;
            a.cost += cost;
            if let Some(out) = members.as_deref_mut() {
                out.push(ServiceMemberRow {
                    window_start: start,
                    window_end: end,
                    service: names.name(sid).to_string(),
                    namespace: s.namespace.to_string(),
                    pod: s.pod.to_string(),
                    gpu_uuid: Some(s.gpu_uuid.to_string()),
                    container: Some(s.container.to_string()),
                    hostname: Some(s.hostname.to_string()),
                    gpu_s,
                    busy_gpu_s: busy,
                    cost_usd: cost,
                });
            }
        }
    }
    let window_s = (end - start) as f64 / 1000.0;
    let latency_of: HashMap<ServiceId, &LatencyAcc> =
        latency.iter().map(|(s, a)| (*s, a)).collect();
    let mut rows: Vec<ServiceCostRow> = accs
        .into_iter()
        .map(|(sid, a)| {
            let name = names.name(sid).to_string();
            let lat = latency_of.get(&sid);
            let requests = lat.map_or(0, |l| l.requests);
            let tokens = lat.map_or(0.0, |l| l.tokens_in + l.tokens_out);
            let slo = services.slo_of(&name);
            let provisioned = a.gpu_s / window_s;
            let demand = a.busy / window_s;
            let mean_price = if a.gpu_s > 0.0 {
                a.cost / a.gpu_s * 3600.0
            } else {
                0.0
            };
            ServiceCostRow {
                window_start: start,
                window_end: end,
                service: name,
                requests: requests as i64,
                pods: a.pods.len() as i64,
                gpus: a.gpus.len() as i64,
                gpu_s: a.gpu_s,
                busy_gpu_s: a.busy,
                cost_usd: a.cost,
                provisioned_gpus: provisioned,
                demand_mean_gpus: demand,
                headroom_gpus: provisioned - demand,
                headroom_cost_usd: (provisioned - demand) * window_s / 3600.0 * mean_price,
                cost_per_1k_requests_usd: (requests > 0).then(|| a.cost / requests as f64 * 1000.0),
                cost_per_1m_tokens_usd: (tokens > 0.0).then(|| a.cost / tokens * 1e6),
                slo_met: lat
                    .filter(|l| l.requests > 0)
                    .and_then(|l| l.latency.quantile(slo.target))
                    .map(|q| q <= slo.latency_ms),
            }
        })
        .collect();
    rows.sort_by(|a, b| a.service.cmp(&b.service));
    rows
}

pub fn schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        let ts = ts_type();
        let float = |n: &str, nullable: bool| Field::new(n, DataType::Float64, nullable);
        let int = |n: &str| Field::new(n, DataType::Int64, false);
        Arc::new(Schema::new(vec![
            Field::new("window_start", ts.clone(), false),
            Field::new("window_end", ts, false),
            Field::new("service", DataType::Utf8, false),
            int("requests"),
            int("pods"),
            int("gpus"),
            float("gpu_s", false),
            float("busy_gpu_s", false),
            float("cost_usd", false),
            float("provisioned_gpus", false),
            float("demand_mean_gpus", false),
            float("headroom_gpus", false),
            float("headroom_cost_usd", false),
            float("cost_per_1k_requests_usd", true),
            float("cost_per_1m_tokens_usd", true),
            Field::new("slo_met", DataType::Boolean, true),
        ]))
    })
    .clone()
}

pub fn to_record_batch(rows: &[ServiceCostRow]) -> Result<RecordBatch, ArrowError> {
    let n = rows.len();
    let mut slo_met = BooleanBuilder::with_capacity(n);
    for r in rows {
        slo_met.append_option(r.slo_met);
    }
    let ints = |get: fn(&ServiceCostRow) -> i64| int_col(rows.iter().map(get));
    let f = |get: fn(&ServiceCostRow) -> f64| float_col(rows.iter().map(|r| Some(get(r))));
    let fo = |get: fn(&ServiceCostRow) -> Option<f64>| float_col(rows.iter().map(get));
    let columns: Vec<ArrayRef> = vec![
        ts_col(rows.iter().map(|r| r.window_start)),
        ts_col(rows.iter().map(|r| r.window_end)),
        str_col(rows.iter().map(|r| r.service.as_str())),
        ints(|r| r.requests),
        ints(|r| r.pods),
        ints(|r| r.gpus),
        f(|r| r.gpu_s),
        f(|r| r.busy_gpu_s),
        f(|r| r.cost_usd),
        f(|r| r.provisioned_gpus),
        f(|r| r.demand_mean_gpus),
        f(|r| r.headroom_gpus),
        f(|r| r.headroom_cost_usd),
        fo(|r| r.cost_per_1k_requests_usd),
        fo(|r| r.cost_per_1m_tokens_usd),
        Arc::new(slo_met.finish()),
    ];
    RecordBatch::try_new(schema(), columns)
}

pub fn members_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        let ts = ts_type();
        let text = |n: &str, nullable: bool| Field::new(n, DataType::Utf8, nullable);
        let float = |n: &str| Field::new(n, DataType::Float64, false);
        Arc::new(Schema::new(vec![
            Field::new("window_start", ts.clone(), false),
            Field::new("window_end", ts, false),
            text("service", false),
            text("namespace", false),
            text("pod", false),
            text("gpu_uuid", true),
            text("container", true),
            text("hostname", true),
            float("gpu_s"),
            float("busy_gpu_s"),
            float("cost_usd"),
        ]))
    })
    .clone()
}

pub fn members_to_record_batch(rows: &[ServiceMemberRow]) -> Result<RecordBatch, ArrowError> {
    let opt = |get: fn(&ServiceMemberRow) -> Option<&str>| {
        Arc::new(arrow_array::StringArray::from_iter(rows.iter().map(get))) as ArrayRef
    };
    let f = |get: fn(&ServiceMemberRow) -> f64| float_col(rows.iter().map(|r| Some(get(r))));
    let columns: Vec<ArrayRef> = vec![
        ts_col(rows.iter().map(|r| r.window_start)),
        ts_col(rows.iter().map(|r| r.window_end)),
        str_col(rows.iter().map(|r| r.service.as_str())),
        str_col(rows.iter().map(|r| r.namespace.as_str())),
        str_col(rows.iter().map(|r| r.pod.as_str())),
        opt(|r| r.gpu_uuid.as_deref()),
        opt(|r| r.container.as_deref()),
        opt(|r| r.hostname.as_deref()),
        f(|r| r.gpu_s),
        f(|r| r.busy_gpu_s),
        f(|r| r.cost_usd),
    ];
    RecordBatch::try_new(members_schema(), columns)
}
