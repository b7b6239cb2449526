"""gpuledger's one typed configuration, shared by the library, `gpuledger replay` and the daemon.

Sources, later wins: built-in defaults < TOML file < environment (``GPULEDGER_<SECTION>__<KEY>``).
Every problem raises ConfigError whose message starts with the exact key, environment variable or
file at fault. This module holds the immutable records and the entry points; the checks live in
`gpuledger._config_validate`. docs/configuration.md describes every key.
This module must import without the compiled engine (`gpuledger._engine`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from fnmatch import fnmatchcase
from types import MappingProxyType
from typing import Any, TypeAlias

from gpuledger.errors import ConfigError

__all__ = [
    "Aggregation",
    "Config",
    "ConfigError",
    "EngineConfig",
    "HoppingWindow",
    "IdleConfig",
    "KafkaConfig",
    "ObservabilityConfig",
    "OutputConfig",
    "PodRule",
    "RunConfig",
    "ServicesConfig",
    "Slo",
    "TopicsConfig",
    "load_config",
]

ClientValue: TypeAlias = str | int | bool
SECRET_MARKERS = ("password", "secret", "token", "key")
MASK = "***"


def masked(settings: Mapping[str, object]) -> dict[str, object]:
    """`settings` with the value of every key containing password/secret/token/key hidden."""
    return {
        k: MASK if any(m in k.lower() for m in SECRET_MARKERS) else value
        for k, value in settings.items()
    }


def frozen_map(d: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(d or {}))


@dataclass(frozen=True, kw_only=True)
class HoppingWindow:
    size_s: int
    slide_s: int


@dataclass(frozen=True, kw_only=True)
class EngineConfig:
    window_s: tuple[int, ...] = (60,)
    hopping: tuple[HoppingWindow, ...] = ()
    allowed_lateness_s: float = 30.0
    idle_timeout_s: float = 30.0
    sample_interval_s: float = 1.0
    max_message_bytes: int = 1_048_576
    max_future_s: float = 86_400.0
    dead_letter_max_bytes: int = 4096


@dataclass(frozen=True, kw_only=True)
class Slo:
    slo_latency_ms: float = 200.0
    slo_target: float = 0.95


@dataclass(frozen=True, kw_only=True)
class PodRule:
    pattern: str
    service: str
    namespace: str | None = None


@dataclass(frozen=True, kw_only=True)
class ServicesConfig:
    default: Slo = field(default_factory=Slo)
    slos: Mapping[str, Slo] = field(default_factory=frozen_map)
    pods: tuple[PodRule, ...] = ()

    def slo_of(self, service: str) -> Slo:
        return self.slos.get(service, self.default)

    def service_of_pod(self, namespace: str, pod: str) -> str | None:
        """The service of the first `[[services.pods]]` rule that matches (fnmatch glob)."""
        for rule in self.pods:
            if rule.namespace in (None, namespace) and fnmatchcase(pod, rule.pattern):
                return rule.service
        return None


DEFAULT_GROUP_BY = ("UUID", "GPU_I_ID")


@dataclass(frozen=True, kw_only=True)
class Aggregation:
    name: str
    field: str
    reducer: str
    group_by: tuple[str, ...] = DEFAULT_GROUP_BY
    q: float | None = None
    threshold: float | None = None


@dataclass(frozen=True, kw_only=True)
class IdleConfig:
    threshold: float = 0.05
    ttl_s: float = 21_600.0


@dataclass(frozen=True, kw_only=True, repr=False)
class KafkaConfig:
    bootstrap_servers: str = "127.0.0.1:9092"
    group_id: str = "gpuledger"
    # Once loaded: the [kafka.client] table, overridden by the secrets file, then the environment.
    client: Mapping[str, ClientValue] = field(default_factory=frozen_map)
    secrets_file: str = ""

    def client_settings(self) -> dict[str, ClientValue]:
        """Settings for a confluent_kafka client, secrets included: never log the result."""
        base: dict[str, ClientValue] = {
            "bootstrap.servers": self.bootstrap_servers,
            "group.id": self.group_id,
        }
        return base | dict(self.client)

    def __repr__(self) -> str:
        return (
            f"KafkaConfig(bootstrap_servers={self.bootstrap_servers!r}, "
            f"group_id={self.group_id!r}, client={masked(self.client)!r}, "
            f"secrets_file={self.secrets_file!r})"
        )


@dataclass(frozen=True, kw_only=True)
class TopicsConfig:
    telemetry: str = "gpu-telemetry"
    telemetry_format: str = "prom_json"
    latency: str = "request-latency"
    dead_letter: str = ""


@dataclass(frozen=True, kw_only=True)
class OutputConfig:
    dir: str = "gpuledger-out"
    format: str = "arrow"


@dataclass(frozen=True, kw_only=True)
class ObservabilityConfig:
    metrics_port: int = 9464
    log_format: str = "human"
    status_interval_s: float = 30.0


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """The daemon's loop (`gpuledger run`)."""

    batch_messages: int = 20_000
    flush_interval_s: float = 2.0
    stop_timeout_s: float = 8.0


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

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Config:
        """Validates TOML-shaped data (as `tomllib` returns it); no environment applied."""
        from gpuledger._config_validate import build  # it imports this module

        return build(data)

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


def load_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Defaults, overridden by the TOML file at `path` (when given), overridden by `env`
    (default: `os.environ`). Raises ConfigError naming the key or variable at fault."""
    from gpuledger._config_validate import load  # it imports this module

    return load(path, os.environ if env is None else env)
