"""Rendering the charts with the real helm, for tests/charts.

helm comes from the Kubernetes tools environment (`make k8s-tools`, .tools/k8s). Without it these
tests are skipped, saying so, except in CI (CI=true), where a missing tool is a failure.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHARTS = ROOT / "charts"
TOOLS = Path(os.environ.get("K8S_TOOLS", ROOT / ".tools" / "k8s"))
WORKLOADS = ("delivery", "package", "scheduler", "gateway")
SERVICES = ("delivery", "package", "scheduler")
ENVIRONMENTS = ("dev", "qa", "staging", "prod")

Manifest = dict[str, Any]


def helm() -> str:
    binary = TOOLS / "bin" / "helm"
    if not binary.is_file():
        reason = f"helm is not installed in {TOOLS}: run `make k8s-tools`"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return str(binary)


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm(), *args], capture_output=True, text=True, timeout=60, check=False)


def template(
    chart: str, environment: str, *extra: str, installation: bool = True
) -> subprocess.CompletedProcess[str]:
    release, namespace = chart, f"shipping-{environment}"
    if chart == "shipping-platform":
        release, namespace = f"shipping-platform-{environment}", "shipping-platform"
    values = ["-f", str(CHARTS / chart / f"values-{environment}.yaml")]
    if installation:
        values += ["-f", str(CHARTS / chart / "ci" / "installation.yaml")]
    return run_helm(
        "template", release, str(CHARTS / chart), "--namespace", namespace, *values, *extra
    )


@dataclass(frozen=True)
class Rendered:
    """What one environment's namespace holds once the platform and every workload are installed."""

    environment: str
    by_chart: dict[str, list[Manifest]]

    @property
    def namespace(self) -> str:
        return f"shipping-{self.environment}"

    def all(self) -> Iterator[Manifest]:
        for manifests in self.by_chart.values():
            yield from manifests

    def of_kind(self, kind: str, chart: str | None = None) -> list[Manifest]:
        charts = [chart] if chart else list(self.by_chart)
        return [m for c in charts for m in self.by_chart[c] if m["kind"] == kind]

    def one(self, kind: str, chart: str, name: str | None = None) -> Manifest:
        found = [m for m in self.of_kind(kind, chart) if name in (None, m["metadata"]["name"])]
        assert len(found) == 1, f"{chart}: expected one {kind} {name or ''}, found {len(found)}"
        return found[0]


def installation(chart: str) -> Manifest:
    loaded: Manifest = yaml.safe_load((CHARTS / chart / "ci" / "installation.yaml").read_text())
    return loaded


def values(chart: str, environment: str) -> Manifest:
    """The chart's values for an environment, as helm merges them (maps merge, the rest replaces)."""
    merged: Manifest = {}
    for path in (
        CHARTS / chart / "values.yaml",
        CHARTS / chart / f"values-{environment}.yaml",
        CHARTS / chart / "ci" / "installation.yaml",
    ):
        merged = _merge(merged, yaml.safe_load(path.read_text()))
    return merged


def _merge(base: Manifest, override: Manifest) -> Manifest:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def quantity(value: str | int | float) -> float:
    """A Kubernetes quantity (cpu: 100m, 1, 0.5; memory: 64Mi, 1Gi) as a number."""
    text = str(value)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)
