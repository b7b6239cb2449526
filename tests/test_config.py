"""gpuledger.config: defaults, the TOML file, environment overrides and fail-fast errors."""

from __future__ import annotations

import dataclasses
import pickle
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gpuledger.config import (
    Aggregation,
    Config,
    ConfigError,
    HoppingWindow,
    PodRule,
    Slo,
    load_config,
)
from gpuledger.config import env as config_env

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "configuration.md"
SECRET = "hunter2-do-not-print"

EXAMPLE = """
[engine]
window_s = [60, 3600]
hopping = [{size_s = 3600, slide_s = 300}]
allowed_lateness_s = 10
idle_timeout_s = 15.5
sample_interval_s = 0.5
max_message_bytes = 65536
max_future_s = 3600
dead_letter_max_bytes = 512

[units]
DCGM_FI_DEV_GPU_UTIL = "ratio"
DCGM_FI_DEV_FB_USED = "bytes"

[prices]
default = 2.50
"NVIDIA H100 80GB HBM3" = 4.50

[teams]
"team-search" = "search"

[services]
default = { slo_latency_ms = 250.0, slo_target = 0.9 }
"chat-llm" = { slo_latency_ms = 300.0, slo_target = 0.99 }
"ranker" = { slo_target = 0.99 }
"embed" = { slo_latency_ms = 50.0 }
[[services.pods]]
namespace = "team-chat"
pattern = "vllm-chat-*"
service = "chat-llm"
[[services.pods]]
pattern = "ranker-*"
service = "ranker"

[[aggregations]]
name = "tensor_active_by_host"
field = "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE"
reducer = "quantile"
q = 0.95
group_by = ["Hostname", "namespace"]

[[aggregations]]
name = "hot_gpus"
field = "DCGM_FI_DEV_GPU_TEMP"
reducer = "share_above"
threshold = 80

[idle]
threshold = 0.1
ttl_s = 7200

[kafka]
bootstrap_servers = "broker-1:9093,broker-2:9093"
group_id = "gpuledger-prod"

[kafka.client]
"security.protocol" = "SASL_SSL"
"sasl.mechanism" = "SCRAM-SHA-512"
"fetch.wait.max.ms" = 100
"enable.partition.eof" = false

[topics]
telemetry = "dcgm"
telemetry_format = "wide_json"
latency = "latency"
dead_letter = "gpuledger-dlq"

[output]
dir = "/var/lib/gpuledger"
format = "parquet"

[observability]
metrics_port = 0
log_format = "json"
status_interval_s = 5
"""


