"""The configuration's section records ([engine], [kafka], [services]...), immutable and unchecked:
`gpuledger.config.validate` builds them from TOML-shaped data. docs/configuration.md describes
every key. Imports nothing of gpuledger, so the records load without the compiled engine."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from types import MappingProxyType
from typing import Any, TypeAlias

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
    # Kafka static membership (group.instance.id): "" = dynamic membership.
    instance_id: str = ""
    # Once loaded: the [kafka.client] table, overridden by the secrets file, then the environment.
    client: Mapping[str, ClientValue] = field(default_factory=frozen_map)
    secrets_file: str = ""
    # The daemon's Kafka client: "native" (librdkafka driven from Rust, one batch object per
    # poll) or "confluent-kafka" (one Python Message per record). docs/daemon.md.
    consumer: str = "native"

    def client_settings(self) -> dict[str, ClientValue]:
        """Settings for a confluent_kafka client, secrets included: never log the result."""
        base: dict[str, ClientValue] = {
            "bootstrap.servers": self.bootstrap_servers,
            "group.id": self.group_id,
        }
        if self.instance_id:
            base["group.instance.id"] = self.instance_id
        return base | dict(self.client)

    def __repr__(self) -> str:
        return (
            f"KafkaConfig(bootstrap_servers={self.bootstrap_servers!r}, "
            f"group_id={self.group_id!r}, instance_id={self.instance_id!r}, "
            f"client={masked(self.client)!r}, "
            f"secrets_file={self.secrets_file!r}, consumer={self.consumer!r})"
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
class TlsServerConfig:
    """`[observability.web.tls_server_config]` (gpuledger.config.web)."""

    cert_file: str
    key_file: str
    client_ca_file: str = ""  # set: clients must present a certificate signed by it


@dataclass(frozen=True, kw_only=True, repr=False)
class WebConfig:
    """`[observability.web]`: the Prometheus exporter toolkit's web config shape."""

    tls_server_config: TlsServerConfig | None = None
    basic_auth_users: Mapping[str, str] = field(default_factory=frozen_map)  # user -> bcrypt

    def __repr__(self) -> str:  # the hashes are not shown: only who may log in
        return (
            f"WebConfig(tls_server_config={self.tls_server_config!r}, "
            f"basic_auth_users={sorted(self.basic_auth_users)!r})"
        )


@dataclass(frozen=True, kw_only=True)
class ObservabilityConfig:
    metrics_port: int = 9464
    metrics_bind: str = "0.0.0.0"
    web: WebConfig = field(default_factory=WebConfig)
    log_format: str = "human"
    status_interval_s: float = 30.0


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """The daemon's loop (`gpuledger run`)."""

    batch_messages: int = 20_000
    flush_interval_s: float = 2.0
    stop_timeout_s: float = 8.0
    # Engines the assigned partitions are dealt over, run in parallel threads; 0 = the usable
    # cores. Capped by the partitions assigned. Above 1, rows are partial like members' rows.
    engines: int = 1
