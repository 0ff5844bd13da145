"""Which pushes and pull requests start which pipeline: one pipeline per component, each started
only by changes to what goes into that component's image and chart."""

from __future__ import annotations

import pytest

from pipeline_runs import SERVICES, branch_filter_matches, path_filter_matches, written

PYTHON_SERVICES = ("delivery", "package", "scheduler")


@pytest.mark.parametrize("service", SERVICES)
def test_pushes_are_batched(service: str) -> None:
    # While a run is in progress, further pushes to its branch wait and run as one.
    assert written(service)["trigger"]["batch"] == "true"


@pytest.mark.parametrize("service", SERVICES)
def test_pull_requests_use_the_push_filters(service: str) -> None:
    trigger, pr = written(service)["trigger"], written(service)["pr"]
    assert pr["branches"] == trigger["branches"]
    assert pr["paths"] == trigger["paths"]


@pytest.mark.parametrize("service", SERVICES)
def test_branch_filters(service: str) -> None:
    branches = written(service)["trigger"]["branches"]
    assert branches == {
        "include": ["main", "feature/*", f"release/{service}/v*"],
        "exclude": ["feature/experimental/*"],
    }


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize(
    ("branch", "starts"),
    [
        ("main", True),
        ("feature/route-planning", True),
        ("feature/team-a/route-planning", True),
        ("feature/experimental/new-gateway", False),
        ("release/{service}/v1.4.0", True),
        ("release/{other}/v1.4.0", False),
        ("develop", False),
        ("hotfix/v1.4.1", False),
    ],
)
def test_which_branches_start_a_run(service: str, branch: str, starts: bool) -> None:
    other = next(name for name in SERVICES if name != service)
    pushed = f"refs/heads/{branch.format(service=service, other=other)}"
    assert branch_filter_matches(written(service)["trigger"]["branches"], pushed) is starts


@pytest.mark.parametrize("service", SERVICES)
def test_path_filters_are_written_as_the_service_reads_them(service: str) -> None:
    for filters in (written(service)["trigger"]["paths"], written(service)["pr"]["paths"]):
        for path in filters["include"]:
            assert not path.startswith("/"), path
            assert not path.endswith("/"), path


@pytest.mark.parametrize("service", PYTHON_SERVICES)
def test_a_service_is_built_from_its_folder_its_chart_servicekit_and_the_lock(service: str) -> None:
    assert written(service)["trigger"]["paths"]["include"] == [
        f"src/shipping/{service}",
        "src/servicekit",
        f"charts/{service}",
        "charts/common",
        "pyproject.toml",
        "uv.lock",
        f"pipelines/{service}.yml",
        "pipelines/templates",
    ]


def test_the_gateway_is_built_from_its_folder_and_chart_only() -> None:
    assert written("gateway")["trigger"]["paths"]["include"] == [
        "src/gateway",
        "charts/gateway",
        "charts/common",
        "pipelines/gateway.yml",
        "pipelines/templates",
    ]


CHANGES = {
    "src/shipping/delivery/delivery_service/api.py": {"delivery"},
    "src/shipping/package/Dockerfile": {"package"},
    "src/shipping/scheduler/tests/test_fleet.py": {"scheduler"},
    "src/servicekit/servicekit/clients.py": {"delivery", "package", "scheduler"},
    "src/gateway/nginx.conf.template": {"gateway"},
    "charts/common/templates/_deployment.tpl": set(SERVICES),
    "charts/scheduler/values-prod.yaml": {"scheduler"},
    "uv.lock": {"delivery", "package", "scheduler"},
    "pipelines/templates/service.yml": set(SERVICES),
    "pipelines/gateway.yml": {"gateway"},
    "docs/ci-cd.md": set(),
    "README.md": set(),
}


@pytest.mark.parametrize(("changed", "started"), CHANGES.items())
def test_a_change_starts_the_pipelines_of_what_it_ships_in(changed: str, started: set[str]) -> None:
    assert {
        service
        for service in SERVICES
        if path_filter_matches(written(service)["trigger"]["paths"], changed)
    } == started
