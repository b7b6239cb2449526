"""deploy/ is checked, not just shipped (docs/deploy.md): the Kubernetes manifests validate
against the bundled 1.33 schemas, the ServiceMonitor and the StatefulSet have the fields the
setup relies on, every alerting rule and dashboard query parses as PromQL, and every metric
they name is exported by a RUNNING daemon (scraped over TLS with basic auth)."""

from __future__ import annotations

import base64
import json
import re
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import promql_parser
import pytest
import tomllib
import yaml
from confluent_kafka import Producer
from fleet_topics import fleet_topics
from prometheus_client.parser import text_string_to_metric_families
from test_daemon_http import _key_and_cert, _write

from gpuledger.config import Config

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "deploy" / "kubernetes"
RULES = REPO / "deploy" / "monitoring" / "gpuledger-rules.yaml"
DASHBOARD = REPO / "deploy" / "monitoring" / "grafana-dashboard.json"
K8S_VERSION = "1.33"
START = 1_795_867_200  # 2026-11-28T12:00:00Z


def documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def manifests() -> dict[str, dict]:
    """kind -> resource, over every manifest file (one resource of each kind)."""
    out = {}
    for path in [*sorted(K8S.glob("*.yaml")), *sorted((K8S / "optional").glob("*.yaml"))]:
        for doc in documents(path):
            assert doc["kind"] not in out, f"two {doc['kind']} resources"
            out[doc["kind"]] = doc
    return out


def validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    tool = Path(sys.executable).parent / "kubernetes-validate"
    return subprocess.run(
        [str(tool), "-k", K8S_VERSION, "--strict", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_manifests_validate_against_the_kubernetes_schemas(tmp_path: Path) -> None:
    files = sorted(K8S.glob("*.yaml"))
    assert {f.name for f in files} >= {
        "statefulset.yaml",
        "configmap.yaml",
        "secret.example.yaml",
        "service.yaml",
    }
    proc = validate(*files)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("passed") == len(files), proc.stdout
    # The validator is not vacuous: a wrong type and an unknown field fail.
    sts = (K8S / "statefulset.yaml").read_text()
    for broken in (
        sts.replace("replicas: 2", "replicas: two"),
        sts.replace("readOnlyRootFilesystem: true", "readOnlyRootFileSystem: true"),
    ):
        bad = tmp_path / "bad.yaml"
        bad.write_text(broken)
        assert validate(bad).returncode != 0


def test_statefulset_service_and_servicemonitor_fit_together(tmp_path: Path) -> None:
    m = manifests()
    sts, svc, mon, cm = m["StatefulSet"], m["Service"], m["ServiceMonitor"], m["ConfigMap"]
    pod = sts["spec"]["template"]
    [c] = pod["spec"]["containers"]
    # Static membership: the instance id is the pod name.
    env = {e["name"]: e for e in c["env"]}
    instance = env["GPULEDGER_KAFKA__INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert instance == "metadata.name"
    # Probes on the daemon's own endpoints, on the metrics port.
    [port] = c["ports"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    # Non-root, read-only root filesystem.
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["runAsUser"] != 0
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= set(c["resources"]["requests"])
    assert "memory" in c["resources"]["limits"]
    # Writable paths are volumes.
    mounts = {v["mountPath"] for v in c["volumeMounts"]}
    assert {"/tmp", "/data/out"} <= mounts
    # The ConfigMap's file is a valid configuration that listens where the probes look; its
    # secrets file is where the Secret is mounted, and the example Secret's file parses.
    toml = tomllib.loads(cm["data"]["gpuledger.toml"])
    secrets_path = Path(toml["kafka"]["secrets_file"])
    [secret_volume] = [v for v in pod["spec"]["volumes"] if "secret" in v]
    [secret_mount] = [v for v in c["volumeMounts"] if v["name"] == secret_volume["name"]]
    assert secrets_path.parent == Path(secret_mount["mountPath"])
    assert [i["path"] for i in secret_volume["secret"]["items"]] == [secrets_path.name]
    secret_example = m["Secret"]["stringData"][secrets_path.name]
    (tmp_path / secrets_path.name).write_text(secret_example)
    toml["kafka"]["secrets_file"] = str(tmp_path / secrets_path.name)
    cfg = Config.from_dict(toml)
    assert cfg.kafka.client_settings()["sasl.password"] == "CHANGE-ME"
    assert "CHANGE-ME" not in repr(cfg)
    assert cfg.observability.metrics_port == port["containerPort"]
    assert cfg.observability.metrics_bind == "0.0.0.0"
    assert cfg.output.dir == "/data/out" and cfg.kafka.instance_id == ""
    # Service: governs the StatefulSet and selects its pods.
    assert sts["spec"]["serviceName"] == svc["metadata"]["name"]
    labels = pod["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in svc["spec"]["selector"].items())
    [svc_port] = svc["spec"]["ports"]
    assert svc_port["targetPort"] == port["name"] and svc_port["port"] == port["containerPort"]
    # ServiceMonitor (a CRD, no bundled schema): the fields the scrape relies on.
    assert mon["apiVersion"] == "monitoring.coreos.com/v1"
    svc_labels = svc["metadata"]["labels"]
    sel = mon["spec"]["selector"]["matchLabels"]
    assert sel and all(svc_labels.get(k) == v for k, v in sel.items())
    [endpoint] = mon["spec"]["endpoints"]
    assert endpoint["port"] == svc_port["name"] and endpoint["path"] == "/metrics"
    assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme"}
    assert re.fullmatch(r"\d+[smh]", endpoint["interval"])


# --- PromQL ---------------------------------------------------------------------------------


def rule_exprs() -> dict[str, str]:
    doc = yaml.safe_load(RULES.read_text())
    out = {}
    for group in doc["groups"]:
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            out[rule["alert"]] = rule["expr"]
    return out


def dashboard_exprs() -> dict[str, str]:
    dash = json.loads(DASHBOARD.read_text())
    out = {}
    for panel in dash["panels"]:
        for t in panel.get("targets", []):
            # Grafana's own variables, as Grafana would substitute them.
            expr = t["expr"].replace("$__rate_interval", "5m").replace("$__range", "1h")
            out[f"{panel['title']}/{t['refId']}"] = expr
    return out


def metric_names(expr: str) -> set[str]:
    names: set[str] = set()

    def visit(node: object) -> bool:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


REQUIRED_ALERTS = {
    "GpuledgerForgottenExperiment": "gpuledger_idle_streak",
    "GpuledgerTeamIdleShareHigh": "gpuledger_team_idle_cost",
    "GpuledgerSLOBurnFast": "gpuledger_service_slo_violations",
    "GpuledgerConsumerLagHigh": "gpuledger_consumer_lag",
    "GpuledgerOutputBlocked": "gpuledger_output_blocked",
    "GpuledgerDeadLettersRising": "gpuledger_messages_dead",
}


def test_rules_and_dashboard_parse() -> None:
    rules = rule_exprs()
    for alert, metric in REQUIRED_ALERTS.items():
        assert any(n.startswith(metric) for n in metric_names(rules[alert])), alert
    for where, expr in {**rules, **dashboard_exprs()}.items():
        assert metric_names(expr), f"{where}: names no metric"
    with pytest.raises(ValueError):  # the parser is not vacuous
        promql_parser.parse("sum(rate(gpuledger_messages_dead_total[5m])")
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] == "gpuledger" and dash["templating"]["list"][0]["type"] == "datasource"


# --- a running daemon's /metrics -------------------------------------------------------------


def exported(text: str) -> dict[str, int]:
    """Every sample name the exposition can carry -> samples it has now."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    out: dict[str, int] = {}
    for fam in text_string_to_metric_families(text):
        for sfx in suffixes.get(fam.type, ("",)):
            out.setdefault(fam.name + sfx, 0)
        for s in fam.samples:
            out[s.name] = out.get(s.name, 0) + 1
    return out


def scrape(port: int, ctx: ssl.SSLContext, auth: str) -> str:
    req = urllib.request.Request(f"https://127.0.0.1:{port}/metrics")
    req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    with urllib.request.urlopen(req, timeout=5, context=ctx) as r:
        return r.read().decode()


def test_every_metric_named_by_rules_and_dashboard_is_exported(
    kafka_bootstrap: str, make_topic, tmp_path: Path
) -> None:
    tel, lat = make_topic(partitions=2), make_topic(partitions=1)
    topics = fleet_topics(START, 420, telemetry=tel, latency=lat, partitions=2)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 20})
    for topic, parts in topics.items():
        for p, msgs in enumerate(parts):
            for value, ts in msgs:
                producer.produce(
                    topic, value, partition=p % (2 if topic == tel else 1), timestamp=ts
                )
    assert producer.flush(60) == 0

    cert, key = _write(tmp_path / "server", *_key_and_cert("localhost"))
    hashed = bcrypt.hashpw(b"s3cret-scrape", bcrypt.gensalt(4)).decode()
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "gpuledger.toml"
    config.write_text(
        f"""
[engine]
window_s = [60]
allowed_lateness_s = 5
idle_timeout_s = 2
max_future_s = 1e9
[idle]
ttl_s = 120
[services]
chat-llm = {{ slo_latency_ms = 90.0, slo_target = 0.95 }}
pods = [{{ pattern = "vllm-chat-*", service = "chat-llm" }}]
[kafka]
bootstrap_servers = "{kafka_bootstrap}"
group_id = "deploy-{tel}"
instance_id = "deploy-test-0"
[topics]
telemetry = "{tel}"
latency = "{lat}"
[output]
dir = "{tmp_path / "out"}"
[observability]
metrics_port = {port}
metrics_bind = "127.0.0.1"
log_format = "json"
status_interval_s = 0.5
[observability.web.tls_server_config]
cert_file = "{cert}"
key_file = "{key}"
[observability.web.basic_auth_users]
prometheus = "{hashed}"
[run]
flush_interval_s = 0.3
"""
    )
    wanted = {
        name: where
        for where, expr in {**rule_exprs(), **dashboard_exprs()}.items()
        for name in metric_names(expr)
    }
    ctx = ssl.create_default_context(cafile=cert)
    log = tmp_path / "daemon.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gpuledger", "run", "--config", str(config)], stderr=err
        )
        try:
            have: dict[str, int] = {}
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                time.sleep(0.5)
                assert proc.poll() is None, log.read_text()[-3000:]
                try:
                    have = exported(scrape(port, ctx, "prometheus:s3cret-scrape"))
                except (OSError, urllib.error.URLError):
                    continue
                if all(have.get(n, 0) > 0 for n in wanted):
                    break
            missing = sorted(n for n in wanted if n not in have)
            assert not missing, f"named by rules/dashboard, not exported: {missing}"
            empty = sorted(f"{n} ({wanted[n]})" for n in wanted if have[n] == 0)
            assert not empty, f"exported without samples: {empty}\n{log.read_text()[-2000:]}"
            with pytest.raises(urllib.error.HTTPError) as e:
                scrape(port, ctx, "prometheus:wrong")
            assert e.value.code == 401
        finally:
            proc.terminate()
            proc.wait(30)
    assert "s3cret-scrape" not in log.read_text() and hashed not in log.read_text()


def test_docker_compose_wires_kafka_s3_and_the_daemon() -> None:
    """No Docker here: the compose file's wiring is checked instead of run."""
    compose = yaml.safe_load((REPO / "compose" / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"kafka", "s3", "create-bucket", "gpuledger"} <= set(services)
    daemon = services["gpuledger"]
    env = daemon["environment"]
    s3 = services["s3"]["environment"]
    assert env["AWS_ENDPOINT_URL"] == "http://s3:80"
    assert s3["S3PROXY_ENDPOINT"].endswith(":80")
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == (
        s3["S3PROXY_IDENTITY"],
        s3["S3PROXY_CREDENTIAL"],
    )
    assert env["GPULEDGER_KAFKA__INSTANCE_ID"]
    assert daemon["depends_on"]["create-bucket"]["condition"] == "service_completed_successfully"
    assert daemon["read_only"] is True
    cfg = Config.from_dict(tomllib.loads((REPO / "compose" / "gpuledger.toml").read_text()))
    assert cfg.output.dir.startswith("s3://")
    bucket = cfg.output.dir.removeprefix("s3://").split("/")[0]
    assert f's3.create_dir("{bucket}")' in services["create-bucket"]["command"][2]
    assert cfg.kafka.bootstrap_servers == "kafka:9092"
    assert f"127.0.0.1:{cfg.observability.metrics_port}:" in daemon["ports"][0]
