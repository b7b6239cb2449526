"""Validation behind `gpuledger.config`: raw TOML data -> the keyword arguments of `Config`, each
section checked by the readers of `gpuledger.config.readers`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from gpuledger.config.readers import (
    Reader,
    array,
    check_keys,
    choice,
    did_you_mean,
    fail,
    integer,
    join,
    matching,
    number,
    require,
    string,
    table,
)
from gpuledger.config.sections import (
    DEFAULT_GROUP_BY,
    Aggregation,
    ClientValue,
    EngineConfig,
    HoppingWindow,
    IdleConfig,
    KafkaConfig,
    ObservabilityConfig,
    OutputConfig,
    PodRule,
    RunConfig,
    ServicesConfig,
    Slo,
    TopicsConfig,
    frozen_map,
)
from gpuledger.config.web import read_web_config
from gpuledger.tables import BUILTIN_TABLES, STANDARD_LABELS

UNITS = ("ratio", "percent", "MiB", "bytes", "W", "mJ", "J", "raw")
# fmt: off
REDUCERS = ("count", "sum", "mean", "min", "max", "last", "quantile", "time_weighted_mean",
            "share_above")
PARAMETER_OF = {"quantile": "q", "share_above": "threshold"}  # reducer -> its required key
MAX_EXTRA_LABELS = 8
MAX_ENGINES = 256  # [run] engines: more threads than this is a typo, not a machine
# fmt: on
# Set through kafka.bootstrap_servers / kafka.group_id, never as client settings.
RESERVED_CLIENT_SETTINGS = {
    "bootstrap.servers": "bootstrap_servers",
    "group.id": "group_id",
    "group.instance.id": "instance_id",
}
ENV_PREFIX = "GPULEDGER_"

_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
AGGREGATION_NAME = re.compile(r"[a-z0-9_]{1,64}")
_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_METRIC = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


# --- sections ------------------------------------------------------------------------------


def _window_sizes(value: object, path: str) -> tuple[int, ...]:
    sizes = [integer(x, f"{path}[{i}]", ge=1) for i, x in enumerate(array(value, path))]
    if not sizes:
        fail(path, "must list at least one window size")
    if len(set(sizes)) != len(sizes):
        fail(path, f"lists a window size twice: {sizes}")
    return tuple(sizes)


def _hopping(value: object, path: str) -> tuple[HoppingWindow, ...]:
    windows = []
    for i, item in enumerate(array(value, path)):
        p = f"{path}[{i}]"
        t = table(item, p)
        check_keys(t, p, ("size_s", "slide_s"))
        size = integer(require(t, p, "size_s"), f"{p}.size_s", ge=1)
        slide = integer(require(t, p, "slide_s"), f"{p}.slide_s", ge=1, le=size)
        windows.append(HoppingWindow(size_s=size, slide_s=slide))
    if len(set(windows)) != len(windows):
        fail(path, "lists the same hopping window twice")
    return tuple(windows)


def _topic(value: object, path: str, *, optional: bool = False) -> str:
    if optional and value == "":
        return ""
    return matching(value, path, _TOPIC, "a Kafka topic name ([A-Za-z0-9._-], 1-249 chars)")


def _instance_id(value: object, path: str) -> str:
    if value == "":
        return ""  # dynamic membership
    # Kafka's own rule for group.instance.id (as for topic names).
    return matching(value, path, _TOPIC, "a group.instance.id ([A-Za-z0-9._-], 1-249 chars)")


def _client(value: object, path: str) -> Mapping[str, ClientValue]:
    t = table(value, path)
    for name, setting in t.items():
        if name in RESERVED_CLIENT_SETTINGS:
            fail(join(path, name), f"set kafka.{RESERVED_CLIENT_SETTINGS[name]} instead")
        if not name or not isinstance(setting, (str, int, bool)):  # never show the value
            fail(join(path, name), "must be a string, integer or boolean with a non-empty name")
    return frozen_map(t)


_READERS: dict[str, dict[str, Reader]] = {
    "engine": {
        "window_s": _window_sizes,
        "hopping": _hopping,
        "allowed_lateness_s": partial(number, ge=0),
        "idle_timeout_s": partial(number, gt=0),
        "sample_interval_s": partial(number, gt=0),
        "max_message_bytes": partial(integer, ge=1),
        "max_future_s": partial(number, gt=0),
        "dead_letter_max_bytes": partial(integer, ge=0),
    },
    "idle": {"threshold": partial(number, ge=0, le=1), "ttl_s": partial(number, gt=0)},
    "kafka": {
        "bootstrap_servers": string,
        "group_id": string,
        "instance_id": _instance_id,
        "client": _client,
        "secrets_file": partial(string, allow_empty=True),
        "consumer": partial(choice, choices=("native", "confluent-kafka")),
    },
    "topics": {
        "telemetry": _topic,
        "telemetry_format": partial(choice, choices=("prom_json", "wide_json")),
        "latency": _topic,
        "dead_letter": partial(_topic, optional=True),
    },
    "output": {"dir": string, "format": partial(choice, choices=("arrow", "parquet"))},
    "observability": {
        "metrics_port": partial(integer, ge=0, le=65535),
        "metrics_bind": string,
        "web": read_web_config,
        "log_format": partial(choice, choices=("human", "json")),
        "status_interval_s": partial(number, gt=0),
    },
    "run": {
        "batch_messages": partial(integer, ge=1, le=1_000_000),
        "flush_interval_s": partial(number, gt=0),
        "stop_timeout_s": partial(number, gt=0),
        "engines": partial(integer, ge=0, le=MAX_ENGINES),
    },
}
# Sections that are one flat record; their keys can be set from the environment.
_FLAT: dict[str, type] = {
    "engine": EngineConfig,
    "idle": IdleConfig,
    "kafka": KafkaConfig,
    "topics": TopicsConfig,
    "output": OutputConfig,
    "observability": ObservabilityConfig,
    "run": RunConfig,
}
SECTIONS = (*_FLAT, "units", "prices", "teams", "services", "aggregations", "billing")


def _flat(root: Mapping[str, Any], name: str) -> dict[str, Any]:
    """Keyword arguments for a flat section's record, from the keys the section sets."""
    t = table(root.get(name, {}), name)
    check_keys(t, name, _READERS[name])
    return {key: _READERS[name][key](value, join(name, key)) for key, value in t.items()}


