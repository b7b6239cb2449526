//! Closing windows: which windows the watermark finished, and the rows of every table for
//! each of them, computed from the window's panes.

use super::ingest::State;
use super::types::{Closed, PointRow};
use crate::config::EngineConfig;
use crate::custom_agg::{CustomAggregation, CustomBuilder};
use crate::fields::{FieldId, FieldRegistry};
use crate::gpu_windows::{GpuWindowRow, RowContext};
use crate::idle_streaks::{IdleTracker, WindowGpu};
use crate::latency_windows::LatencyWindowRow;
use crate::pool_windows::PoolBuilder;
use crate::series::SeriesId;
use crate::service_cost::join;
use crate::time::EpochMs;
use crate::window::SeriesPoints;

/// What closing needs besides the state.
pub(crate) struct CloseContext<'a> {
    pub cfg: &'a EngineConfig,
    pub fields: &'a FieldRegistry,
    pub aggregations: &'a [CustomAggregation],
}

/// The windows of every family whose end is at or before `wm`, not yet emitted and holding
/// data, ordered by (end, family, start).
fn due_windows(st: &mut State, cfg: &EngineConfig, wm: EpochMs) -> Vec<(EpochMs, usize, EpochMs)> {
    let mut due = Vec::new();
    for (k, spec) in cfg.windows.iter().enumerate() {
        let after_wm = spec.first_start_holding(wm);
        let mut start = st.next_start[k].unwrap_or(EpochMs::MIN);
        let next_pane = |st: &State, t: EpochMs| match (
            st.panes.next_pane_from(t),
            st.latency.next_pane_from(t),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        while let Some(q) = next_pane(st, start) {
            start = start.max(spec.first_start_holding(q));
            let end = start + spec.size_ms;
            if end > wm {
                break;
            }
            if q < end {
                due.push((end, k, start));
            }
            start += spec.slide_ms;
        }
        // The first window that ends after the watermark; windows before it are final.
        // Not `start`, which may have jumped ahead to the next pane holding data: a window
        // between the watermark and that pane can still receive data from a partition that
        // is behind (or, after a restart, from one with an older checkpoint).
        st.next_start[k] = Some(after_wm);
    }
    due.sort_unstable();
    due
}

/// Closes every window ending at or before `wm` and drops panes no open window needs; the
/// windows of the idle family also go through `idle` (table `idle_streaks`).
pub(crate) fn close_until(
    st: &mut State,
    cx: &CloseContext<'_>,
    idle: &mut IdleTracker,
    wm: EpochMs,
) -> Closed {
    let mut closed = Closed {
        custom: vec![Vec::new(); cx.aggregations.len()],
        ..Closed::default()
    };
    if wm == EpochMs::MIN {
        // No watermark yet (no data, or every partition idle from the start).
        return closed;
    }
    let mut scratch = Vec::new();
    let idle_family = cx.cfg.idle_family();
    for (end, k, start) in due_windows(st, cx.cfg, wm) {
        let first_gpu_row = closed.gpu.len();
        close_window(st, cx, start, end, &mut closed, &mut scratch);
        if idle_family == Some(k) {
            let attribution = &cx.cfg.attribution;
            let rows = closed.gpu[first_gpu_row..].iter().map(|r| {
                let s = st.series.get(r.series);
                WindowGpu {
                    gpu_uuid: &s.gpu_uuid,
                    namespace: &s.namespace,
                    pod: &s.pod,
                    team: attribution.team_of(&s.namespace),
                    model_name: &s.model_name,
                    samples: r.samples,
                    util_mean: r.util_mean,
                    idle_gpu_s: r.idle_gpu_s,
                    idle_cost_usd: r.idle_cost_usd,
                }
            });
            idle.window(start, end, rows, Some(&mut closed.idle_streaks));
        }
    }
    // A pane is dropped once every window holding it or the pane after it (whose counter
    // increase starts from this pane's last reading) has closed.
    let (windows, pane_ms) = (&cx.cfg.windows, st.panes.pane_ms());
    let done = |p: EpochMs| {
        windows
            .iter()
            .map(|w| w.last_end_holding(p + pane_ms))
            .max()
            .is_some_and(|needed_until| needed_until <= wm)
    };
    st.panes.drop_while(done);
    st.latency.drop_while(done);
    st.positions.drop_while(done);
    closed
}

fn close_window(
    st: &mut State,
    cx: &CloseContext<'_>,
    start: EpochMs,
    end: EpochMs,
    out: &mut Closed,
    scratch: &mut Vec<f64>,
) {
    let mut window = st.panes.window(start, end);
    let series = &st.series;
    // Series ids depend on arrival order; sort by labels so output never does. GPU first:
    // the pool builder needs one GPU's rows together.
    window.sort_by(|(a, _), (b, _)| {
        let (sa, sb) = (series.get(*a), series.get(*b));
        (
            &sa.gpu_uuid,
            &sa.namespace,
            &sa.pod,
            &sa.container,
            &sa.hostname,
        )
            .cmp(&(
                &sb.gpu_uuid,
                &sb.namespace,
                &sb.pod,
                &sb.container,
                &sb.hostname,
            ))
            .then_with(|| sa.extra.cmp(&sb.extra))
    });
    let attribution = &cx.cfg.attribution;
    let mut ctx = RowContext {
        window_start: start,
        window_end: end,
        sample_interval_s: cx.cfg.sample_interval_s,
        attribution,
        scratch,
    };
    let mut pools = PoolBuilder::new(start, end, cx.cfg.sample_interval_s);
    let mut customs: Vec<CustomBuilder<'_>> = cx
        .aggregations
        .iter()
        .map(|a| CustomBuilder::new(a, start, end))
        .collect();
    for (id, pts) in &window {
        let s = series.get(*id);
        let energy_before = st
            .panes
            .last_point_before(*id, FieldId::TOTAL_ENERGY, start)
            .map(|p| p.1);
        let row = GpuWindowRow::compute(&mut ctx, *id, s, pts, energy_before);
        pools.add(attribution.team_of(&s.namespace), s, &row, pts);
        for c in &mut customs {
            c.add(*id, s, attribution, pts);
        }
        if cx.cfg.keep_points {
            push_points(&mut out.points, start, end, *id, pts, cx.fields.len());
        }
        // A GPU that sent only non-utilization fields still gets a row (samples = 0).
        out.gpu.push(row);
    }
    out.pool.extend(pools.finish(ctx.scratch));
    for (c, rows) in customs.into_iter().zip(out.custom.iter_mut()) {
        c.finish(rows);
    }
    let first_gpu_row = out.gpu.len() - window.len();
    drop(window);
    let requests = st.latency.window(start, end);
    // Request outputs are shard 0's alone; every shard joins all requests to its own GPUs.
    let first_shard = cx.cfg.shard.is_none_or(|s| s.is_first());
    if first_shard {
        for (sid, acc) in &requests {
            let name = st.service_names.name(*sid);
            let slo = cx.cfg.services.slo_of(name);
            out.latency.push(LatencyWindowRow::compute(
                start, end, name, acc, slo, scratch,
            ));
        }
        out.latency.sort_by(|a, b| {
            (a.window_end, a.window_start, &a.service).cmp(&(
                b.window_end,
                b.window_start,
                &b.service,
            ))
        });
    }
    let members = cx.cfg.shard.map(|_| &mut out.service_members);
    let rows = join(
        start,
        end,
        &requests,
        &out.gpu[first_gpu_row..],
        &st.series,
        &st.pod_names,
        &cx.cfg.services,
        &mut st.service_names,
        members,
    );
    out.service_cost.extend(rows);
    st.stats.windows_emitted += 1;
}

fn push_points(
    out: &mut Vec<PointRow>,
    start: EpochMs,
    end: EpochMs,
    series: SeriesId,
    pts: &SeriesPoints,
    n_fields: usize,
) {
    for f in 0..n_fields {
        let field = FieldId(f as u16);
        for &(ts, value) in pts.points(field) {
            out.push(PointRow {
                window_start: start,
                window_end: end,
                series,
                field,
                ts,
                value,
            });
        }
    }
}
