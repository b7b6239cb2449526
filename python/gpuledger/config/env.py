"""The configuration's layers: built-in defaults < TOML file < environment
(``GPULEDGER_<SECTION>__<KEY>``), merged and checked into a `Config`; a problem raises
ConfigError naming the key, variable or file at fault."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, get_type_hints

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 needs the `tomli` package
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

from gpuledger.config.model import Config
from gpuledger.config.readers import describe, did_you_mean, fail, join
from gpuledger.config.sections import HoppingWindow
from gpuledger.config.validate import (
    _FLAT,
    _READERS,
    ENV_PREFIX,
    RESERVED_CLIENT_SETTINGS,
    SECTIONS,
    sections_of,
)
from gpuledger.errors import ConfigError

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
        return Config(**sections_of(merged, client_env=layer.client))
    except ConfigError as exc:  # name the variable when its value is at fault
        for key, var in layer.origins.items():
            if exc.key == key or exc.key.startswith((key + "[", key + ".")):
                raise ConfigError(var, str(exc)) from None
        raise