def write(tmp_path: Path, text: str, name: str = "gpuledger.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        Config.from_dict(data)
    return str(info.value)


def env_error_of(env: dict[str, str], path: Path | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env)
    return str(info.value)


# --- defaults and the example file ---------------------------------------------------------


def test_defaults() -> None:
    cfg = Config()
    assert load_config(env={}) == cfg == Config.from_dict({})
    assert cfg.engine.window_s == (60,) and cfg.engine.hopping == ()
    assert (cfg.engine.allowed_lateness_s, cfg.engine.idle_timeout_s) == (30.0, 30.0)
    assert cfg.engine.sample_interval_s == 1.0 and cfg.engine.max_message_bytes == 1_048_576
    assert (cfg.engine.max_future_s, cfg.engine.dead_letter_max_bytes) == (86_400.0, 4096)
    assert dict(cfg.units) == {} and dict(cfg.prices) == {"default": 2.0}
    assert cfg.price_of("NVIDIA L40S") == 2.0 and cfg.team_of("research") == "research"
    assert cfg.services.slo_of("any") == Slo(slo_latency_ms=200.0, slo_target=0.95)
    assert cfg.services.service_of_pod("ns", "pod") is None and cfg.aggregations == ()
    assert (cfg.idle.threshold, cfg.idle.ttl_s) == (0.05, 21_600.0)
    assert cfg.kafka.client_settings() == {
        "bootstrap.servers": "127.0.0.1:9092",
        "group.id": "gpuledger",
    }
    assert (cfg.topics.telemetry, cfg.topics.telemetry_format) == ("gpu-telemetry", "prom_json")
    assert (cfg.topics.latency, cfg.topics.dead_letter) == ("request-latency", "")
    assert (cfg.output.dir, cfg.output.format) == ("gpuledger-out", "arrow")
    assert cfg.observability.metrics_port == 9464 and cfg.observability.log_format == "human"
    assert cfg.observability.status_interval_s == 30.0


def test_full_example_file(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, EXAMPLE), env={})
    e = cfg.engine
    assert e.window_s == (60, 3600)
    assert e.hopping == (HoppingWindow(size_s=3600, slide_s=300),)
    assert (e.allowed_lateness_s, e.idle_timeout_s, e.sample_interval_s) == (10.0, 15.5, 0.5)
    assert isinstance(e.allowed_lateness_s, float)
    assert (e.max_message_bytes, e.max_future_s, e.dead_letter_max_bytes) == (65536, 3600.0, 512)
    assert dict(cfg.units) == {"DCGM_FI_DEV_GPU_UTIL": "ratio", "DCGM_FI_DEV_FB_USED": "bytes"}
    assert cfg.price_of("NVIDIA H100 80GB HBM3") == 4.5 and cfg.price_of("NVIDIA L4") == 2.5
    assert cfg.team_of("team-search") == "search" and cfg.team_of("other") == "other"

    s = cfg.services
    assert s.default == Slo(slo_latency_ms=250.0, slo_target=0.9)
    assert s.slo_of("chat-llm") == Slo(slo_latency_ms=300.0, slo_target=0.99)
    # Keys a service leaves out come from services.default, not the built-in defaults.
    assert s.slo_of("ranker") == Slo(slo_latency_ms=250.0, slo_target=0.99)
    assert s.slo_of("embed") == Slo(slo_latency_ms=50.0, slo_target=0.9)
    assert s.slo_of("unknown") == s.default
    assert s.pods[0] == PodRule(namespace="team-chat", pattern="vllm-chat-*", service="chat-llm")
    assert s.service_of_pod("team-chat", "vllm-chat-5d8c-0") == "chat-llm"
    assert s.service_of_pod("other-ns", "vllm-chat-5d8c-0") is None  # namespace must match
    assert s.service_of_pod("any", "ranker-7f9c-2") == "ranker"

    assert cfg.aggregations == (
        Aggregation(
            name="tensor_active_by_host",
            field="DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
            reducer="quantile",
            q=0.95,
            group_by=("Hostname", "namespace"),
        ),
        Aggregation(
            name="hot_gpus",
            field="DCGM_FI_DEV_GPU_TEMP",
            reducer="share_above",
            threshold=80.0,
            group_by=("UUID", "GPU_I_ID"),
        ),
    )
    assert (cfg.idle.threshold, cfg.idle.ttl_s) == (0.1, 7200.0)
    assert cfg.kafka.client_settings() == {
        "bootstrap.servers": "broker-1:9093,broker-2:9093",
        "group.id": "gpuledger-prod",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "fetch.wait.max.ms": 100,
        "enable.partition.eof": False,
    }
    t = cfg.topics
    assert (t.telemetry, t.telemetry_format, t.latency, t.dead_letter) == (
        "dcgm",
        "wide_json",
        "latency",
        "gpuledger-dlq",
    )
    assert (cfg.output.dir, cfg.output.format) == ("/var/lib/gpuledger", "parquet")
    o = cfg.observability
    assert (o.metrics_port, o.log_format, o.status_interval_s) == (0, "json", 5.0)


def test_to_dict_round_trips(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, EXAMPLE), env={})
    assert Config.from_dict(cfg.to_dict(reveal_secrets=True)) == cfg
    assert Config.from_dict(Config().to_dict()) == Config()


