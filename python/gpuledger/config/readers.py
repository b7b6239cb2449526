"""Readers of raw configuration values: each takes a value and its dotted key path, such as
``engine.window_s[1]``, and returns it as the expected type or raises ConfigError whose message
starts with that path. Values of secret settings never appear in a message."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any, NoReturn

from gpuledger.errors import ConfigError

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")

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
