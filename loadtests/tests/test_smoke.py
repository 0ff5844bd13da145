"""`make loadtest` and `make bench` for a few seconds each: they run, and write what they promise.

CI runs these (they are part of `make test`); each starts the system on free ports and stops it.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from loadtests.bench.report import REQUIRED, problems
from loadtests.loadtest import check_results
from servicekit.testing import free_port

pytestmark = pytest.mark.slow
REPOSITORY = Path(__file__).resolve().parents[2]


def local_ports(data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "GATEWAY_PORT": str(free_port()),
        "DELIVERY_PORT": str(free_port()),
        "PACKAGE_PORT": str(free_port()),
        "SCHEDULER_PORT": str(free_port()),
    }


def test_the_load_test_starts_the_system_and_reports_by_route(tmp_path: Path) -> None:
    results = tmp_path / "results"

    done = subprocess.run(
        [sys.executable, "-m", "loadtests.loadtest", "--smoke", "--results", str(results)],
        cwd=REPOSITORY,
        env=local_ports(tmp_path / "data"),
        capture_output=True,
        text=True,
        timeout=90,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert check_results(results) == []
    with (results / "loadtest_stats.csv").open(newline="") as file:
        routes = {row["Name"] for row in csv.DictReader(file)}
    assert "/api/deliveryrequests" in routes
    assert "every SLO held" in done.stderr


def test_the_benchmark_writes_its_numbers_and_the_machine(tmp_path: Path) -> None:
    if shutil.which("wrk") is None and not os.environ.get("CI"):
        pytest.skip("wrk is not installed (apt-get install wrk); CI installs it")
    out = tmp_path / "bench.json"

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtests.bench",
            "--smoke",
            "--out",
            str(out),
            "--work-dir",
            str(tmp_path / "work"),
        ],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads(out.read_text())
    assert problems(document) == []
    assert all(document[key] > 0 for key in REQUIRED[:-1])
    assert "read_ratio" in done.stdout
    # The interpreter measured on is the one that ran the benchmark, named by its real path.
    assert document["machine"]["python_executable"] == os.path.realpath(sys.executable)