def test_to_engine_kwargs(tmp_path: Path) -> None:
    kwargs = load_config(write(tmp_path, EXAMPLE), env={}).to_engine_kwargs()
    assert kwargs == {
        "window_s": [60, 3600],
        "hopping": [(3600, 300)],
        "allowed_lateness_s": 10.0,
        "sample_interval_s": 0.5,
        "max_message_bytes": 65536,
        "max_future_s": 3600.0,
        "dead_letter_max_bytes": 512,
        "units": {"DCGM_FI_DEV_GPU_UTIL": "ratio", "DCGM_FI_DEV_FB_USED": "bytes"},
        "prices": {"NVIDIA H100 80GB HBM3": 4.5},
        "default_price": 2.5,
        "teams": {"team-search": "search"},
        "aggregations": [
            {
                "name": "tensor_active_by_host",
                "field": "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
                "reducer": "quantile",
                "q": 0.95,
                "threshold": None,
                "group_by": ["Hostname", "namespace"],
            },
            {
                "name": "hot_gpus",
                "field": "DCGM_FI_DEV_GPU_TEMP",
                "reducer": "share_above",
                "q": None,
                "threshold": 80.0,
                "group_by": ["UUID", "GPU_I_ID"],
            },
        ],
        "idle_threshold": 0.1,
        "idle_ttl_s": 7200.0,
    }


def test_config_is_immutable(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, EXAMPLE), env={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.engine.allowed_lateness_s = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.prices["default"] = 0.0  # type: ignore[index]
    with pytest.raises(TypeError):
        cfg.kafka.client["sasl.password"] = "x"  # type: ignore[index]


# --- environment ---------------------------------------------------------------------------


def test_env_overrides_file_which_overrides_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "[engine]\nallowed_lateness_s = 10\nsample_interval_s = 2\n")
    cfg = load_config(path, env={"GPULEDGER_ENGINE__ALLOWED_LATENESS_S": "5"})
    assert cfg.engine.allowed_lateness_s == 5.0  # env beats file
    assert cfg.engine.sample_interval_s == 2.0  # file beats default
    assert cfg.engine.idle_timeout_s == 30.0  # default


def test_env_values_parse_as_the_key_expects() -> None:
    cfg = load_config(
        env={
            "GPULEDGER_ENGINE__WINDOW_S": "60, 3600",
            "GPULEDGER_ENGINE__HOPPING": "3600:300,86400:3600",
            "GPULEDGER_ENGINE__MAX_MESSAGE_BYTES": "2048",
            "GPULEDGER_engine__idle_timeout_s": "2.5",  # section and key are case-insensitive
            "GPULEDGER_KAFKA__BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
            "GPULEDGER_TOPICS__DEAD_LETTER": "",
            "GPULEDGER_units__dcgm_fi_dev_gpu_util": "ratio",  # field names are upper-cased
            "GPULEDGER_PRICES__DEFAULT": "3.25",
            "GPULEDGER_OBSERVABILITY__METRICS_PORT": "0",
        }
    )
    assert cfg.engine.window_s == (60, 3600)
    assert cfg.engine.hopping == (
        HoppingWindow(size_s=3600, slide_s=300),
        HoppingWindow(size_s=86400, slide_s=3600),
    )
    assert cfg.engine.max_message_bytes == 2048 and cfg.engine.idle_timeout_s == 2.5
    assert cfg.kafka.bootstrap_servers == "k1:9092,k2:9092" and cfg.topics.dead_letter == ""
    assert dict(cfg.units) == {"DCGM_FI_DEV_GPU_UTIL": "ratio"}
    assert cfg.price_of("anything") == 3.25 and cfg.observability.metrics_port == 0


def test_env_without_double_underscore_or_prefix_is_ignored() -> None:
    env = {
        "GPULEDGER_KAFKA_PYTHON": "/usr/bin/python3",
        "GPULEDGER_CONFIG": "/nowhere.toml",
        "ENGINE__WINDOW_S": "nonsense",
        "gpuledger_engine__window_s": "nonsense",
    }
    assert load_config(env=env) == Config()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("YES", True), ("1", True), ("false", False), ("no", False), ("0", False)],
)
def test_env_bool_values(text: str, expected: bool) -> None:
    assert config_env.parse_env("GPULEDGER_X__Y", text, "bool") is expected


