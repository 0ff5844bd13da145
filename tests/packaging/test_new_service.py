"""`make new-service` makes a service that works as it is: its tests pass, its chart renders, it has a
pipeline, and the template's name is left nowhere it names the service."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COPIED = [
    "pyproject.toml",
    "uv.lock",
    "src/servicekit",
    "src/devstack",
    "src/shipping/package",
    "charts/common",
    "charts/package",
    "pipelines/package.yml",
]
LEFTOVERS = re.compile(r"package_service|package-service|PACKAGE_|PackageSettings|shipping/package")


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository holding the template and what it is built with."""
    copy = tmp_path_factory.mktemp("repository")
    ignore = shutil.ignore_patterns("__pycache__", ".data", "*.tgz")
    for relative in COPIED:
        source, target = ROOT / relative, copy / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=ignore)
        else:
            shutil.copy(source, target)
    subprocess.run(
        [sys.executable, "-m", "devstack", "new-service", "tracking"], cwd=copy, check=True
    )
    return copy


def test_the_template_name_is_gone_from_what_names_the_service(repository: Path) -> None:
    created = [repository / "src/shipping/tracking", repository / "charts/tracking"]
    files = [p for folder in created for p in folder.rglob("*") if p.is_file()]
    files.append(repository / "pipelines/tracking.yml")
    for path in files:
        assert not LEFTOVERS.search(path.read_text()), path
    assert (repository / "src/shipping/tracking/tracking_service/app.py").exists()
    assert '"src/shipping/tracking/tracking_service"' in (repository / "pyproject.toml").read_text()
    assert "release/tracking/v*" in (repository / "pipelines/tracking.yml").read_text()


def test_the_new_service_passes_its_tests(repository: Path) -> None:
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv, "uv runs the new service's tests (make test installs it)"
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(repository / ".venv")}
    env.pop("VIRTUAL_ENV", None)
    subprocess.run([uv, "lock", "--quiet"], cwd=repository, env=env, check=True, timeout=300)
    subprocess.run(
        [uv, "sync", "--quiet", "--all-packages"], cwd=repository, env=env, check=True, timeout=300
    )
    tests = subprocess.run(
        [
            str(repository / ".venv/bin/python"),
            "-m",
            "pytest",
            "src/shipping/tracking",
            "-q",
            "-p",
            "no:logging",
            # The template's own tests on PostgreSQL run in make test-backends; the copy's needn't.
            "-m",
            "not backend",
        ],
        cwd=repository,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert tests.returncode == 0, tests.stdout[-3000:]


def test_the_new_chart_renders(repository: Path) -> None:
    helm = ROOT / ".tools/k8s/bin/helm"
    if not helm.exists():
        if os.environ.get("CI"):
            pytest.fail("helm is missing: make k8s-tools installs it")
        pytest.skip("helm is not installed here (make k8s-tools)")
    chart = repository / "charts/tracking"
    subprocess.run([str(helm), "dependency", "build", str(chart)], check=True, capture_output=True)
    rendered = subprocess.run(
        [
            str(helm),
            "template",
            "tracking",
            str(chart),
            "-f",
            str(chart / "values-dev.yaml"),
            "-f",
            str(chart / "ci/installation.yaml"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "name: tracking" in rendered
    assert "TRACKING_ENVIRONMENT" in rendered
