"""`[observability.web]`: TLS and basic auth for the daemon's HTTP endpoint, in the shape of
the Prometheus exporter toolkit's web configuration file (`tls_server_config.cert_file` /
`key_file` / `client_ca_file`, `basic_auth_users` mapping a user to a bcrypt hash), so a
platform team can reuse the settings it gives node_exporter. docs/configuration.md.
This module must import without the compiled engine and without bcrypt (checked at start)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

# $2a$, $2b$, $2y$ (htpasswd -B, Go's bcrypt) with a cost of 04..31 and 53 characters.
_BCRYPT = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")


@dataclass(frozen=True, kw_only=True)
class TlsServerConfig:
    cert_file: str
    key_file: str
    client_ca_file: str = ""  # set: clients must present a certificate signed by it


@dataclass(frozen=True, kw_only=True, repr=False)
class WebConfig:
    tls_server_config: TlsServerConfig | None = None
    basic_auth_users: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def __repr__(self) -> str:  # the hashes are not shown: only who may log in
        return (
            f"WebConfig(tls_server_config={self.tls_server_config!r}, "
            f"basic_auth_users={sorted(self.basic_auth_users)!r})"
        )


def read_web_config(value: object, path: str) -> WebConfig:
    """Validates the `[observability.web]` table (`path` names it in errors)."""
    from gpuledger._config_validate import check_keys, fail, join, string, table

    t = table(value, path)
    check_keys(t, path, ("tls_server_config", "basic_auth_users"))
    tls = None
    if "tls_server_config" in t:
        tls_path = join(path, "tls_server_config")
        tt = table(t["tls_server_config"], tls_path)
        check_keys(tt, tls_path, ("cert_file", "key_file", "client_ca_file"))
        for key in ("cert_file", "key_file"):
            if key not in tt:
                fail(join(tls_path, key), "is required when tls_server_config is set")
        tls = TlsServerConfig(
            cert_file=string(tt["cert_file"], join(tls_path, "cert_file")),
            key_file=string(tt["key_file"], join(tls_path, "key_file")),
            client_ca_file=string(
                tt.get("client_ca_file", ""), join(tls_path, "client_ca_file"), allow_empty=True
            ),
        )
    users: dict[str, str] = {}
    if "basic_auth_users" in t:
        users_path = join(path, "basic_auth_users")
        for user, hashed in table(t["basic_auth_users"], users_path).items():
            where = join(users_path, user)
            if not user or ":" in user:
                fail(where, "a user name must be non-empty and without ':'")
            if not isinstance(hashed, str) or not _BCRYPT.fullmatch(hashed):
                # never echo the value: it may be a plain password put there by mistake
                fail(where, "must be a bcrypt hash ($2a$/$2b$/$2y$, e.g. from htpasswd -nbB)")
            users[user] = hashed
    return WebConfig(tls_server_config=tls, basic_auth_users=MappingProxyType(users))