@pytest.mark.parametrize(
    ("env", "start", "detail"),
    [
        (
            {"GPULEDGER_ENGINE__ALLOWED_LATENESS": "10"},
            "GPULEDGER_ENGINE__ALLOWED_LATENESS: ",
            "did you mean 'allowed_lateness_s'?",
        ),
        ({"GPULEDGER_ENGNE__WINDOW_S": "60"}, "GPULEDGER_ENGNE__WINDOW_S: ", "'engine'"),
        ({"GPULEDGER_ENGINE__WINDOW_S": "60,x"}, "GPULEDGER_ENGINE__WINDOW_S: ", "integers"),
        (
            {"GPULEDGER_ENGINE__MAX_MESSAGE_BYTES": "1.5"},
            "GPULEDGER_ENGINE__MAX_MESSAGE_BYTES: ",
            "",
        ),
        (
            {"GPULEDGER_ENGINE__ALLOWED_LATENESS_S": "soon"},
            "GPULEDGER_ENGINE__ALLOWED_LATENESS_S: ",
            "",
        ),
        ({"GPULEDGER_ENGINE__HOPPING": "3600/300"}, "GPULEDGER_ENGINE__HOPPING: ", "SIZE:SLIDE"),
        (
            {"GPULEDGER_ENGINE__ALLOWED_LATENESS_S": "-1"},
            "GPULEDGER_ENGINE__ALLOWED_LATENESS_S: engine.allowed_lateness_s: ",
            ">= 0, got -1",
        ),
        (
            {"GPULEDGER_ENGINE__WINDOW_S": "60,0"},
            "GPULEDGER_ENGINE__WINDOW_S: engine.window_s[1]: ",
            "got 0",
        ),
        ({"GPULEDGER_ENGINE__WINDOW_S": ""}, "GPULEDGER_ENGINE__WINDOW_S: engine.window_s: ", ""),
        ({"GPULEDGER_ENGINE__MAX_FUTURE_S": "nan"}, "GPULEDGER_ENGINE__MAX_FUTURE_S: ", "nan"),
        (
            {"GPULEDGER_UNITS__DCGM_FI_DEV_GPU_UTIL": "pct"},
            "GPULEDGER_UNITS__DCGM_FI_DEV_GPU_UTIL: ",
            "",
        ),
        ({"GPULEDGER_TEAMS__RESEARCH": "r"}, "GPULEDGER_TEAMS__RESEARCH: ", "config file"),
        ({"GPULEDGER_PRICES__A100": "1"}, "GPULEDGER_PRICES__A100: ", "only the default"),
        ({"GPULEDGER_KAFKA__CLIENT": "x"}, "GPULEDGER_KAFKA__CLIENT: ", "one at a time"),
        (
            {"GPULEDGER_KAFKA__CLIENT__BOOTSTRAP_SERVERS": "k:1"},
            "GPULEDGER_KAFKA__CLIENT__BOOTSTRAP_SERVERS: ",
            "GPULEDGER_KAFKA__BOOTSTRAP_SERVERS",
        ),
        ({"GPULEDGER_ENGINE__": "1"}, "GPULEDGER_ENGINE__: ", ""),
        (
            {"GPULEDGER_ENGINE__WINDOW_S": "60", "GPULEDGER_engine__WINDOW_S": "120"},
            "GPULEDGER_engine__WINDOW_S: ",
            "GPULEDGER_ENGINE__WINDOW_S",
        ),
        ({"GPULEDGER_TOPICS__TELEMETRY": "bad topic"}, "GPULEDGER_TOPICS__TELEMETRY: ", ""),
    ],
)
def test_env_errors_name_the_variable(env: dict[str, str], start: str, detail: str) -> None:
    message = env_error_of(env)
    assert message.startswith(start)
    assert detail in message


def test_env_error_names_variable_even_when_file_sets_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "[engine]\nallowed_lateness_s = 10\n")
    message = env_error_of({"GPULEDGER_ENGINE__ALLOWED_LATENESS_S": "-3"}, path)
    assert message.startswith("GPULEDGER_ENGINE__ALLOWED_LATENESS_S: engine.allowed_lateness_s:")
    # ... and a bad file value is reported against the file's key, not a variable.
    path = write(tmp_path, "[engine]\nallowed_lateness_s = -10\n")
    message = env_error_of({"GPULEDGER_ENGINE__SAMPLE_INTERVAL_S": "2"}, path)
    assert message.startswith("engine.allowed_lateness_s: ")


