"""The daemon's HTTP endpoint (gpuledger.daemon.http) served for real: plain HTTP on a bind
address, then TLS with basic auth (bcrypt, the exporter toolkit's settings shape) and mutual
TLS, with certificates generated here by `cryptography`; the probes' answers."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import socket
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import CollectorRegistry, Counter

from gpuledger.config import Config, ConfigError
from gpuledger.daemon.http import Health, serve

PASSWORD = "scrape-me-please"


def _key_and_cert(cn: str, issuer=None, *, ca: bool = False, san: bool = True):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    issuer_key, issuer_name = (key, name) if issuer is None else issuer
    now = dt.datetime.now(dt.timezone.utc)
    b = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        b = b.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return key, b.sign(issuer_key, hashes.SHA256())


def _write(path: Path, key, cert) -> tuple[str, str]:
    key_path, cert_path = path.with_suffix(".key"), path.with_suffix(".crt")
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(cert_path), str(key_path)


@pytest.fixture
def certs(tmp_path: Path) -> dict[str, tuple[str, str]]:
    """A self-signed server certificate, and a client CA with one client certificate."""
    server = _write(tmp_path / "server", *_key_and_cert("localhost"))
    ca_key, ca_cert = _key_and_cert("test-client-ca", ca=True, san=False)
    ca = _write(tmp_path / "client-ca", ca_key, ca_cert)
    client_key, client_cert = _key_and_cert("prometheus", issuer=(ca_key, ca_cert.subject))
    client = _write(tmp_path / "client", client_key, client_cert)
    return {"server": server, "client_ca": ca, "client": client}


def registry() -> CollectorRegistry:
    r = CollectorRegistry()
    Counter("gpuledger_test_things", "things", registry=r).inc(3)
    return r


def web_config(observability: dict) -> Config:
    return Config.from_dict({"observability": observability})


def get(url: str, *, ctx: ssl.SSLContext | None = None, auth: tuple[str, str] | None = None):
    req = urllib.request.Request(url)
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=5, context=ctx) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def start(cfg: Config, health: Health):
    obs = cfg.observability
    httpd, _ = serve(registry(), 0, obs.metrics_bind, obs.web, health)
    return httpd, httpd.server_port


def test_plain_http_metrics_and_probes() -> None:
    held = {"n": 0}
    health = Health(lambda: held["n"], stale_after_s=0.5)
    httpd, port = start(web_config({"metrics_bind": "127.0.0.1"}), health)
    try:
        base = f"http://127.0.0.1:{port}"
        status, body, headers = get(f"{base}/metrics")
        assert status == 200 and "gpuledger_test_things_total 3.0" in body
        assert headers["Content-Type"].startswith("text/plain")
        assert get(f"{base}/healthz")[:2] == (200, "ok\n")
        assert get(f"{base}/readyz")[:2] == (503, "no partitions assigned\n")
        held["n"] = 4
        assert get(f"{base}/readyz")[:2] == (200, "ok: 4 partitions assigned\n")
        assert get(f"{base}/other")[0] == 404
        # A main loop that stops turning fails liveness, and then readiness too.
        time.sleep(0.7)
        status, body, _ = get(f"{base}/healthz")
        assert status == 503 and "main loop silent" in body
        assert get(f"{base}/readyz")[0] == 503
        health.beat()
        assert get(f"{base}/healthz")[0] == 200
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_bind_address_limits_who_can_connect() -> None:
    httpd, port = start(web_config({"metrics_bind": "127.0.0.1"}), Health(lambda: 1))
    try:
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        with pytest.raises(OSError), socket.create_connection(("127.0.0.2", port), timeout=2):
            pass  # another loopback address: nothing listens there
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_tls_and_basic_auth(certs) -> None:
    cert, key = certs["server"]
    # $2y$ is what htpasswd -B and the exporter toolkit's docs produce.
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode().replace("$2b$", "$2y$")
    cfg = web_config(
        {
            "metrics_bind": "127.0.0.1",
            "web": {
                "tls_server_config": {"cert_file": cert, "key_file": key},
                "basic_auth_users": {"prometheus": hashed},
            },
        }
    )
    assert hashed not in repr(cfg) and hashed not in str(cfg.observability)
    httpd, port = start(cfg, Health(lambda: 2))
    try:
        base = f"https://127.0.0.1:{port}"
        ctx = ssl.create_default_context(cafile=cert)
        status, _, headers = get(f"{base}/metrics", ctx=ctx)
        assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="gpuledger"'
        assert get(f"{base}/metrics", ctx=ctx, auth=("prometheus", "wrong"))[0] == 401
        assert get(f"{base}/metrics", ctx=ctx, auth=("nobody", PASSWORD))[0] == 401
        for _ in range(2):  # the second answer comes from the remembered credential
            status, body, _ = get(f"{base}/metrics", ctx=ctx, auth=("prometheus", PASSWORD))
            assert status == 200 and "gpuledger_test_things_total 3.0" in body
        assert get(f"{base}/metrics", ctx=ctx, auth=("prometheus", "wrong"))[0] == 401
        # Probes need no password (kubelet sends none).
        assert get(f"{base}/readyz", ctx=ctx)[0] == 200
        # Plain HTTP to the TLS port gets nothing.
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            get(f"http://127.0.0.1:{port}/healthz")
        # A client that does not trust the certificate refuses it.
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            get(f"{base}/healthz", ctx=ssl.create_default_context())
        # A client that connects and never handshakes does not hold up the others.
        with socket.create_connection(("127.0.0.1", port)):
            assert get(f"{base}/healthz", ctx=ctx)[0] == 200
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_mutual_tls_needs_a_client_certificate(certs) -> None:
    cert, key = certs["server"]
    ca_cert, _ = certs["client_ca"]
    cfg = web_config(
        {
            "metrics_bind": "127.0.0.1",
            "web": {
                "tls_server_config": {
                    "cert_file": cert,
                    "key_file": key,
                    "client_ca_file": ca_cert,
                }
            },
        }
    )
    httpd, port = start(cfg, Health(lambda: 1))
    try:
        url = f"https://127.0.0.1:{port}/metrics"
        anonymous = ssl.create_default_context(cafile=cert)
        with pytest.raises((urllib.error.URLError, ConnectionError, ssl.SSLError)):
            get(url, ctx=anonymous)
        with_cert = ssl.create_default_context(cafile=cert)
        with_cert.load_cert_chain(*certs["client"])
        assert get(url, ctx=with_cert)[0] == 200
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_taken_port_is_an_error_naming_the_setting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        obs = web_config({"metrics_bind": "127.0.0.1"}).observability
        with pytest.raises(ConfigError, match=rf"^observability\.metrics_port: .*:{port}"):
            serve(registry(), port, obs.metrics_bind, obs.web, Health(lambda: 1))


def test_unreadable_tls_files_stop_the_start_naming_the_file(tmp_path: Path, certs) -> None:
    _, key = certs["server"]
    missing = str(tmp_path / "nope.crt")
    cfg = web_config({"web": {"tls_server_config": {"cert_file": missing, "key_file": key}}})
    with pytest.raises(ConfigError, match=r"^observability\.web\.tls_server_config: ") as e:
        start(cfg, Health(lambda: 1))
    assert missing in str(e.value) and "No such file" in str(e.value)
    garbage = tmp_path / "garbage.crt"
    garbage.write_text("not a certificate")
    cfg = web_config({"web": {"tls_server_config": {"cert_file": str(garbage), "key_file": key}}})
    with pytest.raises(ConfigError, match=r"garbage\.crt"):
        start(cfg, Health(lambda: 1))
