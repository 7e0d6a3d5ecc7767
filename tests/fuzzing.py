"""Schemathesis (its CLI, ``schemathesis.cli run``) against an app served on a real socket.

The run is bounded twice: ``--max-examples`` per operation and ``--max-time`` for the whole
run (schemathesis repeats fuzzing until the time is spent). Its JSON report says how many
operations and test cases it ran and what failed.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Everything the OpenAPI promises about answers, and that invalid input is refused. Not
# ``positive_data_acceptance``: a condition must compile as CEL and a cron expression must
# parse, rules a JSON schema cannot state, so schema-valid bodies do get 422s.
CHECKS = "all"
EXCLUDED_CHECKS = "positive_data_acceptance"


@dataclass
class FuzzRun:
    seed: int
    returncode: int
    output: str
    report: dict[str, Any]
    seconds: float

    @property
    def summary(self) -> str:
        ops = self.report.get("operations", {})
        cases = self.report.get("test_cases", {})
        return (
            f"schemathesis seed {self.seed}: {ops.get('tested')} operations, "
            f"{cases.get('generated')} test cases, {self.seconds:.1f}s"
        )

    @property
    def failures(self) -> list[dict[str, Any]]:
        return list(self.report.get("failures", [])) + list(self.report.get("errors", []))

    def explain(self) -> str:
        return f"{self.summary}\n{self.output[-12_000:]}"


def toml_config(
    path: Path,
    *,
    dictionaries: dict[str, list[str]],
    parameters: dict[str, tuple[str, float]],
) -> Path:
    """A schemathesis.toml that draws path parameters from known values (existing trigger
    ids, user names) with the given probability, and generates the rest."""
    lines = []
    for name, values in dictionaries.items():
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}", ""]
    lines.append("[parameters]")
    for key, (dictionary, probability) in parameters.items():
        lines.append(f'"{key}" = {{ dictionary = "{dictionary}", probability = {probability} }}')
    path.write_text("\n".join(lines) + "\n")
    return path


async def run_schemathesis(
    base_url: str,
    workdir: Path,
    *,
    max_time: int,
    max_examples: int,
    headers: dict[str, str] | None = None,
    config: Path | None = None,
    extra: tuple[str, ...] = (),
) -> FuzzRun:
    # TRIGGERS_FUZZ_SEED replays a run; TRIGGERS_FUZZ_SCALE=10 fuzzes ten times as long.
    seed = int(os.environ.get("TRIGGERS_FUZZ_SEED") or random.randrange(2**31))
    scale = float(os.environ.get("TRIGGERS_FUZZ_SCALE") or 1)
    max_time, max_examples = round(max_time * scale), round(max_examples * scale)
    report = workdir / f"schemathesis-{seed}.json"
    args = [sys.executable, "-m", "schemathesis.cli"]
    if config is not None:
        args += ["--config-file", str(config)]
    args += [
        "run",
        f"{base_url}/openapi.json",
        "--checks",
        CHECKS,
        "--exclude-checks",
        EXCLUDED_CHECKS,
        "--max-examples",
        str(max_examples),
        "--max-time",
        str(max_time),
        "--seed",
        str(seed),
        "--workers",
        "1",
        "--request-timeout",
        "15",
        "--generation-database",
        "none",
        "--no-color",
        "--report",
        "json",
        "--report-json-path",
        str(report),
        *extra,
    ]
    for name, value in (headers or {}).items():
        args += ["--header", f"{name}: {value}"]
    loop = asyncio.get_running_loop()
    started = loop.time()
    proc = await asyncio.create_subprocess_exec(
        *args,
        cwd=workdir,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    # The app answers from this process's event loop: await, never block it.
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=max_time + 60)
    assert proc.returncode is not None
    data = json.loads(report.read_text()) if report.exists() else {}
    return FuzzRun(seed, proc.returncode, out.decode(errors="replace"), data, loop.time() - started)
