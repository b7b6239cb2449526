"""Which bill resource a GPU node is: hostname -> ResourceId from a table (CSV or Parquet with
columns `hostname` and `ResourceId`, a TOML `[resources]` table, or `[billing.resources]`
inline), and/or a rule that reads the id from a gpu_windows label column with a regular
expression (e.g. the instance id inside the node name)."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from gpuledger.errors import MappingError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 needs the `tomli` package
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = ["ResourceMap", "ResourceRule", "load_table"]


@dataclass(frozen=True)
class ResourceRule:
    """ResourceId = `template` with `{}` replaced by the match of `pattern` (its first group
    when it has one) in the value of gpu_windows column `label`."""

    label: str = "hostname"
    pattern: str = r".+"
    template: str = "{}"

    def __post_init__(self) -> None:
        try:
            re.compile(self.pattern)
        except re.error as e:
            raise MappingError(f"billing.resource_pattern: invalid regular expression: {e}") from e
        if "{}" not in self.template:
            raise MappingError("billing.resource_template: must contain {} (the matched id)")

    def apply(self, value: str) -> str | None:
        m = re.search(self.pattern, value)
        if m is None:
            return None
        found = m.group(1) if m.re.groups else m.group(0)
        return self.template.replace("{}", found) if found else None


@dataclass(frozen=True)
class ResourceMap:
    """hostname -> ResourceId (`table`), then the `rule` for nodes the table does not list."""

    table: Mapping[str, str] = field(default_factory=dict)
    rule: ResourceRule | None = None

    @property
    def label(self) -> str:
        return self.rule.label if self.rule is not None else "hostname"

    def resolve(
        self, hostnames: Sequence[str], labels: Sequence[str] | None = None
    ) -> dict[str, str]:
        """hostname -> ResourceId for the nodes that map. `labels` are the rule's label
        values per hostname when the rule reads another column (same order)."""
        out: dict[str, str] = {}
        for i, host in enumerate(hostnames):
            rid = self.table.get(host)
            if rid is None and self.rule is not None:
                value = host if labels is None else labels[i]
                rid = self.rule.apply(value)
            if rid:
                out[host] = rid
        return out


def load_table(path: str | os.PathLike[str]) -> dict[str, str]:
    """hostname -> ResourceId from a CSV, Parquet or TOML file (by its content/extension)."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise MappingError(f"{p}: cannot read the resource map: {e.strerror or e}") from e
    if p.suffix.lower() == ".toml":
        return _from_toml(p)
    try:
        if magic == b"PAR1":
            table = pq.read_table(p)
        else:
            table = pcsv.read_csv(
                p,
                convert_options=pcsv.ConvertOptions(
                    column_types={"hostname": pa.string(), "ResourceId": pa.string()}
                ),
            )
    except (pa.ArrowException, OSError) as e:
        raise MappingError(f"{p}: cannot read the resource map: {e}") from e
    missing = [c for c in ("hostname", "ResourceId") if c not in table.column_names]
    if missing:
        raise MappingError(
            f"{p}: the resource map needs columns hostname and ResourceId; missing {missing}"
        )
    hosts = table["hostname"].cast(pa.string()).to_pylist()
    ids = table["ResourceId"].cast(pa.string()).to_pylist()
    return from_pairs(zip(hosts, ids, strict=True), str(p))


def from_pairs(pairs: Iterable[tuple[object, object]], where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for n, (host, rid) in enumerate(pairs, start=1):
        if not host or not rid or not isinstance(host, str) or not isinstance(rid, str):
            raise MappingError(
                f"{where}: entry {n}: hostname and ResourceId must be non-empty text, "
                f"got {host!r} -> {rid!r}"
            )
        if out.get(host, rid) != rid:
            raise MappingError(f"{where}: hostname {host!r} maps to both {out[host]!r} and {rid!r}")
        out[host] = rid
    return out


def _from_toml(p: Path) -> dict[str, str]:
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise MappingError(f"{p}: cannot read the resource map: {e}") from e
    table = data.get("resources")
    if not isinstance(table, dict):
        raise MappingError(f'{p}: expected a [resources] table of hostname = "ResourceId"')
    return from_pairs(table.items(), f"{p} [resources]")