def test_kafka_bootstrap_servers_fallback(tmp_path: Path) -> None:
    assert load_config(env={"KAFKA_BOOTSTRAP_SERVERS": "plain:9092"}).kafka.bootstrap_servers == (
        "plain:9092"
    )
    both = {"KAFKA_BOOTSTRAP_SERVERS": "plain:9092", "GPULEDGER_KAFKA__BOOTSTRAP_SERVERS": "ours:1"}
    assert load_config(env=both).kafka.bootstrap_servers == "ours:1"
    path = write(tmp_path, '[kafka]\nbootstrap_servers = "file:9092"\n')
    assert load_config(path, env={}).kafka.bootstrap_servers == "file:9092"
    assert load_config(path, env={"KAFKA_BOOTSTRAP_SERVERS": "plain:9092"}).kafka.client_settings()[
        "bootstrap.servers"
    ] == ("plain:9092")
    assert load_config(path, env={"KAFKA_BOOTSTRAP_SERVERS": ""}).kafka.bootstrap_servers == (
        "file:9092"
    )


def test_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPULEDGER_IDLE__TTL_S", "60")
    assert load_config().idle.ttl_s == 60.0


# --- validation errors name their key ------------------------------------------------------

AGG = {"name": "a", "field": "DCGM_FI_DEV_GPU_UTIL", "reducer": "mean"}


