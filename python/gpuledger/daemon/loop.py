"""`gpuledger run`: the streaming daemon. A confluent-kafka consumer-group member on the
telemetry and latency topics hands raw message batches to the Rust engine, writes closed
windows atomically, and commits offsets only for what is written or provably not needed.

Exactly-once output (docs/daemon.md): the committed offset of a partition is the oldest
event a window not yet written still needs; its commit metadata says through which watermark
windows were written and below which offset late and dead rows were written
(`gpuledger.daemon.checkpoint`). File names depend only on the input (`gpuledger.daemon.output`), so
whatever a crash interrupts is written again identically.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_INVALID,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from gpuledger.config import Config, masked
from gpuledger.daemon.checkpoint import PartitionCheckpoint, decode, encode
from gpuledger.daemon.consumer import consumer_settings
from gpuledger.daemon.dead_letter_topic import DeadLetterTopic
from gpuledger.daemon.engine_threads import EngineThreads, Started
from gpuledger.daemon.gc_tuning import batched_gc
from gpuledger.daemon.groups import PartitionGroup, engine_slots, group_partitions
from gpuledger.daemon.http import Health
from gpuledger.daemon.log import EventLog, ForwardToEventLog, counters
from gpuledger.daemon.metrics import DaemonMetrics
from gpuledger.daemon.native_consumer import NativeConsumer, kafka_events
from gpuledger.daemon.output import OutputWriter, rows_in
from gpuledger.daemon.partition_end import reached_end
from gpuledger.daemon.partitions import PartitionState, row_spans
from gpuledger.daemon.seed import HOUR_MS, written_gpu_windows
from gpuledger.tables import EVENT_TABLES, PartitionKey

MAX_BACKOFF_S = 30.0
Positions = dict[PartitionKey, tuple[int, int]]
"""Per partition: (offset to commit, next offset to consume), from the engines."""


class Daemon:
    """`consumer_factory` builds the consumer from its settings: by default the client
    `[kafka] consumer` names (`NativeConsumer` or `confluent_kafka.Consumer`);
    `gpuledger.memory_source.MemoryConsumer` for the embedded demo."""

    def __init__(
        self,
        cfg: Config,
        *,
        until_eof: bool = False,
        log: EventLog | None = None,
        consumer_factory: Callable[[dict[str, Any]], Any] | None = None,
    ):
        self.cfg = cfg
        self.until_eof = until_eof
        if consumer_factory is None:
            native = cfg.kafka.consumer == "native"
            consumer_factory = NativeConsumer if native else Consumer
        self.consumer_factory = consumer_factory
        self.log = log or EventLog(cfg.observability.log_format)
        t = cfg.topics
        self.formats = {t.telemetry: t.telemetry_format, t.latency: "latency_json"}
        self.tags = {t.telemetry: "t", t.latency: "r"}
        self.output = OutputWriter(cfg.output.dir, cfg.output.format)  # a path or a URI
        health = Health(lambda: len(getattr(self, "partitions", ())))  # /readyz: partitions held
        self.metrics = DaemonMetrics(cfg, health)
        self.dlq = DeadLetterTopic(cfg) if t.dead_letter else None
        self.consumer: Any = None
        self.groups: list[PartitionGroup] = []
        self.engine_threads = EngineThreads()  # the groups' engine work, in parallel
        # With [run] engines != 1 a batch's push runs while the next batch is consumed;
        # everything that touches an engine first waits for it (`_drain`).
        self.pipelined = cfg.run.engines != 1
        self.in_flight: tuple[Started[Any], float] | None = None
        self._reset_assignment()
        self.totals_base: dict[str, int] = {}
        self.files_written = 0
        self.stop_signal: str | None = None
        self.blocked = False
        self.retry_at = 0.0
        self.backoff = 1.0
        self.last_kafka_error = 0.0
        self.fatal_error: Any = None

    # --- assignment ---------------------------------------------------------------------

    def _reset_assignment(self) -> None:
        self.partitions: dict[PartitionKey, PartitionState] = {}  # assigned, in assignment order

    def _topic_partitions(self) -> list[TopicPartition]:
        return [TopicPartition(t, p) for t, p in self.partitions]

    def _retire_engines(self) -> None:
        self._drain()
        for g in self.groups:
            for k, v in g.engine.stats().items():
                self.totals_base[k] = self.totals_base.get(k, 0) + v
        self.groups = []

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self._retire_engines()
        self._reset_assignment()
        committed = consumer.committed(partitions, timeout=30) if partitions else []
        checkpoints = {
            (tp.topic, tp.partition): decode(tp.metadata) if tp.offset != OFFSET_INVALID else None
            for tp in committed
        }
        starts = {
            (tp.topic, tp.partition): tp.offset for tp in committed if tp.offset != OFFSET_INVALID
        }
        resumed = [
            (key, None, None) if cp is None else (key, cp.written_through_ms, cp.rows_through)
            for key, cp in checkpoints.items()
        ]
        slots = engine_slots(self.cfg.run.engines, len(resumed))
        self.groups = group_partitions(self.cfg, resumed, slots)
        now = time.monotonic()
        group_of = {key: g for g in self.groups for key in g.partitions}
        for key, cp in checkpoints.items():
            state = PartitionState(key, group_of[key], last_data=now)
            state.start_offset = starts.get(key)
            if cp is not None:
                state.floor = cp.written_through_ms
                state.rows_through = cp.rows_through
                state.adopted = self.output.markers.chain(*key, cp.rows_through)
            self.partitions[key] = state
        for g in self.groups:
            self._seed_idle_streaks(g)
        consumer.assign(committed)
        self.log.info(
            "assigned",
            partitions=[f"{t}:{p}" for t, p in self.partitions],
            resumed={f"{tp.topic}:{tp.partition}": tp.offset for tp in committed},
            written_through={
                f"{t}:{p}": None if cp is None else cp.written_through_ms
                for (t, p), cp in checkpoints.items()
            },
            engines=len(self.groups),
        )

    def _seed_idle_streaks(self, g: PartitionGroup) -> None:
        """Continues the idle streaks of the windows already written (docs/daemon.md)."""
        floor = self.partitions[g.partitions[0]].floor if g.partitions else None
        if floor is None:
            return
        lookback_ms = int(2 * self.cfg.idle.ttl_s * 1000) + 2 * HOUR_MS
        rows = written_gpu_windows(self.output.out_dir, floor, lookback_ms)
        if rows is not None and rows.num_rows:
            windows = g.engine.seed_idle_streaks(rows)
            self.log.info("idle_streaks_seeded", windows=windows, rows=rows.num_rows)

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        if self.groups and not self.blocked:
            self._flush(final=False, sync=True)
        self.log.info("revoked", partitions=[f"{p.topic}:{p.partition}" for p in partitions])
        self._retire_engines()
        self._reset_assignment()
        self.blocked = False

    def _on_lost(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self.log.warning(
            "partitions_lost", partitions=[f"{p.topic}:{p.partition}" for p in partitions]
        )
        self._retire_engines()
        self._reset_assignment()
        self.blocked = False

    # --- ingest -------------------------------------------------------------------------

    def _ingest(self, msgs: list[Any]) -> None:
        if not msgs:
            return
        self._drain()
        if not self.groups:
            for m in kafka_events(msgs):
                err = m.error()
                if err is not None and err.code() != KafkaError._PARTITION_EOF:
                    self._kafka_error(err)
            return

        def push(g: PartitionGroup) -> Any:
            return g.engine.push_kafka(msgs, self.formats, g.partitions)

        if self.pipelined:
            self.in_flight = (self.engine_threads.start(push, self.groups), time.perf_counter())
        else:
            self._pushed(self.engine_threads.map(push, self.groups))

    def _drain(self) -> None:
        """Waits for the batch the engines are pushing (pipelined), then books it."""
        if self.in_flight is None:
            return
        started, at = self.in_flight
        self.in_flight = None
        pushed = started.result()
        self.metrics.batch.observe(time.perf_counter() - at)
        self._pushed(pushed)

    def _pushed(self, pushed: list[Any]) -> None:
        """Books what the engines took of a batch: partitions fed, ends of partitions."""
        now = time.monotonic()
        last_index: dict[PartitionKey, int] = {}
        errors = pushed[0][1]  # every engine sees the same error messages
        for fed, _ in pushed:
            for topic, partition, first_offset, last in fed:
                key = (topic, partition)
                last_index[key] = last
                state = self.partitions[key]
                if state.rows_through is None:
                    state.rows_through = first_offset
                    state.adopted = self.output.markers.chain(topic, partition, first_offset)
                state.last_data = now
                state.idle = state.at_eof = False
                state.consumed = True
                state.end_offset = None
        for i, m in errors:
            err = m.error()
            if err.code() == KafkaError._PARTITION_EOF:
                key = (m.topic(), m.partition())
                # Data after an end-of-partition in the same batch: not at the end any more.
                if key in self.partitions and last_index.get(key, -1) < i:
                    self.partitions[key].at_eof = True
            else:
                self._kafka_error(err)

    def _kafka_error(self, err: Any) -> None:
        """A client error (from a message or librdkafka's error callback): logged at most
        every 5 s; librdkafka retries by itself, except for a fatal error."""
        now = time.monotonic()
        if now - self.last_kafka_error > 5 or err.fatal():
            self.last_kafka_error = now
            self.log.warning("kafka_error", error=str(err), fatal=err.fatal())
        if err.fatal():
            self.fatal_error = err

    def _idle_due(self) -> bool:
        """Whether `_check_idle` has anything to do, from the partitions' records alone."""
        now = time.monotonic()
        timeout = self.cfg.engine.idle_timeout_s
        quiet_after = timeout + self.cfg.engine.allowed_lateness_s
        states = self.partitions
        return any(
            not s.idle and now - s.last_data >= timeout and reached_end(self.consumer, s)
            for s in states.values()
        ) or any(
            all(states[k].idle for k in g.partitions)
            and now - max(states[k].last_data for k in g.partitions) >= quiet_after
            for g in self.groups
        )

    def _check_idle(self) -> None:
        if self.in_flight is not None:
            if not self._idle_due():
                return  # the engines keep pushing: nothing to mark or close
            self._drain()
        now = time.monotonic()
        timeout = self.cfg.engine.idle_timeout_s
        quiet_groups = []
        for g in self.groups:
            states = [self.partitions[key] for key in g.partitions]
            for state in states:
                # Silent: read to its end and nothing new for idle_timeout_s. A partition
                # with a backlog not fetched yet (a slow first fetch after an assignment, a
                # busy consumer) holds the watermark back: its events are not late.
                if (
                    not state.idle
                    and now - state.last_data >= timeout
                    and reached_end(self.consumer, state)
                ):
                    g.engine.mark_idle(state.partition, source=state.topic)
                    state.idle = True
                    self.log.info("partition_idle", partition=f"{state.topic}:{state.partition}")
            # Every partition quiet for idle_timeout_s plus the lateness: the windows the
            # data covers (a reading at t covers [t, t + sample_interval_s)) close, the last
            # one included (docs/daemon.md, "Windows close on a quiet stream").
            quiet = now - max(state.last_data for state in states)
            covered = g.engine.quiet_close_ms
            if (
                all(state.idle for state in states)
                and quiet >= timeout + self.cfg.engine.allowed_lateness_s
                and covered is not None
                and covered != g.idle_advanced_to
            ):
                g.idle_advanced_to = covered
                quiet_groups.append(g)
        closed = self.engine_threads.map(lambda g: g.engine.close_quiet(), quiet_groups)
        for g, windows in zip(quiet_groups, closed, strict=True):
            g.add_pending(windows)

    # --- output and commits -------------------------------------------------------------

    def _flush(self, *, final: bool, sync: bool = False) -> bool:
        """Closes what is final, writes it, commits. False when output is blocked."""
        self._drain()
        positions: Positions = {}
        closed = self.engine_threads.map(
            lambda g: g.engine.finish() if final else g.engine.poll(), self.groups
        )
        for g, windows in zip(self.groups, closed, strict=True):
            g.add_pending(windows)
            for s, p, c, n in g.engine.positions():
                positions[(s, p)] = (c, n)
        try:
            for g in self.groups:
                self._write_pending(g, positions)
        except OSError as e:
            self._block(e)
            return False
        finally:
            # Only input that breaks the ordering assumption gets here (docs/daemon.md):
            # the first version of a file stays, the rest is written; say so loudly.
            for conflict in self.output.conflicts:
                self.log.error("output_conflict", error=str(conflict))
            self.output.conflicts.clear()
        if self.dlq is not None and not self.dlq.flush():
            self.log.warning("dead_letter_topic_unflushed")
            return False
        if self.blocked:
            self.blocked = False
            self.backoff = 1.0
            self.metrics.blocked.set(0)
            self.consumer.resume(self._topic_partitions())
            # Paused is not quiet: the partitions' data waited in the broker, so the quiet
            # clock starts again now, or the quiet close would shut windows whose data is
            # still to come (docs/daemon.md, "Windows close on a quiet stream").
            now = time.monotonic()
            for state in self.partitions.values():
                state.last_data = now
            self._seek_after_resume(positions)
            self.log.info("output_resumed")
        return self._commit(positions, sync=sync)

    def _seek_after_resume(self, positions: Positions) -> None:
        """With end-of-partition events (`--until-eof`), librdkafka 2.2-2.12 leaves the
        position one past a partition's end, and a resumed partition is fetched from there:
        a message would be skipped. So each partition is sought to where this run is:
        one past its last message read, or where reading started."""
        if not self.until_eof:
            return
        for key, state in self.partitions.items():
            pos = positions.get(key)
            if state.consumed and pos is not None and pos[1] >= 0:
                offset = pos[1]
            elif state.start_offset is not None:
                offset = state.start_offset
            else:
                offset = OFFSET_BEGINNING
            try:
                self.consumer.seek(TopicPartition(key[0], key[1], offset))
            except KafkaException as e:
                self.log.warning("seek_failed", partition=f"{key[0]}:{key[1]}", error=str(e))

    def _write_pending(self, g: PartitionGroup, positions: Positions) -> None:
        pending = g.pending
        if pending is None:
            return
        windows = {n: t for n, t in pending.tables.items() if n not in EVENT_TABLES}
        files = self.output.write_windows(windows, g.writer_id)
        events = {n: pending.tables[n] for n in EVENT_TABLES if n in pending.tables}
        for key in g.partitions:
            state = self.partitions[key]
            if state.rows_through is None or key not in positions:
                continue
            topic, partition = key
            for span in row_spans(state, positions[key][1]):
                rows = {n: rows_in(t, topic, partition, *span) for n, t in events.items()}
                files += self.output.write_rows(topic, self.tags[topic], partition, span, rows)
                if self.dlq is not None and "dead_letters" in rows:
                    self.dlq.produce(rows["dead_letters"])
                state.rows_through = span[1]
        self.files_written += files
        self.metrics.files.inc(files)
        self.metrics.business.observe(windows)  # once per window: pending is written
        g.pending = None
        if files:
            self.log.info("flushed", files=files)

    def _commit(self, positions: Positions, *, sync: bool = False) -> bool:
        """Commits offsets with their checkpoints. Periodic commits are asynchronous, so a
        broker outage never blocks the loop (a commit that fails only means more is re-read
        after a restart); a revoke commits synchronously, before another member takes over."""
        offsets = []
        for g in self.groups:
            watermark = g.engine.watermark_ms
            for key in g.partitions:
                pos = positions.get(key)
                state = self.partitions[key]
                rows = state.rows_through
                marks = (watermark, state.floor)
                through = max((w for w in marks if w is not None), default=None)
                if not state.consumed or pos is None or pos[1] < 0 or rows is None:
                    # Nothing read by this run: the committed position stands. (The engine
                    # reports a resumed partition not read yet at its replay bound, past the
                    # re-reads a restart needs: committing that would skip them.)
                    if not state.consumed and state.end_offset is not None:
                        # Nothing read, and nothing there to read: its checkpoint moves with
                        # its engine's, so a restart puts it in the same engine again, under
                        # the same writer id (else windows written but not yet committed at a
                        # crash would be written again under another name).
                        end = state.end_offset
                        md = encode(PartitionCheckpoint(through, max(end, rows or 0)))
                        offsets.append(TopicPartition(key[0], key[1], end, metadata=md))
                        if state.rows_through is None:
                            state.rows_through = end
                            state.adopted = self.output.markers.chain(*key, end)
                    continue
                md = encode(PartitionCheckpoint(through, rows))
                offsets.append(TopicPartition(key[0], key[1], pos[0], metadata=md))
        if not offsets:
            return True
        try:
            self.consumer.commit(offsets=offsets, asynchronous=not sync)
        except KafkaException as e:
            self.log.warning("commit_failed", error=str(e))
            return False
        for tp in offsets:
            state = self.partitions[(tp.topic, tp.partition)]
            rows = state.rows_through
            assert rows is not None
            if sync:
                self.output.markers.forget_before(tp.topic, tp.partition, rows)
            else:
                state.in_flight.append((tp.offset, rows))
        return True

    def _on_commit(self, err: Any, partitions: list[TopicPartition]) -> None:
        """librdkafka's commit result: range markers below a committed row bound can go."""
        if err is not None:
            self.log.warning("commit_failed", error=str(err))
        for tp in partitions:
            state = self.partitions.get((tp.topic, tp.partition))
            queue = state.in_flight if state is not None else []
            while queue:
                offset, rows = queue.pop(0)
                if offset == tp.offset:
                    if err is None and tp.error is None:
                        self.output.markers.forget_before(tp.topic, tp.partition, rows)
                    break

    def _block(self, e: OSError) -> None:
        if not self.blocked:
            self.blocked = True
            self.metrics.blocked.set(1)
            self.consumer.pause(self._topic_partitions())
            self.log.error("output_blocked", error=str(e), retry_in_s=self.backoff)
        self.retry_at = time.monotonic() + self.backoff
        self.backoff = min(self.backoff * 2, MAX_BACKOFF_S)

    # --- the loop -----------------------------------------------------------------------

    def totals(self) -> dict[str, int]:
        self._drain()
        out = dict(self.totals_base)
        for g in self.groups:
            for k, v in g.engine.stats().items():
                out[k] = out.get(k, 0) + v
        return out

    def _signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stop_signal is not None:
            os._exit(130)  # second signal: at once; files are only ever renamed into place
        self.stop_signal = signal.Signals(signum).name

    def consumer_settings(self) -> dict[str, Any]:
        return consumer_settings(
            self.cfg,
            until_eof=self.until_eof,
            error_cb=self._kafka_error,
            on_commit=self._on_commit,
        )

    def run(self) -> int:
        previous = {s: signal.signal(s, self._signal) for s in (signal.SIGTERM, signal.SIGINT)}
        library_log = logging.getLogger("gpuledger")
        forward = ForwardToEventLog(self.log)
        library_log.addHandler(forward)
        propagate, library_log.propagate = library_log.propagate, False
        try:
            with batched_gc(self.cfg.run.batch_messages):
                return self._run()
        finally:
            self.engine_threads.shutdown()
            library_log.removeHandler(forward)
            library_log.propagate = propagate
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _run(self) -> int:
        self.consumer = self.consumer_factory(self.consumer_settings())
        topics = list(self.formats)
        self.consumer.subscribe(
            topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        self.log.info(
            "started",
            group_id=self.cfg.kafka.group_id,
            topics=topics,
            output_dir=str(self.cfg.output.dir),
            kafka=masked(self.cfg.kafka.client),
        )
        batch = self.cfg.run.batch_messages
        last_flush = last_status = time.monotonic()
        status_base = (last_status, 0)
        while self.stop_signal is None:
            msgs = self.consumer.consume(batch, timeout=0.2)
            self.metrics.health.beat()
            if self.fatal_error is not None:
                raise KafkaException(self.fatal_error)
            started = time.perf_counter()
            self._ingest(msgs)
            if msgs and not self.pipelined:  # pipelined: observed when the push ends
                self.metrics.batch.observe(time.perf_counter() - started)
            now = time.monotonic()
            # Status lines go on while output is blocked: that is when operators need them.
            if now - last_status >= self.cfg.observability.status_interval_s:
                status_base = self._status(status_base)
                last_status = now
            if self.blocked:
                if now >= self.retry_at:
                    self._flush(final=False)
                continue
            self._check_idle()
            states = self.partitions.values()
            if self.until_eof and states and all(state.at_eof for state in states):
                self._drain()  # the batch in flight may hold data after the ends
            if self.until_eof and states and all(state.at_eof for state in states):
                self.log.info("eof", partitions=len(states))
                if self._finish_at_eof():
                    break
                continue
            if now - last_flush >= self.cfg.run.flush_interval_s:
                last_flush = now
                self._flush(final=False)
                self.metrics.count(self.totals())
        return self._stop()

    def _finish_at_eof(self) -> bool:
        return self._flush(final=True)

    def _stop(self) -> int:
        code = 0
        deadline = time.monotonic() + self.cfg.run.stop_timeout_s
        if self.stop_signal is not None:
            self.log.info("stopping", signal=self.stop_signal)
            while not self._flush(final=False):
                if time.monotonic() >= deadline:
                    self.log.error("stop_unflushed", reason="output not writable; nothing lost")
                    code = 1
                    break
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        self.metrics.count(self.totals())
        # Leaving the group commits once more (the revoke); with the broker down that can
        # hang, so it gets what is left of the stop time. Nothing is lost if it does not
        # finish: the next start re-reads from the last commit that did.
        closer = threading.Thread(target=self._close_consumer, daemon=True)
        closer.start()
        closer.join(max(0.5, deadline - time.monotonic()))
        if self.dlq is not None:
            self.dlq.flush(max(0.1, deadline - time.monotonic()))
        t = self.totals()
        self.log.info("stopped", exit_code=code, **counters(t), files_written=self.files_written)
        if closer.is_alive():
            self.log.warning("close_timeout", reason="the broker did not answer; exiting")
            sys.stdout.flush()
            os._exit(code)  # the client's threads would hold the process; files are final
        return code

    def _close_consumer(self) -> None:
        try:
            self.consumer.close()
        except (KafkaException, RuntimeError) as e:
            self.log.warning("close_failed", error=str(e))

    def _status(self, base: tuple[float, int]) -> tuple[float, int]:
        t = self.totals()
        now = time.monotonic()
        consumed = t.get("consumed", 0)
        rate = (consumed - base[1]) / max(now - base[0], 1e-9)
        lag = 0
        for tp in self._topic_partitions():
            topic, partition = tp.topic, tp.partition
            try:
                _, high = self.consumer.get_watermark_offsets(tp, cached=True)
                [pos] = self.consumer.position([tp])
            except KafkaException:
                continue
            if high >= 0 and pos.offset >= 0:
                part_lag = max(high - pos.offset, 0)
                lag += part_lag
                self.metrics.lag.labels(topic, str(partition)).set(part_lag)
        marks = [w for g in self.groups if (w := g.engine.watermark_ms) is not None]
        wm = min(marks) if marks else None
        delay = None if wm is None else round(time.time() - wm / 1000.0, 3)
        if delay is not None:
            self.metrics.watermark_delay.set(delay)
        self.log.status_line(
            {
                **counters(t),
                "rate_per_s": rate,
                "files_written": self.files_written,
                "lag": lag,
                "watermark_delay_s": delay,
                "output_blocked": self.blocked,
            }
        )
        return (now, consumed)
