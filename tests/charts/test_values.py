"""The values: schemas current, installation facts required, environments kept apart."""

from __future__ import annotations

import importlib.util
import json

import pytest
from chart_rendering import CHARTS, WORKLOADS, template

pytestmark = pytest.mark.slow


def test_the_committed_schemas_are_the_generated_ones() -> None:
    spec = importlib.util.spec_from_file_location("values_schema", CHARTS / "values_schema.py")
    assert spec is not None
    assert spec.loader is not None
    values_schema = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(values_schema)
    for chart, schema in values_schema.schemas().items():
        committed = json.loads((CHARTS / chart / "values.schema.json").read_text())
        assert committed == schema, f"run: uv run python charts/values_schema.py ({chart})"


@pytest.mark.usefixtures("dependencies_built")
@pytest.mark.parametrize("chart", WORKLOADS)
def test_without_the_installation_facts_nothing_renders(chart: str) -> None:
    result = template(chart, "prod", installation=False)
    assert result.returncode != 0
    assert "/image/digest" in result.stderr
    assert "/image/registry" in result.stderr


@pytest.mark.usefixtures("dependencies_built")
def test_a_deployed_environment_is_never_development() -> None:
    result = template("package", "dev", "--set", "environment=development")
    assert result.returncode != 0
    assert "/environment" in result.stderr


@pytest.mark.usefixtures("dependencies_built")
def test_the_package_store_url_cannot_slip_into_plain_settings() -> None:
    result = template("package", "prod", "--set", "env.PACKAGE_STORE_URL=sqlite:///x.db")
    assert result.returncode != 0
    assert "PACKAGE_STORE_URL" in result.stderr


@pytest.mark.usefixtures("dependencies_built")
def test_the_gateway_never_runs_fewer_than_two_replicas() -> None:
    result = template("gateway", "prod", "--set", "autoscaling.minReplicas=1")
    assert result.returncode != 0
    assert "minReplicas" in result.stderr