@pytest.mark.parametrize(
    ("data", "start", "detail"),
    [
        ({"engine": {"allowed_lateness_s": -1}}, "engine.allowed_lateness_s: ", "got -1"),
        ({"engine": {"window_s": [60, 0]}}, "engine.window_s[1]: ", "got 0"),
        ({"engine": {"window_s": []}}, "engine.window_s: ", "at least one"),
        ({"engine": {"window_s": [60, 60]}}, "engine.window_s: ", "twice"),
        ({"engine": {"window_s": 60}}, "engine.window_s: ", "must be a list"),
        ({"engine": {"window_s": [60.0]}}, "engine.window_s[0]: ", "integer"),
        ({"engine": {"sample_interval_s": True}}, "engine.sample_interval_s: ", "got true"),
        ({"engine": {"max_message_bytes": True}}, "engine.max_message_bytes: ", "got true"),
        ({"engine": {"sample_interval_s": 0}}, "engine.sample_interval_s: ", "> 0"),
        ({"engine": {"idle_timeout_s": "30"}}, "engine.idle_timeout_s: ", "number"),
        ({"engine": {"max_future_s": float("inf")}}, "engine.max_future_s: ", "inf"),
        ({"engine": {"dead_letter_max_bytes": -1}}, "engine.dead_letter_max_bytes: ", ">= 0"),
        (
            {"engine": {"alowed_lateness_s": 1}},
            "engine.alowed_lateness_s: ",
            "unknown key (did you mean 'allowed_lateness_s'?)",
        ),
        ({"engne": {}}, "engne: ", "unknown section (did you mean 'engine'?)"),
        ({"window_s": [60]}, "window_s: ", "did you mean engine.window_s?"),
        ({"engine": 5}, "engine: ", "must be a table"),
        (
            {"engine": {"hopping": [{"size_s": 300, "slide_s": 600}]}},
            "engine.hopping[0].slide_s: ",
            "<= 300",
        ),
        ({"engine": {"hopping": [{"size_s": 300}]}}, "engine.hopping[0].slide_s: ", "required"),
        (
            {"engine": {"hopping": [{"size_s": 60, "slide_s": 30}, {"size_s": 60, "slide_s": 30}]}},
            "engine.hopping: ",
            "twice",
        ),
        (
            {"engine": {"hopping": [{"size_s": 60, "slide_s": 60, "step": 1}]}},
            "engine.hopping[0].step: ",
            "unknown key",
        ),
        (
            {"units": {"DCGM_FI_DEV_GPU_UTIL": "precent"}},
            "units.DCGM_FI_DEV_GPU_UTIL: ",
            "did you mean 'percent'?",
        ),
        ({"units": {"DCGM_FI_DEV_FB_USED": "GiB"}}, "units.DCGM_FI_DEV_FB_USED: ", "MiB"),
        (
            {"prices": {"NVIDIA H100 80GB HBM3": -4.5}},
            'prices."NVIDIA H100 80GB HBM3": ',
            ">= 0, got -4.5",
        ),
        ({"prices": {"default": False}}, "prices.default: ", "got false"),
        ({"teams": {"team-a": ""}}, "teams.team-a: ", "empty"),
        ({"teams": {"team-a": 3}}, "teams.team-a: ", "string"),
        (
            {"services": {"chat-llm": {"slo_target": 1.0}}},
            "services.chat-llm.slo_target: ",
            "< 1",
        ),
        ({"services": {"default": {"slo_latency_ms": 0}}}, "services.default.slo_latency_ms: ", ""),
        ({"services": {"chat": {"slo_ms": 1}}}, "services.chat.slo_ms: ", "unknown key"),
        ({"services": {"slo_target": 0.9}}, "services.slo_target: ", "must be a table"),
        ({"services": {"pods": [{"pattern": "x-*"}]}}, "services.pods[0].service: ", "required"),
        (
            {"services": {"pods": [{"pattern": "x-*", "service": "s", "namspace": "a"}]}},
            "services.pods[0].namspace: ",
            "did you mean 'namespace'?",
        ),
        (
            {"aggregations": [AGG, {**AGG, "name": "b", "reducer": "quantile"}]},
            "aggregations[1].q: ",
            "required for reducer 'quantile'",
        ),
        ({"aggregations": [{**AGG, "q": 0.5}]}, "aggregations[0].q: ", "'quantile'"),
        (
            {"aggregations": [{**AGG, "reducer": "quantile", "q": 1.5}]},
            "aggregations[0].q: ",
            "< 1",
        ),
        (
            {"aggregations": [{**AGG, "reducer": "share_above"}]},
            "aggregations[0].threshold: ",
            "required for reducer 'share_above'",
        ),
        ({"aggregations": [{**AGG, "threshold": 0.5}]}, "aggregations[0].threshold: ", ""),
        ({"aggregations": [{**AGG, "reducer": "avg"}]}, "aggregations[0].reducer: ", "mean"),
        ({"aggregations": [{**AGG, "name": "Tensor-Active"}]}, "aggregations[0].name: ", ""),
        ({"aggregations": [{**AGG, "name": "gpu_windows"}]}, "aggregations[0].name: ", "built-in"),
        ({"aggregations": [{**AGG, "name": "x" * 65}]}, "aggregations[0].name: ", ""),
        (
            {"aggregations": [AGG, {**AGG, "reducer": "sum"}]},
            "aggregations[1].name: ",
            "already aggregations[0]",
        ),
        (
            {"aggregations": [{k: AGG[k] for k in ("name", "reducer")}]},
            "aggregations[0].field: ",
            "",
        ),
        ({"aggregations": [{**AGG, "group_by": []}]}, "aggregations[0].group_by: ", "at least one"),
        (
            {"aggregations": [{**AGG, "group_by": [f"label{i}" for i in range(9)]}]},
            "aggregations[0].group_by: ",
            "at most 8",
        ),
        (
            {"aggregations": [{**AGG, "group_by": ["pod", "pod"]}]},
            "aggregations[0].group_by: ",
            "twice",
        ),
        (
            {"aggregations": [{**AGG, "group_by": ["pod", "a-b"]}]},
            "aggregations[0].group_by[1]: ",
            "label name",
        ),
        ({"aggregations": {"name": "a"}}, "aggregations: ", "must be a list"),
        ({"idle": {"threshold": 1.5}}, "idle.threshold: ", "<= 1"),
        ({"idle": {"ttl_s": 0}}, "idle.ttl_s: ", "> 0"),
        ({"kafka": {"bootstrap_servers": ""}}, "kafka.bootstrap_servers: ", "empty"),
        ({"kafka": {"group_id": 7}}, "kafka.group_id: ", "string"),
        (
            {"kafka": {"client": {"bootstrap.servers": "x"}}},
            'kafka.client."bootstrap.servers": ',
            "kafka.bootstrap_servers",
        ),
        ({"kafka": {"client": {"linger.ms": 1.5}}}, 'kafka.client."linger.ms": ', ""),
        ({"topics": {"telemetry_format": "json"}}, "topics.telemetry_format: ", "wide_json"),
        ({"topics": {"latency": "bad/topic"}}, "topics.latency: ", "topic name"),
        ({"topics": {"telemetry": ""}}, "topics.telemetry: ", ""),
        ({"output": {"format": "csv"}}, "output.format: ", "parquet"),
        ({"output": {"dir": ""}}, "output.dir: ", "empty"),
        ({"observability": {"metrics_port": 70000}}, "observability.metrics_port: ", "65535"),
        ({"observability": {"log_format": "text"}}, "observability.log_format: ", "json"),
        ({"observability": {"status_interval_s": -1}}, "observability.status_interval_s: ", ""),
    ],
)
def test_errors_name_their_key(data: dict[str, Any], start: str, detail: str) -> None:
    message = error_of(data)
    assert message.startswith(start)
    assert detail in message


