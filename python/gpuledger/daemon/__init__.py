"""The streaming daemon, `gpuledger run`: a Kafka consumer-group member that hands raw message
batches to the engine and writes every table exactly once (docs/daemon.md). Here: the main loop
(`loop`), each assigned partition's state (`partitions`), partition groups with their engines
(`groups`), file names and commits of written output (`output`, `checkpoint`), restart seeding
(`seed`), the event log, metrics and health endpoints (`log`, `metrics`), the dead-letter topic,
GC tuning for the hot loop, and the in-memory consumer the demo runs it on (`memory_source`).
"""

from gpuledger.daemon.loop import Daemon

__all__ = ["Daemon"]
