"""The production compose file is valid against the Compose specification."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from ruamel.yaml import YAML  # check-jsonschema reads YAML with it too

ROOT = Path(__file__).resolve().parent.parent


def test_compose_file_is_valid() -> None:
    tool = shutil.which("check-jsonschema") or str(
        Path(sys.executable).with_name("check-jsonschema")
    )
    out = subprocess.run(
        [tool, "--builtin-schema", "vendor.compose-spec", str(ROOT / "docker-compose.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    for command in ("api", "worker", "db"):
        assert f'["{command}"' in (ROOT / "docker-compose.yml").read_text()


def test_the_container_api_shows_a_public_url() -> None:
    """In a container the API listens on 0.0.0.0: webhook URLs need TRIGGERS_PUBLIC_URL."""
    compose = YAML(typ="safe").load((ROOT / "docker-compose.yml").read_text())
    api = compose["services"]["api"]["environment"]
    assert api["TRIGGERS_PUBLIC_URL"] == "${TRIGGERS_PUBLIC_URL:-http://localhost:8000}"
    assert api["TRIGGERS_DATABASE_URL"].startswith("postgresql+asyncpg://")  # the shared env
    dockerfile = (ROOT / "Dockerfile").read_text().splitlines()
    assert "ENV TRIGGERS_API_HOST=0.0.0.0" in dockerfile
    assert "ENV TRIGGERS_PUBLIC_URL=http://localhost:8000" in dockerfile


# The Temporal SDK's metrics the dashboard uses (names as the SDK's buffer reports them,
# seen in tests/test_metrics.py's scrapes and the SDK's metric reference).
SDK_METRICS = {
    "temporal_workflow_task_schedule_to_start_latency",
    "temporal_activity_schedule_to_start_latency",
    "temporal_worker_task_slots_available",
}
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "triggers.json"


def _our_series() -> set[str]:
    """Every series name the service's registry can show (a counter as ``<name>_total``, a
    histogram as ``_bucket``, ``_count``, ``_sum``)."""
    from triggers.infra.metrics import Metrics

    out: set[str] = set()
    for family in Metrics().registry.collect():
        if family.type == "counter":
            out.add(f"{family.name}_total")
        elif family.type == "histogram":
            out |= {f"{family.name}_{s}" for s in ("bucket", "count", "sum")}
        else:
            out.add(family.name)
    return out


def test_prometheus_and_grafana_are_in_the_stack() -> None:
    compose = YAML(typ="safe").load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    worker_env = services["worker"]["environment"]
    port = int(worker_env["TRIGGERS_WORKER_METRICS_PORT"])
    assert worker_env["TRIGGERS_WORKER_METRICS_HOST"] == "0.0.0.0"
    # Prometheus gets the config that scrapes the API and the worker on those ports.
    prom = services["prometheus"]
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prom["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    config_path = ROOT / "deploy" / "prometheus" / "prometheus.yml"
    config = YAML(typ="safe").load(config_path.read_text())
    targets = {
        job["job_name"]: (job["dns_sd_configs"][0]["names"], job["dns_sd_configs"][0]["port"])
        for job in config["scrape_configs"]
    }
    assert targets == {"triggers-api": (["api"], 8000), "triggers-worker": (["worker"], port)}
    assert all(j.get("metrics_path", "/metrics") == "/metrics" for j in config["scrape_configs"])
    # Grafana is provisioned with the datasource and the folder the dashboard lives in.
    grafana = services["grafana"]
    volumes = dict(v.rsplit(":", 1)[0].split(":", 1) for v in grafana["volumes"])
    assert volumes["./deploy/grafana/dashboards"] == "/var/lib/grafana/dashboards"
    assert volumes["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    (source,) = YAML(typ="safe").load(
        (provisioning / "datasources" / "prometheus.yml").read_text()
    )["datasources"]
    assert source["url"] == "http://prometheus:9090" and source["uid"] == "prometheus"
    (provider,) = YAML(typ="safe").load((provisioning / "dashboards" / "triggers.yml").read_text())[
        "providers"
    ]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_the_dashboard_queries_only_metrics_that_exist() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]} == {
        "prometheus"
    }
    used = {m for e in exprs for m in re.findall(r"\b(?:triggers|temporal)_[a-z_]+\b", e)}
    ours = _our_series()
    sdk = {f"{n}_{s}" for n in SDK_METRICS for s in ("bucket", "count", "sum")} | SDK_METRICS
    assert used and used <= ours | sdk, sorted(used - ours - sdk)
    # What the issue asks the dashboard to show.
    for name in (
        "triggers_events_received_total",
        "triggers_runs_started_total",
        "triggers_events_filtered_total",
        "triggers_duplicates_total",
        "triggers_latency_seconds_bucket",
        "triggers_source_state",
    ):
        assert name in used, name
    assert any("histogram_quantile(0.5," in e for e in exprs)
    assert any("histogram_quantile(0.99," in e for e in exprs)