def test_error_in_file_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "[idle]\nthreshold = 2\n")
    with pytest.raises(ConfigError, match=r"^idle\.threshold: ") as info:
        load_config(path, env={})
    assert info.value.key == "idle.threshold" and "got 2" in info.value.problem


def test_unreadable_or_invalid_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError, match="^" + re.escape(f"{missing}: cannot read")):
        load_config(missing, env={})
    bad = write(tmp_path, "[engine\nwindow_s = 60\n", "bad.toml")
    with pytest.raises(ConfigError, match="^" + re.escape(f"{bad}: invalid TOML")):
        load_config(str(bad), env={})


def test_config_error_is_a_value_error_and_pickles() -> None:
    err = ConfigError("engine.window_s", "must be a list, got 60")
    assert isinstance(err, ValueError)
    copy = pickle.loads(pickle.dumps(err))
    assert (type(copy), str(copy), copy.key) == (ConfigError, str(err), "engine.window_s")


# --- secrets -------------------------------------------------------------------------------


def test_secrets_are_masked_in_repr_str_and_to_dict(tmp_path: Path) -> None:
    secrets = write(tmp_path, f"sasl.password={SECRET}\n", "secrets.env")
    path = write(
        tmp_path,
        f"""
[kafka]
secrets_file = "{secrets}"
[kafka.client]
"sasl.username" = "svc"
"ssl.key.password" = "{SECRET}1"
"sasl.oauthbearer.client.secret" = "{SECRET}2"
""",
    )
    env = {"GPULEDGER_KAFKA__CLIENT__SASL_OAUTHBEARER_TOKEN": f"{SECRET}3"}
    cfg = load_config(path, env=env)
    settings = cfg.kafka.client_settings()
    assert settings["sasl.password"] == SECRET
    assert settings["sasl.oauthbearer.token"] == f"{SECRET}3"
    for text in (repr(cfg), str(cfg), repr(cfg.kafka), str(cfg.kafka), str(cfg.to_dict())):
        assert SECRET not in text
        assert "'sasl.password': '***'" in text and "'sasl.username': 'svc'" in text
    assert cfg.to_dict(reveal_secrets=True)["kafka"]["client"]["sasl.password"] == SECRET


@pytest.mark.parametrize(
    ("toml", "env"),
    [
        ('[kafka]\nclient = {{ "sasl.password" = 1.5, "x" = "{s}" }}\n', {}),
        ('[kafka]\nsasl_password = "{s}"\n', {}),
        ('[kafka]\nsecrets_file = "{f}"\n', {}),  # the file's second line is malformed
        ("", {"GPULEDGER_KAFKA__SASL_PASSWORD": "{s}"}),  # typo: missing CLIENT__
        ("", {"GPULEDGER_KAFKA__CLIENT_SASL_PASSWORD": "{s}"}),
        ("", {"GPULEDGER_KAFKA__CLIENT__SASL_PASSWORD": "{s}", "GPULEDGER_IDLE__TTL_S": "-1"}),
    ],
)
def test_secret_never_appears_in_an_error(tmp_path: Path, toml: str, env: dict[str, str]) -> None:
    secrets = write(tmp_path, f"sasl.username=svc\nsasl.password {SECRET}\n", "secrets.env")
    path = write(tmp_path, toml.format(s=SECRET, f=secrets))
    env = {k: v.format(s=SECRET) for k, v in env.items()}
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env)
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)


