"""The daemon's HTTP endpoint: `/metrics` (Prometheus), `/healthz` (liveness: the main loop
turns) and `/readyz` (readiness: this member holds partitions), on a bind address, with
optional TLS and basic auth (`[observability.web]`, gpuledger.config.web).

prometheus-client serves TLS but has neither basic auth nor extra paths, so this module puts
its WSGI app behind a small router on the same threaded wsgiref server it uses."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from gpuledger.config.sections import WebConfig
from gpuledger.errors import ConfigError

StartResponse = Callable[..., Any]
Environ = dict[str, Any]

# The loop turns at least every consume timeout (0.2 s) plus one batch's work; a rebalance
# (committed-offset fetch, idle-streak seeding) can take tens of seconds. Silence beyond
# this means a stuck process that a restart would help.
LIVENESS_STALE_S = 120.0


class Health:
    """What the probes report. `partitions` counts the partitions this member holds now."""

    def __init__(self, partitions: Callable[[], int], stale_after_s: float = LIVENESS_STALE_S):
        self.partitions = partitions
        self.stale_after_s = stale_after_s
        self.last_beat = time.monotonic()

    def beat(self) -> None:
        """Called once per turn of the daemon's main loop."""
        self.last_beat = time.monotonic()

    def live(self) -> tuple[bool, str]:
        silent = time.monotonic() - self.last_beat
        if silent > self.stale_after_s:
            return False, f"main loop silent for {silent:.0f} s\n"
        return True, "ok\n"

    def ready(self) -> tuple[bool, str]:
        n = self.partitions()
        if n <= 0:
            return False, "no partitions assigned\n"
        return True, f"ok: {n} partitions assigned\n"


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # fire and forget, as prometheus-client's own server

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that drops the connection or fails the TLS handshake: nothing to log."""


class _QuietHandler(WSGIRequestHandler):
    timeout = 30  # a stalled client frees its thread

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes and probes are not logged."""


class BasicAuth:
    """Checks `Authorization: Basic` against bcrypt hashes. bcrypt is slow by design, so the
    SHA-256 of each user's last accepted password is kept to answer repeat scrapes quickly."""

    def __init__(self, users: dict[str, str]) -> None:
        import bcrypt  # only needed when users are configured

        self._checkpw = bcrypt.checkpw
        self.users = {u: h.encode() for u, h in users.items()}
        self._accepted: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def allows(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, sep, password = base64.b64decode(header[6:], validate=True).partition(b":")
            name = user.decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        hashed = self.users.get(name)
        if not sep or hashed is None:
            return False
        digest = hashlib.sha256(password).digest()
        with self._lock:
            known = self._accepted.get(name)
        if known is not None and hmac.compare_digest(known, digest):
            return True
        try:
            ok = bool(self._checkpw(password, hashed))
        except ValueError:
            return False
        if ok:
            with self._lock:
                self._accepted[name] = digest
        return ok


def _text(
    start: StartResponse, status: str, body: str, headers: Iterable[tuple[str, str]] = ()
) -> list[bytes]:
    data = body.encode()
    kind = ("Content-Type", "text/plain; charset=utf-8")
    start(status, [kind, ("Content-Length", str(len(data))), *headers])
    return [data]


def make_app(registry: CollectorRegistry, health: Health, web: WebConfig) -> Callable[..., Any]:
    metrics = make_wsgi_app(registry)
    auth = BasicAuth(dict(web.basic_auth_users)) if web.basic_auth_users else None

    def app(environ: Environ, start: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path in ("/healthz", "/readyz"):
            ok, why = health.live()
            if ok and path == "/readyz":
                ok, why = health.ready()
            return _text(start, "200 OK" if ok else "503 Service Unavailable", why)
        if path in ("/metrics", "/"):
            if auth is not None and not auth.allows(environ.get("HTTP_AUTHORIZATION")):
                return _text(
                    start,
                    "401 Unauthorized",
                    "Unauthorized\n",
                    [("WWW-Authenticate", 'Basic realm="gpuledger"')],
                )
            if path == "/":
                return _text(start, "200 OK", "gpuledger: /metrics /healthz /readyz\n")
            result: Iterable[bytes] = metrics(environ, start)
            return result
        return _text(start, "404 Not Found", "Not found: /metrics /healthz /readyz\n")

    return app


def tls_context(web: WebConfig) -> ssl.SSLContext | None:
    tls = web.tls_server_config
    if tls is None:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    where = "observability.web.tls_server_config"
    try:
        ctx.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(where, f"cannot load {tls.cert_file} / {tls.key_file}: {e}") from e
    if tls.client_ca_file:
        try:
            ctx.load_verify_locations(cafile=tls.client_ca_file)
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(f"{where}.client_ca_file", f"{tls.client_ca_file}: {e}") from e
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def serve(
    registry: CollectorRegistry, port: int, bind: str, web: WebConfig, health: Health
) -> tuple[WSGIServer, threading.Thread]:
    """Starts the endpoint on a daemon thread. Raises ConfigError when a TLS file cannot be
    loaded or the address cannot be bound (the daemon stops before consuming anything)."""
    ctx = tls_context(web)

    class Server(_Server):
        address_family = socket.AF_INET6 if ":" in bind else socket.AF_INET

    try:
        httpd = make_server(bind, port, make_app(registry, health, web), Server, _QuietHandler)
    except OSError as e:
        raise ConfigError(
            "observability.metrics_port", f"cannot listen on {bind}:{port}: {e}"
        ) from e
    if ctx is not None:
        # The handshake happens in the request's own thread (on first read), so a client that
        # connects and stalls cannot hold up the accept loop.
        httpd.socket = ctx.wrap_socket(
            httpd.socket, server_side=True, do_handshake_on_connect=False
        )
    thread = threading.Thread(target=httpd.serve_forever, name="gpuledger-http", daemon=True)
    thread.start()
    return httpd, thread
