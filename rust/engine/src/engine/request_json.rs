//! Request JSON messages into the latency panes. A plain event (in the decoder's plain form,
//! naming its service, with an event time that is valid and open in every window family)
//! takes a short path, as plain columnar rows do (`request_rows.rs`): its service and
//! (namespace, pod) ids come from small caches of label text seen earlier in the batch, and
//! it is added through the pane cursor. Any other message takes the per-message path
//! (`settle_request`), which checks it, dead-letters it or records it late; both paths add
//! the same values and count the same way, so results do not depend on which.

use super::ingest::{
    add_request, closed_until, open_everywhere_from, service_id, settle_request, Origin,
    PartitionKey, State,
};
use super::types::Provenance;
use crate::config::EngineConfig;
use crate::decode::latency_json::{decode_general, Request};
use crate::decode::latency_json_plain::decode_plain;
use crate::latency_store::{KnownKeys, PaneCursor, RequestIn, ServiceId};
use crate::pod_table::PodId;
use crate::time::{EpochMs, MIN_VALID_MS};
use std::borrow::Cow;
use std::sync::Arc;

/// Entries of each label cache (direct-mapped, by a hash of the text).
const CACHE_SLOTS: usize = 64;

/// A cheap hash of label text (length and up to 16 of its bytes): a slot, not an identity
/// (every hit is confirmed by comparing the text).
#[inline(always)]
fn slot_of(text: &[u8]) -> usize {
    let n = text.len();
    let word = |b: &[u8]| {
        let mut w = [0u8; 8];
        w[..b.len()].copy_from_slice(b);
        u64::from_le_bytes(w)
    };
    let (head, tail) = if n >= 8 {
        (word(&text[..8]), word(&text[n - 8..]))
    } else {
        (word(text), 0)
    };
    let h = (head ^ tail.rotate_left(29) ^ n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (h >> 58) as usize % CACHE_SLOTS
}

/// Ids of label text seen in this batch's messages (which outlive the batch's loop, so
/// their text is kept borrowed). A miss asks the engine's tables, which are the truth.
struct LabelIds<'m> {
    services: [(&'m str, ServiceId); CACHE_SLOTS],
    /// By pod text: (namespace, pod, id).
    pods: [(&'m str, &'m str, PodId); CACHE_SLOTS],
    /// Slots filled (an empty slot holds "" texts, which must not match "").
    service_filled: u64,
    pod_filled: u64,
}

impl<'m> LabelIds<'m> {
    fn new() -> Self {
        LabelIds {
            services: [("", 0); CACHE_SLOTS],
            pods: [("", "", 0); CACHE_SLOTS],
            service_filled: 0,
            pod_filled: 0,
        }
    }

    /// The id of a non-empty service name (interned, with its SLO looked up, on first sight).
    #[inline(always)]
    fn service(&mut self, st: &mut State, cfg: &EngineConfig, name: &'m str) -> ServiceId {
        let s = slot_of(name.as_bytes());
        let (text, id) = self.services[s];
        if self.service_filled >> s & 1 == 1 && text == name {
            return id;
        }
        let id = service_id(st, cfg, name);
        self.services[s] = (name, id);
        self.service_filled |= 1 << s;
        id
    }

    /// The id of (namespace, pod), interned on first sight.
    #[inline(always)]
    fn pod(&mut self, st: &mut State, namespace: &'m str, pod: &'m str) -> PodId {
        let s = slot_of(pod.as_bytes());
        let (ns, p, id) = self.pods[s];
        if self.pod_filled >> s & 1 == 1 && p == pod && ns == namespace {
            return id;
        }
        let id = st.pod_names.intern(namespace, pod);
        self.pods[s] = (namespace, pod, id);
        self.pod_filled |= 1 << s;
        id
    }
}

/// (service, namespace, pod) of a decoded request, when the service is named and every
/// label is borrowed from the message (as the plain form's always are).
#[inline(always)]
fn plain_labels<'m>(r: &Request<'m>) -> Option<(&'m str, &'m str, &'m str)> {
    match (&r.service, &r.namespace, &r.pod) {
        (Cow::Borrowed(s), Cow::Borrowed(n), Cow::Borrowed(p)) if !s.is_empty() => Some((s, n, p)),
        _ => None,
    }
}

/// Ingests a batch of request JSON messages from one partition (`Engine::push_messages`
/// for `MessageFormat::LatencyJson`; the caller begins and ends the batch).
pub(crate) fn push_request_messages<M: AsRef<[u8]>>(
    st: &mut State,
    cfg: &EngineConfig,
    messages: &[M],
    prov: &Provenance<'_>,
    source: &Arc<str>,
    key: PartitionKey,
    wall: EpochMs,
) {
    // As `settle_request` marks it for every request message.
    st.request_batch |= !messages.is_empty();
    let closed = closed_until(st);
    // (closed_until, open_everywhere_from of it): recomputed only when windows close.
    let mut open = (closed, open_everywhere_from(cfg, closed));
    // The newest event time of the plain events, noted once (`saw_request`) after the loop.
    let mut newest = EpochMs::MIN;
    // The current pane's accumulators, held out of the store (put back before any other
    // path touches it, and at the end).
    let mut cursor = PaneCursor::default();
    let mut ids = LabelIds::new();
    for (i, m) in messages.iter().enumerate() {
        let bytes = m.as_ref();
        st.stats.consumed += 1;
        let at = Origin {
            source,
            partition: prov.partition,
            key,
            offset: prov.offsets.get(i),
            now: prov.received_at.map_or(wall, |t| t[i]),
        };
        st.positions.consumed_through(at.offset);
        if bytes.len() > cfg.max_message_bytes {
            let reason = format!(
                "message of {} bytes exceeds engine.max_message_bytes {}",
                bytes.len(),
                cfg.max_message_bytes
            );
            st.latency.put_back(&mut cursor);
            settle_request(st, cfg, Err(reason), &at, bytes);
            continue;
        }
        let closed = closed_until(st);
        if closed != open.0 {
            open = (closed, open_everywhere_from(cfg, closed));
        }
        let latest_ts = at.now.saturating_add(cfg.max_future_ms);
        let plain = match decode_plain(bytes) {
            Some(r) => {
                let ts = r.values.ts_ms;
                let on_time = ts >= MIN_VALID_MS && ts <= latest_ts && ts >= open.1;
                match (on_time, plain_labels(&r)) {
                    (true, Some(labels)) => Ok((labels, r.values)),
                    _ => Err(Ok(r)),
                }
            }
            None => Err(decode_general(bytes)),
        };
        let ((service, namespace, pod), values) = match plain {
            Ok(p) => p,
            Err(decoded) => {
                st.latency.put_back(&mut cursor);
                settle_request(st, cfg, decoded, &at, bytes);
                continue;
            }
        };
        let sid = ids.service(st, cfg, service);
        let pod_id = ids.pod(st, namespace, pod);
        newest = newest.max(values.ts_ms);
        let req = RequestIn {
            values,
            pod: pod_id,
            slo_latency_ms: st.service_slo_ms[sid as usize],
        };
        if req.values.ts_ms >= cursor.start() {
            // What `add_request` does, through the cursor.
            if st
                .latency
                .add_through(&mut cursor, sid, &req, KnownKeys::NONE)
            {
                st.positions.hold(req.values.ts_ms, at.offset);
                st.stats.aggregated += 1;
            } else {
                st.stats.skipped_duplicate += 1;
            }
        } else {
            add_request(st, sid, &req, at.offset);
        }
    }
    st.latency.put_back(&mut cursor);
    if newest != EpochMs::MIN {
        st.saw_request(key, newest);
    }
}

#[cfg(test)]
mod tests {
    use super::slot_of;
    use crate::config::EngineConfig;
    use crate::decode::latency_json_plain::decode_plain;
    use crate::decode::test_support::Rng;
    use crate::engine::{Engine, MessageFormat, Offsets, Provenance};
    use crate::services::{PodRule, Services};
    use crate::window::WindowSpec;

    const T0: i64 = 1_795_867_200_000;
    const MAX_BYTES: usize = 380;

    /// Generated request messages: in order and out of it, late, from the future, without a
    /// service (named by a pod rule or by none), repeated ids, bad JSON, too big, escaped
    /// labels next to plain ones of the same text, more services and pods than the caches
    /// have slots, and one pod name in several namespaces.
    fn messages(rng: &mut Rng, n: usize) -> Vec<(Vec<u8>, i64)> {
        let mut out = Vec::new();
        let mut t = T0;
        for i in 0..n {
            t += rng.below(40) as i64;
            let ts = match rng.below(100) {
                0..=2 => t - 120_000 - rng.below(600_000) as i64, // late for some families
                3 => t + 2 * 86_400_000,                          // beyond max_future_s
                4 => 900_000_000_000,                             // before 2000
                5..=14 => t - rng.below(20_000) as i64,
                _ => t,
            };
            let s = rng.below(90);
            let service = match rng.below(100) {
                0..=3 => String::new(),
                4..=5 => format!(r#","service":"sv\u0063-{s}""#),
                6 => format!(r#","model":"svc-{s}""#),
                _ => format!(r#","service":"svc-{s}""#),
            };
            let p = rng.below(150);
            let pod = if rng.chance(50) {
                format!("batch-{p}")
            } else {
                format!("svc-{s}-pod-{}", p % 7)
            };
            let namespace = format!("ns-{}", rng.below(3));
            let id = match rng.below(10) {
                0 => String::new(),
                1 => format!(r#","request_id":"r-{}""#, i.saturating_sub(rng.below(5))),
                2 if rng.chance(10) => format!(r#","request_id":"{}""#, "x".repeat(400)),
                _ => format!(r#","request_id":"r-{i}""#),
            };
            let latency = match rng.below(50) {
                0 => "-1".to_string(),
                1 => "1e3".to_string(),
                _ => format!("{}.{:03}", rng.below(3000), rng.below(1000)),
            };
            let mut m = format!(
                r#"{{"ts":{}.{:03}{service},"namespace":"{namespace}","pod":"{pod}","latency_ms":{latency},"ttft_ms":{}.5,"status":{},"tokens_in":{},"tokens_out":{}{id}}}"#,
                ts.div_euclid(1000),
                ts.rem_euclid(1000),
                rng.below(100),
                if rng.chance(3) { 503 } else { 200 },
                rng.below(2000),
                rng.below(500),
            )
            .into_bytes();
            if rng.chance(2) {
                m = rng.mutate(&m, br#"{}[]":,.-0123456789e \"#);
            }
            let now = T0 + i as i64 * 20 + 60_000;
            if rng.chance(5) {
                // Sent twice: the second is a duplicate of its request id.
                out.push((m.clone(), now));
            }
            out.push((m, now));
        }
        out
    }

    fn engine() -> Engine {
        Engine::new(EngineConfig {
            windows: vec![
                WindowSpec::tumbling(60),
                WindowSpec::hopping(300, 60),
                WindowSpec::tumbling(10),
            ],
            max_message_bytes: MAX_BYTES,
            services: Services {
                pod_rules: vec![PodRule {
                    namespace: "ns-1".into(),
                    pattern: "batch-*".into(),
                    service: "batch".into(),
                }],
                ..Services::default()
            },
            ..EngineConfig::default()
        })
        .unwrap()
    }

    /// The batch path with its short path gives what the per-message path gives for the
    /// same events: every table row, counter, late event, dead letter and position. The
    /// per-message side gets each plain message with a space before it, which only the
    /// general decoder reads (and reads to the same request).
    #[test]
    fn the_short_path_gives_what_the_per_message_path_gives() {
        let mut rng = Rng(23);
        let msgs = messages(&mut rng, 40_000);
        let plain_count = msgs
            .iter()
            .filter(|(m, _)| decode_plain(m).is_some())
            .count();
        assert!(plain_count > msgs.len() / 2, "{plain_count} plain");
        let spaced: Vec<Vec<u8>> = msgs
            .iter()
            .map(|(m, _)| match decode_plain(m) {
                // Too big either way: the same bytes, for the same reason.
                Some(_) if m.len() < MAX_BYTES => [b" ", m.as_slice()].concat(),
                _ => m.clone(),
            })
            .collect();
        let stamps: Vec<i64> = msgs.iter().map(|(_, t)| *t).collect();
        let (mut fast, mut slow) = (engine(), engine());
        let (mut out_fast, mut out_slow) = (String::new(), String::new());
        let mut from = 0;
        while from < msgs.len() {
            let to = (from + 1 + rng.below(3000)).min(msgs.len());
            for (e, batch, out) in [
                (
                    &mut fast,
                    msgs[from..to]
                        .iter()
                        .map(|m| m.0.clone())
                        .collect::<Vec<_>>(),
                    &mut out_fast,
                ),
                (&mut slow, spaced[from..to].to_vec(), &mut out_slow),
            ] {
                let prov = Provenance {
                    source: "lat",
                    partition: 3,
                    offsets: Offsets::From(from as i64),
                    received_at: Some(&stamps[from..to]),
                };
                e.push_messages(MessageFormat::LatencyJson, &batch, prov);
                out.push_str(&format!("{:?}\n", e.poll()));
            }
            from = to;
        }
        out_fast.push_str(&format!("{:?}", fast.finish()));
        out_slow.push_str(&format!("{:?}", slow.finish()));
        assert!(out_fast == out_slow, "the closed windows differ");
        assert_eq!(fast.stats(), slow.stats());
        assert!(fast.stats().reconciles());
        assert_eq!(
            format!("{:?}", fast.positions()),
            format!("{:?}", slow.positions())
        );
        let late = fast.take_late_events();
        assert_eq!(late, slow.take_late_events());
        let (dead, mut dead_slow) = (fast.take_dead_letters(), slow.take_dead_letters());
        for d in &mut dead_slow {
            if d.raw.first() == Some(&b' ') {
                d.raw.remove(0);
                d.raw_size -= 1;
            }
        }
        assert_eq!(dead.len(), dead_slow.len());
        for (a, b) in dead.iter().zip(&dead_slow) {
            assert!(
                a == b,
                "{:?} {} {} / {:?} {} {}",
                a.reason,
                a.offset,
                a.raw_size,
                b.reason,
                b.offset,
                b.raw_size
            );
        }
        // Every kind of outcome happened.
        let s = fast.stats();
        assert!(
            s.aggregated > 20_000 && s.skipped_duplicate > 500 && s.late > 100,
            "{s:?}"
        );
        assert!(
            late.len() > 500 && dead.len() > 1000,
            "{} late, {} dead",
            late.len(),
            dead.len()
        );
        for reason in [
            "exceeds engine.max_message_bytes",
            "more than engine.max_future_s",
            "before 2000",
            "matches no services.pods rule",
            "invalid JSON",
        ] {
            assert!(
                dead.iter().any(|d| d.reason.contains(reason)),
                "no dead letter for {reason}"
            );
        }
        assert!(
            out_fast.contains("\"batch\""),
            "no request named by a pod rule"
        );
    }

    #[test]
    fn label_slots_spread_similar_names() {
        let names: Vec<String> = (0..48).map(|i| format!("svc-{i}-pod-{}", i % 7)).collect();
        let slots: std::collections::HashSet<usize> =
            names.iter().map(|n| slot_of(n.as_bytes())).collect();
        assert!(slots.len() > 24, "{} slots for 48 names", slots.len());
        assert_eq!(slot_of(b""), slot_of(b""));
    }
}