def test_secrets_file_merges_between_client_table_and_env(tmp_path: Path) -> None:
    secrets = write(
        tmp_path,
        "# written by the secrets operator\n\n"
        "sasl.username = from-file\n"
        "sasl.password=pa=ss word \n"
        "ssl.key.password=from-file\n",
        "secrets.env",
    )
    path = write(
        tmp_path,
        f"""
[kafka]
secrets_file = "{secrets}"
client = {{ "sasl.username" = "from-table", "security.protocol" = "SASL_SSL" }}
""",
    )
    env = {"GPULEDGER_KAFKA__CLIENT__SSL_KEY_PASSWORD": "from-env"}
    settings = load_config(path, env=env).kafka.client_settings()
    assert settings == {
        "bootstrap.servers": "127.0.0.1:9092",
        "group.id": "gpuledger",
        "security.protocol": "SASL_SSL",  # table
        "sasl.username": "from-file",  # file beats table
        "sasl.password": "pa=ss word",  # everything after the first '=', trimmed
        "ssl.key.password": "from-env",  # env beats file
    }


def test_secrets_file_from_env(tmp_path: Path) -> None:
    secrets = write(tmp_path, "sasl.password=s3\n", "secrets.env")
    cfg = load_config(env={"GPULEDGER_KAFKA__SECRETS_FILE": str(secrets)})
    assert cfg.kafka.client_settings()["sasl.password"] == "s3"
    message = env_error_of({"GPULEDGER_KAFKA__SECRETS_FILE": str(tmp_path / "nope")})
    assert message.startswith("GPULEDGER_KAFKA__SECRETS_FILE: kafka.secrets_file: cannot read")


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        ("sasl.password\n", "line 1: expected KEY=VALUE"),
        ("# ok\n=value\n", "line 2: expected KEY=VALUE"),
        ("a=1\na=2\n", "line 2: 'a' is set twice"),
        ("bootstrap.servers=x:1\n", "kafka.bootstrap_servers"),
        (None, "cannot read"),
    ],
)
def test_secrets_file_errors(tmp_path: Path, content: str | None, detail: str) -> None:
    secrets = tmp_path / "secrets.env"
    if content is not None:
        secrets.write_text(content, encoding="utf-8")
    message = error_of({"kafka": {"secrets_file": str(secrets)}})
    assert message.startswith("kafka.secrets_file: ") and detail in message


# --- packaging and docs --------------------------------------------------------------------


def test_imports_without_the_compiled_engine() -> None:
    code = f"""
import sys, types
pkg = types.ModuleType("gpuledger")
pkg.__path__ = [{str(REPO / "python" / "gpuledger")!r}]
sys.modules["gpuledger"] = pkg
sys.modules["gpuledger._engine"] = None  # importing it now raises ImportError
from gpuledger.config import load_config
assert load_config(env={{"GPULEDGER_ENGINE__WINDOW_S": "60"}}).engine.window_s == (60,)
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_docs_example_loads_and_every_key_is_documented(tmp_path: Path) -> None:
    doc = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", doc, flags=re.S)
    assert blocks, "docs/configuration.md has no ```toml example"
    for block in blocks:
        load_config(write(tmp_path, block), env={})
    for section, keys in Config().to_dict().items():
        assert f"[{section}]" in doc or f"[[{section}]]" in doc, section
        if section in ("engine", "idle", "kafka", "topics", "output", "observability"):
            for key in keys:
                assert f"`{key}`" in doc, f"{section}.{key} is not documented"
                env_var = f"GPULEDGER_{section.upper()}__{key.upper()}"
                assert env_var in doc, f"{env_var} is not documented"