def _map(root: Mapping[str, Any], name: str, read: Reader) -> dict[str, Any]:
    """A section mapping free-form names (fields, models, namespaces) to values."""
    t = table(root.get(name, {}), name)
    for key in t:
        if not key:
            fail(join(name, key), "the name must not be empty")
    return {key: read(value, join(name, key)) for key, value in t.items()}


def _slo(value: object, path: str, base: Slo) -> Slo:
    t = table(value, path)
    check_keys(t, path, ("slo_latency_ms", "slo_target"))
    latency, target = t.get("slo_latency_ms"), t.get("slo_target")
    if latency is not None:
        base = replace(base, slo_latency_ms=number(latency, f"{path}.slo_latency_ms", gt=0))
    if target is not None:
        base = replace(base, slo_target=number(target, f"{path}.slo_target", gt=0, lt=1))
    return base


def _pod_rule(value: object, path: str) -> PodRule:
    t = table(value, path)
    check_keys(t, path, ("namespace", "pattern", "service"))
    namespace = t.get("namespace")
    return PodRule(
        pattern=string(require(t, path, "pattern"), f"{path}.pattern"),
        service=string(require(t, path, "service"), f"{path}.service"),
        namespace=None if namespace is None else string(namespace, f"{path}.namespace"),
    )


def _services(root: Mapping[str, Any]) -> ServicesConfig:
    t = table(root.get("services", {}), "services")
    default = _slo(t.get("default", {}), "services.default", Slo())
    slos = {}  # a service's unset keys come from services.default
    for name, value in t.items():
        if not name:
            fail(join("services", name), "the service name must not be empty")
        if name not in ("default", "pods"):
            slos[name] = _slo(value, join("services", name), default)
    rules = array(t.get("pods", []), "services.pods")
    pods = tuple(_pod_rule(rule, f"services.pods[{i}]") for i, rule in enumerate(rules))
    return ServicesConfig(default=default, slos=frozen_map(slos), pods=pods)


def _group_by(value: object, path: str) -> tuple[str, ...]:
    what = "a label name ([A-Za-z_][A-Za-z0-9_]*)"
    labels = [matching(x, f"{path}[{i}]", _LABEL, what) for i, x in enumerate(array(value, path))]
    if not labels:
        fail(path, "must name at least one label")
    if len(set(labels)) != len(labels):
        fail(path, f"names a label twice: {labels}")
    extra = [label for label in labels if label not in STANDARD_LABELS]
    if len(extra) > MAX_EXTRA_LABELS:
        fail(path, f"allows at most {MAX_EXTRA_LABELS} non-standard labels, got {len(extra)}")
    return tuple(labels)


