"""`[observability.web]`: TLS and basic auth for the daemon's HTTP endpoint, in the shape of
the Prometheus exporter toolkit's web configuration file (`tls_server_config.cert_file` /
`key_file` / `client_ca_file`, `basic_auth_users` mapping a user to a bcrypt hash), so a
platform team can reuse the settings it gives node_exporter. docs/configuration.md.
The reader of that table; the records are in gpuledger.config.sections. Needs no bcrypt."""

from __future__ import annotations

import re
from types import MappingProxyType

from gpuledger.config.readers import check_keys, fail, join, string, table
from gpuledger.config.sections import TlsServerConfig, WebConfig

# $2a$, $2b$, $2y$ (htpasswd -B, Go's bcrypt) with a cost of 04..31 and 53 characters.
_BCRYPT = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")


def read_web_config(value: object, path: str) -> WebConfig:
    """Validates the `[observability.web]` table (`path` names it in errors)."""
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
