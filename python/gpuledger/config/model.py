"""`Config`, gpuledger's one typed configuration, shared by the library, `gpuledger replay` and
the daemon: the section records of `gpuledger.config.sections`, checked by
`gpuledger.config.validate`. Must import without the compiled engine (`gpuledger._engine`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from gpuledger.config.sections import (
    Aggregation,
    EngineConfig,
    IdleConfig,
    KafkaConfig,
    ObservabilityConfig,
    OutputConfig,
    RunConfig,
    ServicesConfig,
    TopicsConfig,
    frozen_map,
    masked,
)
from gpuledger.config.validate import sections_of


@dataclass(frozen=True, kw_only=True)
class Config:
    """Validated gpuledger configuration. Build it with `load_config` or `Config.from_dict`
    (the constructors themselves check nothing); `Config()` is all defaults."""

    engine: EngineConfig = field(default_factory=EngineConfig)
    units: Mapping[str, str] = field(default_factory=frozen_map)
    prices: Mapping[str, float] = field(default_factory=lambda: frozen_map({"default": 2.0}))
    teams: Mapping[str, str] = field(default_factory=frozen_map)
    services: ServicesConfig = field(default_factory=ServicesConfig)
    aggregations: tuple[Aggregation, ...] = ()
    idle: IdleConfig = field(default_factory=IdleConfig)
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    topics: TopicsConfig = field(default_factory=TopicsConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    observability: ObservabilityConfig = field(default_factory=ObservabilityConfig)
    run: RunConfig = field(default_factory=RunConfig)
    # [billing], checked by gpuledger.billing.settings when `gpuledger allocate` starts.
    billing: Mapping[str, Any] = field(default_factory=frozen_map)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Config:
        """Validates TOML-shaped data (as `tomllib` returns it); no environment applied."""
        return cls(**sections_of(data))

    def team_of(self, namespace: str) -> str:
        return self.teams.get(namespace, namespace)

    def price_of(self, model_name: str) -> float:
        """USD per GPU-hour of a GPU model; the "default" price for unlisted models."""
        return self.prices.get(model_name, self.prices["default"])

    def to_engine_kwargs(self) -> dict[str, Any]:
        """Plain values for the Rust engine's constructor."""
        e = self.engine
        return {
            "window_s": list(e.window_s),
            "hopping": [(h.size_s, h.slide_s) for h in e.hopping],
            "allowed_lateness_s": e.allowed_lateness_s,
            "sample_interval_s": e.sample_interval_s,
            "max_message_bytes": e.max_message_bytes,
            "max_future_s": e.max_future_s,
            "dead_letter_max_bytes": e.dead_letter_max_bytes,
            "units": dict(self.units),
            "prices": {k: p for k, p in self.prices.items() if k != "default"},
            "default_price": self.prices["default"],
            "teams": dict(self.teams),
            "aggregations": [
                {"name": a.name, "field": a.field, "reducer": a.reducer, "q": a.q}
                | {"threshold": a.threshold, "group_by": list(a.group_by)}
                for a in self.aggregations
            ],
            "idle_threshold": self.idle.threshold,
            "idle_ttl_s": self.idle.ttl_s,
        }

    def to_dict(self, *, reveal_secrets: bool = False) -> dict[str, Any]:
        """TOML-shaped data that `from_dict` accepts (e.g. to show the effective settings).
        Secret client settings are masked unless `reveal_secrets`."""
        out: dict[str, Any] = {f.name: _plain(getattr(self, f.name)) for f in fields(self)}
        s = self.services
        out["services"] = {"default": _plain(s.default), **_plain(s.slos), "pods": _plain(s.pods)}
        if not reveal_secrets:
            out["kafka"]["client"] = masked(self.kafka.client)
        return out


def _plain(value: Any) -> Any:
    """Dataclasses and mappings as dicts, tuples as lists; fields that are None left out."""
    if is_dataclass(value) and not isinstance(value, type):
        items = ((f.name, getattr(value, f.name)) for f in fields(value))
        return {k: _plain(x) for k, x in items if x is not None}
    if isinstance(value, Mapping):
        return {k: _plain(x) for k, x in value.items()}
    if isinstance(value, tuple):
        return [_plain(x) for x in value]
    return value
