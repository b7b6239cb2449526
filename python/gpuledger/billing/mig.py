"""MIG: the share of its GPU a MIG instance stands for, by profile (compute slices over the
GPU's slices), and where an instance's profile comes from. Users extend the table with
`[billing.mig_profiles]` (profile = "slices/of")."""

from __future__ import annotations

import re
from collections.abc import Mapping
from fractions import Fraction

from gpuledger.errors import MappingError

__all__ = ["BUILTIN_PROFILES", "PROFILE_IN_TEXT", "parse_share", "profile_table"]


def _profiles(of: int, names: str) -> dict[str, Fraction]:
    out = {}
    for name in names.split():
        slices = int(name.split("g.", 1)[0])
        out[name] = Fraction(slices, of)
    return out


BUILTIN_PROFILES: Mapping[str, Fraction] = {
    # A100 40GB
    **_profiles(7, "1g.5gb 1g.5gb+me 1g.10gb 2g.10gb 3g.20gb 4g.20gb 7g.40gb"),
    # A100 80GB, H100 80GB
    **_profiles(7, "1g.10gb+me 1g.20gb 2g.20gb 3g.40gb 4g.40gb 7g.80gb"),
    # H100 94GB (NVL), GH200 96GB
    **_profiles(7, "1g.12gb 1g.12gb+me 1g.24gb 2g.24gb 3g.47gb 4g.47gb 7g.94gb"),
    **_profiles(7, "3g.48gb 4g.48gb 7g.96gb"),
    # H200 141GB
    **_profiles(7, "1g.18gb 1g.18gb+me 1g.35gb 2g.35gb 3g.71gb 4g.71gb 7g.141gb"),
    # B200
    **_profiles(7, "1g.23gb 1g.23gb+me 1g.45gb 2g.45gb 3g.90gb 4g.90gb 7g.180gb"),
    # A30: 4 compute slices
    **_profiles(4, "1g.6gb 1g.6gb+me 2g.12gb 2g.12gb+me 4g.24gb"),
}
"""Profile -> share of the GPU: its compute slices over the GPU's (7 on A100, H100, H200,
B200; 4 on A30). `1g.10gb` = 1/7 of an A100 80GB or H100."""

PROFILE_IN_TEXT = re.compile(r"(?<![\w.])(\d+g\.\d+gb(?:\+me)?)(?![\w.])")
"""A profile written inside another label, e.g. NVML's "NVIDIA A100-SXM4-80GB MIG 1g.10gb"."""


def parse_share(value: object, where: str) -> Fraction:
    """A share given as "n/d" or a number in (0, 1]."""
    try:
        share = Fraction(str(value).strip()) if not isinstance(value, bool) else None
    except (ValueError, ZeroDivisionError):
        share = None
    if share is None or not 0 < share <= 1:
        raise MappingError(
            f'{where}: must be a share of the GPU in (0, 1] like "1/7", got {value!r}'
        )
    return share


def profile_table(extra: Mapping[str, object] | None = None) -> dict[str, Fraction]:
    """The built-in profiles, with `extra` (profile -> share) added or overriding."""
    table = dict(BUILTIN_PROFILES)
    for name, value in (extra or {}).items():
        table[name] = parse_share(value, f"billing.mig_profiles.{name}")
    return table


def profiles_from_tables(tables: list[object]) -> dict[str, str]:
    """MIG instance (`UUID/GPU_I_ID`) -> profile from custom-aggregation tables grouped by
    `UUID`, `GPU_I_ID` and `GPU_I_PROFILE` (docs/billing.md shows the aggregation)."""
    import pyarrow as pa

    out: dict[str, str] = {}
    for t in tables:
        assert isinstance(t, pa.Table)
        names = t.column_names
        if "GPU_I_PROFILE" not in names or not t.num_rows:
            continue
        profiles = t["GPU_I_PROFILE"].to_pylist()
        if "gpu_uuid" in names:
            uuids = t["gpu_uuid"].to_pylist()
        elif "UUID" in names and "GPU_I_ID" in names:
            uuids = [
                f"{u}/{i}"
                for u, i in zip(t["UUID"].to_pylist(), t["GPU_I_ID"].to_pylist(), strict=True)
            ]
        else:
            continue
        for u, p in zip(uuids, profiles, strict=True):
            if u and p:
                out[str(u)] = str(p)
    return out


def instance_shares(
    instances: list[tuple[str, str]],
    known: Mapping[str, str],
    table: Mapping[str, Fraction],
) -> dict[str, float]:
    """Share of its GPU for each MIG instance of `instances` ((gpu_uuid, model_name) pairs):
    its profile from `known` (the profile table in the telemetry), else a profile written in
    its model name; MappingError naming the instance when neither gives a known profile."""
    out: dict[str, float] = {}
    for uuid, model in instances:
        profile = known.get(uuid)
        if profile is None:
            m = PROFILE_IN_TEXT.search(model or "")
            profile = m.group(1) if m else None
        if profile is None:
            raise MappingError(
                f"MIG instance {uuid} ({model!r}): no MIG profile known. Record GPU_I_PROFILE "
                "with the [[aggregations]] table named in billing.mig_profile_table "
                "(docs/billing.md)"
            )
        share = table.get(profile)
        if share is None:
            raise MappingError(
                f"MIG instance {uuid}: unknown MIG profile {profile!r}; add it to "
                f'[billing.mig_profiles] as {profile!r} = "slices/of"'
            )
        out[uuid] = float(share)
    return out
