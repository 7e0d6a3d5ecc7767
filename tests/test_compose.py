"""The production compose file is valid against the Compose specification."""

from __future__ import annotations

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
