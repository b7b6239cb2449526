"""Configuration: the typed, immutable `Config` shared by the library, replay and the daemon,
loaded from built-in defaults < a TOML file < ``GPULEDGER_<SECTION>__<KEY>`` variables. Here:
the section records (`sections`), `Config` itself (`model`), the value readers (`readers`), the
section checks (`validate`) and the layers (`env`). Every problem raises
`gpuledger.errors.ConfigError` naming the exact key, variable or file; docs/configuration.md
describes every key. Importable without the compiled engine.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from gpuledger.config.env import load
from gpuledger.config.model import Config
from gpuledger.config.sections import (
    DEFAULT_GROUP_BY,
    MASK,
    SECRET_MARKERS,
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
    masked,
)
from gpuledger.errors import ConfigError

__all__ = [
    "DEFAULT_GROUP_BY",
    "MASK",
    "SECRET_MARKERS",
    "Aggregation",
    "ClientValue",
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
    "frozen_map",
    "load_config",
    "masked",
]


def load_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Defaults, overridden by the TOML file at `path` (when given), overridden by `env`
    (default: `os.environ`). Raises ConfigError naming the key or variable at fault."""
    return load(path, os.environ if env is None else env)
