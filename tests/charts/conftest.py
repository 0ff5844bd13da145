"""The charts rendered for every environment, with the example installation (chart_rendering.py)."""

from __future__ import annotations

import pytest
import yaml
from chart_rendering import CHARTS, ENVIRONMENTS, WORKLOADS, Rendered, run_helm, template


@pytest.fixture(scope="session")
def dependencies_built() -> None:
    for chart in WORKLOADS:
        # Packages the library chart afresh into charts/<chart>/charts/, so edits to it count.
        result = run_helm("dependency", "build", "--skip-refresh", str(CHARTS / chart))
        assert result.returncode == 0, result.stderr


@pytest.fixture(scope="session")
def renderings(dependencies_built: None) -> dict[str, Rendered]:
    renderings = {}
    for environment in ENVIRONMENTS:
        by_chart = {}
        for chart in (*WORKLOADS, "shipping-platform"):
            result = template(chart, environment)
            assert result.returncode == 0, f"{chart} {environment}: {result.stderr}"
            by_chart[chart] = [m for m in yaml.safe_load_all(result.stdout) if m]
        renderings[environment] = Rendered(environment, by_chart)
    return renderings


@pytest.fixture(params=ENVIRONMENTS)
def rendered(request: pytest.FixtureRequest, renderings: dict[str, Rendered]) -> Rendered:
    return renderings[request.param]
