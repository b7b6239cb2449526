"""The `[billing]` section of the configuration (docs/billing.md): where the resource map is,
the label rule, MIG profiles, the basis and idle sharing. Checked when allocation starts,
before any data is read; errors name the key (`billing.basis: ...`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from gpuledger.billing.mig import profile_table
from gpuledger.billing.resources import ResourceRule
from gpuledger.config import ConfigError
from gpuledger.errors import MappingError

__all__ = ["BASES", "BillingSettings", "read_settings"]

BASES = ("usage", "allocation")
KEYS = (
    "resources",
    "resource_label",
    "resource_pattern",
    "resource_template",
    "mig_profiles",
    "mig_profile_table",
    "basis",
    "share_idle",
    "window_s",
)


@dataclass(frozen=True)
class BillingSettings:
    resources_file: str | None = None
    resources: Mapping[str, str] = field(default_factory=dict)
    rule: ResourceRule | None = None
    mig_profiles: Mapping[str, Fraction] = field(default_factory=profile_table)
    mig_profile_table: str = "mig_profiles"
    basis: str = "usage"
    share_idle: bool = False
    window_s: int | None = None


def _str(section: Mapping[str, Any], key: str) -> str | None:
    v = section.get(key)
    if v is None:
        return None
    if not isinstance(v, str) or not v:
        raise ConfigError(f"billing.{key}", f"must be non-empty text, got {v!r}")
    return v


def read_settings(section: Mapping[str, Any] | None) -> BillingSettings:
    """BillingSettings from the `[billing]` table (TOML-shaped); ConfigError naming the key."""
    s = dict(section or {})
    for key in s:
        if key not in KEYS:
            raise ConfigError(f"billing.{key}", f"unknown key (known: {', '.join(KEYS)})")
    resources = s.get("resources")
    file: str | None = None
    inline: dict[str, str] = {}
    if isinstance(resources, str) and resources:
        file = resources
    elif isinstance(resources, Mapping):
        for host, rid in resources.items():
            if not isinstance(rid, str) or not rid:
                raise ConfigError(f"billing.resources.{host}", f"must be a ResourceId, got {rid!r}")
            inline[str(host)] = rid
    elif resources is not None:
        raise ConfigError(
            "billing.resources", "must be a file name or a table hostname = ResourceId"
        )
    rule = None
    label, pattern, template = (
        _str(s, "resource_label"),
        _str(s, "resource_pattern"),
        _str(s, "resource_template"),
    )
    if label or pattern or template:
        try:
            rule = ResourceRule(label or "hostname", pattern or r".+", template or "{}")
        except MappingError as e:
            raise ConfigError("billing", str(e)) from None
    extra = s.get("mig_profiles", {})
    if not isinstance(extra, Mapping):
        raise ConfigError("billing.mig_profiles", 'must be a table profile = "slices/of"')
    try:
        profiles = profile_table(extra)
    except MappingError as e:
        raise ConfigError("billing.mig_profiles", str(e)) from None
    basis = s.get("basis", "usage")
    if basis not in BASES:
        raise ConfigError("billing.basis", f"must be one of {', '.join(BASES)}, got {basis!r}")
    share_idle = s.get("share_idle", False)
    if not isinstance(share_idle, bool):
        raise ConfigError("billing.share_idle", f"must be true or false, got {share_idle!r}")
    window_s = s.get("window_s")
    if window_s is not None and (
        isinstance(window_s, bool) or not isinstance(window_s, int) or window_s < 1
    ):
        raise ConfigError("billing.window_s", f"must be an integer >= 1, got {window_s!r}")
    return BillingSettings(
        resources_file=file,
        resources=inline,
        rule=rule,
        mig_profiles=profiles,
        mig_profile_table=_str(s, "mig_profile_table") or "mig_profiles",
        basis=str(basis),
        share_idle=share_idle,
        window_s=window_s,
    )