def _aggregation(value: object, path: str) -> Aggregation:
    t = table(value, path)
    check_keys(t, path, ("name", "field", "reducer", "q", "threshold", "group_by"))
    name = matching(
        require(t, path, "name"), f"{path}.name", AGGREGATION_NAME, "[a-z0-9_]+, <= 64 chars"
    )
    if name in BUILTIN_TABLES:
        fail(f"{path}.name", f"{name!r} is the name of a built-in table")
    metric = matching(require(t, path, "field"), f"{path}.field", _METRIC, "a metric name")
    reducer = choice(require(t, path, "reducer"), f"{path}.reducer", REDUCERS)
    for owner, key in PARAMETER_OF.items():
        if reducer == owner and key not in t:
            fail(f"{path}.{key}", f"required for reducer {reducer!r}")
        if reducer != owner and key in t:
            fail(f"{path}.{key}", f"only allowed with reducer {owner!r}, not {reducer!r}")
    return Aggregation(
        name=name,
        field=metric,
        reducer=reducer,
        group_by=_group_by(t["group_by"], f"{path}.group_by")
        if "group_by" in t
        else DEFAULT_GROUP_BY,
        q=number(t["q"], f"{path}.q", gt=0, lt=1) if "q" in t else None,
        threshold=number(t["threshold"], f"{path}.threshold") if "threshold" in t else None,
    )


def _aggregations(root: Mapping[str, Any]) -> tuple[Aggregation, ...]:
    items = array(root.get("aggregations", []), "aggregations")
    aggs = tuple(_aggregation(item, f"aggregations[{i}]") for i, item in enumerate(items))
    first: dict[str, int] = {}
    for i, agg in enumerate(aggs):
        if agg.name in first:
            fail(
                f"aggregations[{i}].name",
                f"{agg.name!r} is already aggregations[{first[agg.name]}]",
            )
        first[agg.name] = i
    return aggs


def _check_sections(root: Mapping[str, Any]) -> None:
    for key in root:
        if key not in SECTIONS:
            hint = did_you_mean(key, SECTIONS)
            owners = [s for s, readers in _READERS.items() if key in readers]
            if owners and not hint:  # e.g. `window_s = [60]` above the [engine] header
                hint = f" (did you mean {owners[0]}.{key}?)"
            fail(join("", key), "unknown section" + hint)


def _secrets(file: str) -> dict[str, str]:
    """KEY=VALUE lines (blank lines and # comments skipped). Values never appear in errors."""
    path = "kafka.secrets_file"
    try:
        text = Path(file).read_text(encoding="utf-8")
    except OSError as exc:
        fail(path, f"cannot read {file!r}: {exc.strerror or type(exc).__name__}")
    except UnicodeDecodeError:
        fail(path, f"cannot read {file!r}: not UTF-8")
    secrets: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.strip().startswith("#"):
            continue
        name, sep, value = line.partition("=")
        name = name.strip()
        where = f"{file}, line {lineno}"
        if not sep or not name:
            fail(path, f"{where}: expected KEY=VALUE")
        if name in RESERVED_CLIENT_SETTINGS:
            fail(path, f"{where}: set kafka.{RESERVED_CLIENT_SETTINGS[name]} instead of {name}")
        if name in secrets:
            fail(path, f"{where}: {name!r} is set twice")
        secrets[name] = value.strip()
    return secrets


def sections_of(
    data: Mapping[str, Any], client_env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """`Config`'s keyword arguments from TOML-shaped data, validated. `client_env` (client
    settings from the environment) overrides the secrets file, which overrides [kafka.client]."""
    root = table(data, "config")
    _check_sections(root)
    flat = {name: _flat(root, name) for name in _READERS}
    kafka = KafkaConfig(**flat["kafka"])
    secrets = _secrets(kafka.secrets_file) if kafka.secrets_file else {}
    kafka = replace(kafka, client=frozen_map({**kafka.client, **secrets, **(client_env or {})}))
    return dict(
        engine=EngineConfig(**flat["engine"]),
        units=frozen_map(_map(root, "units", partial(choice, choices=UNITS))),
        prices=frozen_map({"default": 2.0} | _map(root, "prices", partial(number, ge=0))),
        teams=frozen_map(_map(root, "teams", string)),
        services=_services(root),
        aggregations=_aggregations(root),
        idle=IdleConfig(**flat["idle"]),
        kafka=kafka,
        topics=TopicsConfig(**flat["topics"]),
        output=OutputConfig(**flat["output"]),
        observability=ObservabilityConfig(**flat["observability"]),
        run=RunConfig(**flat["run"]),
        billing=frozen_map(table(root.get("billing", {}), "billing")),
    )
