"""Validation behind `gpuledger.config`: raw TOML data and environment variables -> Config.

Every reader takes a raw value and its dotted key path, such as ``engine.window_s[1]``, and
returns the value as the expected type or raises ConfigError whose message starts with that
path. Values of secret settings never appear in a message.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import sys
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, NoReturn, get_type_hints

from gpuledger.config import (
    DEFAULT_GROUP_BY,
    Aggregation,
    ClientValue,
    Config,
    ConfigError,
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

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 needs the `tomli` package
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

UNITS = ("ratio", "percent", "MiB", "bytes", "W", "mJ", "J", "raw")
# fmt: off
REDUCERS = ("count", "sum", "mean", "min", "max", "last", "quantile", "time_weighted_mean",
            "share_above")
PARAMETER_OF = {"quantile": "q", "share_above": "threshold"}  # reducer -> its required key
STANDARD_LABELS = frozenset(("UUID", "gpu", "GPU_I_ID", "Hostname", "hostname", "modelName",
                             "namespace", "pod", "container", "team"))
MAX_EXTRA_LABELS = 8
BUILTIN_TABLES = frozenset(("gpu_windows", "pool_windows", "latency_windows",
                            "service_cost_windows", "idle_streaks", "late_events", "dead_letters"))
# fmt: on
# Set through kafka.bootstrap_servers / kafka.group_id, never as client settings.
RESERVED_CLIENT_SETTINGS = {"bootstrap.servers": "bootstrap_servers", "group.id": "group_id"}
ENV_PREFIX = "GPULEDGER_"

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_AGG_NAME = re.compile(r"[a-z0-9_]{1,64}")
_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_METRIC = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


# --- messages ------------------------------------------------------------------------------


def fail(path: str, problem: str) -> NoReturn:
    raise ConfigError(path, problem)


def join(parent: str, key: str) -> str:
    """``join("prices", "NVIDIA L40S")`` is ``prices."NVIDIA L40S"`` (TOML quoting)."""
    if not _BARE_KEY.fullmatch(key):
        key = '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{parent}.{key}" if parent else key


def did_you_mean(word: str, options: Collection[str]) -> str:
    close = difflib.get_close_matches(word, sorted(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def describe(value: object) -> str:
    """A short rendering of a bad value for a message (never called on secret values)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "a table"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- generic readers -----------------------------------------------------------------------

Reader = Callable[[object, str], Any]


def table(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        fail(path, f"must be a table, got {describe(value)}")
    return value


def check_keys(t: Mapping[str, object], path: str, allowed: Collection[str]) -> None:
    for key in t:
        if key not in allowed:
            fail(join(path, key), "unknown key" + did_you_mean(key, allowed))


def require(t: Mapping[str, object], path: str, key: str) -> object:
    if key not in t:
        fail(join(path, key), "required")
    return t[key]


def array(value: object, path: str) -> list[object]:
    if not isinstance(value, (list, tuple)):
        fail(path, f"must be a list, got {describe(value)}")
    return list(value)


def _bounds(
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
) -> str:
    pairs = ((">", gt), (">=", ge), ("<", lt), ("<=", le))
    return " and ".join(f"{op} {bound:g}" for op, bound in pairs if bound is not None)


def integer(value: object, path: str, *, ge: int, le: int | None = None) -> int:
    """An int (not a bool, not a float) within the bounds."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < ge
        or (le is not None and value > le)
    ):
        fail(path, f"must be an integer {_bounds(ge=ge, le=le)}, got {describe(value)}")
    return value


def number(
    value: object,
    path: str,
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
) -> float:
    """A finite int or float within the bounds (booleans are not numbers)."""
    x = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if (
        x is None
        or not math.isfinite(x)
        or (gt is not None and x <= gt)
        or (ge is not None and x < ge)
        or (lt is not None and x >= lt)
        or (le is not None and x > le)
    ):
        wanted = f"a number {_bounds(gt, ge, lt, le)}".rstrip()
        fail(path, f"must be {wanted}, got {describe(value)}")
    return x


def string(value: object, path: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        fail(path, f"must be a string, got {describe(value)}")
    if not value and not allow_empty:
        fail(path, "must not be empty")
    return value


def choice(value: object, path: str, choices: Collection[str]) -> str:
    s = string(value, path, allow_empty=True)
    if s not in choices:
        hint = did_you_mean(s, choices)
        fail(path, f"must be one of {', '.join(choices)}, got {describe(s)}{hint}")
    return s


def matching(value: object, path: str, pattern: re.Pattern[str], what: str) -> str:
    s = string(value, path, allow_empty=True)
    if not pattern.fullmatch(s):
        fail(path, f"must be {what}, got {describe(s)}")
    return s


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
        "client": _client,
        "secrets_file": partial(string, allow_empty=True),
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
        "log_format": partial(choice, choices=("human", "json")),
        "status_interval_s": partial(number, gt=0),
    },
    "run": {
        "batch_messages": partial(integer, ge=1, le=1_000_000),
        "flush_interval_s": partial(number, gt=0),
        "stop_timeout_s": partial(number, gt=0),
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
    name = matching(require(t, path, "name"), f"{path}.name", _AGG_NAME, "[a-z0-9_]+, <= 64 chars")
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


def build(data: Mapping[str, Any], client_env: Mapping[str, str] | None = None) -> Config:
    """Validates TOML-shaped data. `client_env` (client settings from the environment)
    overrides the secrets file, which overrides [kafka.client]."""
    root = table(data, "config")
    _check_sections(root)
    flat = {name: _flat(root, name) for name in _READERS}
    kafka = KafkaConfig(**flat["kafka"])
    secrets = _secrets(kafka.secrets_file) if kafka.secrets_file else {}
    kafka = replace(kafka, client=frozen_map({**kafka.client, **secrets, **(client_env or {})}))
    return Config(
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


# --- environment ---------------------------------------------------------------------------

_KINDS: dict[object, str] = {
    int: "int",
    float: "float",
    str: "str",
    bool: "bool",
    tuple[int, ...]: "int_list",
    tuple[HoppingWindow, ...]: "hopping",
}
# section -> key -> how a variable's text is parsed; keys not listed are file-only
_ENV_KINDS = {
    section: {k: _KINDS[hint] for k, hint in get_type_hints(cls).items() if hint in _KINDS}
    for section, cls in _FLAT.items()
}
_EXPECTED = {
    "int": "an integer",
    "float": "a number",
    "bool": "true/false, 1/0 or yes/no",
    "int_list": "a comma-separated list of integers, e.g. 60,3600",
    "hopping": "a comma-separated list of SIZE:SLIDE seconds, e.g. 3600:300",
}


def parse_env(var: str, text: str, kind: str) -> object:
    """The text of `var` as `kind`. Ranges are checked later, as for the file's values."""
    if kind == "str":
        return text
    text = text.strip()
    items = [item.strip() for item in text.split(",")] if text else []
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "bool" and text.lower() in ("true", "1", "yes", "false", "0", "no"):
            return text.lower() in ("true", "1", "yes")
        if kind == "int_list":
            return [int(item) for item in items]
        if kind == "hopping":
            pairs = [item.split(":") for item in items]
            return [{"size_s": int(size), "slide_s": int(slide)} for size, slide in pairs]
    except ValueError:
        pass
    fail(var, f"expected {_EXPECTED[kind]}, got {describe(text)}")


@dataclass
class _EnvLayer:
    values: dict[tuple[str, str], object] = field(default_factory=dict)  # (section, key) -> value
    client: dict[str, str] = field(default_factory=dict)  # librdkafka setting -> value
    origins: dict[str, str] = field(default_factory=dict)  # dotted key -> variable

    def set(self, var: str, section: str, key: str, value: object) -> None:
        path = join(section, key)
        if path in self.origins:
            fail(var, f"sets {path}, as {self.origins[path]} does")
        self.origins[path] = var
        if section == "kafka.client":
            self.client[key] = str(value)
        else:
            self.values[section, key] = value


def _env_setting(var: str, text: str) -> tuple[str, str, object]:
    """(section, key, value) that ``GPULEDGER_<SECTION>__<KEY>`` sets."""
    section, *keys = var[len(ENV_PREFIX) :].split("__")
    section = section.lower()
    if section == "kafka" and len(keys) == 2 and keys[0].lower() == "client" and keys[1]:
        name = keys[1].lower().replace("_", ".")  # SASL_PASSWORD -> sasl.password
        if name in RESERVED_CLIENT_SETTINGS:
            fail(var, f"use {ENV_PREFIX}KAFKA__{RESERVED_CLIENT_SETTINGS[name].upper()} instead")
        return "kafka.client", name, text
    if section not in SECTIONS:
        fail(var, f"unknown section {section!r}" + did_you_mean(section, SECTIONS))
    if len(keys) != 1 or not keys[0]:
        fail(var, f"expected {ENV_PREFIX}<SECTION>__<KEY>")
    key = keys[0]
    if section == "units":
        return "units", key.upper(), text
    if section == "prices" and key.lower() == "default":
        return "prices", "default", parse_env(var, text, "float")
    if section == "prices":
        fail(var, "of [prices], only the default can be set from the environment")
    if section not in _FLAT:
        fail(var, f"[{section}] can only be set in a config file")
    key = key.lower()
    kind = _ENV_KINDS[section].get(key)
    if kind is None and key == "client":
        fail(var, f"set client settings one at a time: {ENV_PREFIX}KAFKA__CLIENT__<NAME>")
    if kind is None:
        fail(var, f"unknown key {key!r} in [{section}]" + did_you_mean(key, _READERS[section]))
    return section, key, parse_env(var, text, kind)


def _env_layer(env: Mapping[str, str]) -> _EnvLayer:
    layer = _EnvLayer()
    for var in sorted(env):
        if var.startswith(ENV_PREFIX) and "__" in var:
            layer.set(var, *_env_setting(var, env[var]))
    plain = "KAFKA_BOOTSTRAP_SERVERS"
    if "kafka.bootstrap_servers" not in layer.origins and env.get(plain):
        layer.set(plain, "kafka", "bootstrap_servers", env[plain])
    return layer


def _read_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            data: dict[str, Any] = tomllib.load(f)
    except OSError as exc:
        fail(name, f"cannot read config file: {exc.strerror or type(exc).__name__}")
    except tomllib.TOMLDecodeError as exc:
        fail(name, f"invalid TOML: {exc}")
    return data


def load(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Config:
    layer = _env_layer(env)
    raw = {} if path is None else _read_file(path)
    merged = {k: dict(x) if isinstance(x, Mapping) else x for k, x in raw.items()}
    for (section, key), value in layer.values.items():
        target = merged.setdefault(section, {})
        if not isinstance(target, dict):
            fail(section, f"must be a table, got {describe(target)}")
        target[key] = value
    try:
        return build(merged, client_env=layer.client)
    except ConfigError as exc:  # name the variable when its value is at fault
        for key, var in layer.origins.items():
            if exc.key == key or exc.key.startswith((key + "[", key + ".")):
                raise ConfigError(var, str(exc)) from None
        raise
