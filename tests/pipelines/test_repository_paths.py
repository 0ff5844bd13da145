"""Every path a pipeline names exists, so that renaming a folder breaks this test rather than
silently stopping a pipeline from triggering, or breaking it on the build agent."""

from __future__ import annotations

from pathlib import Path

import pytest

from expand import Expansion
from pipeline_runs import (
    PIPELINES,
    ROOT,
    SERVICES,
    all_steps,
    expanded,
    pipeline_file,
    written,
)

# Parts of the repository written in parallel with the pipelines, in other branches. While one is
# absent from this tree, the paths inside it are excused; once it exists, every path the pipelines
# name inside it must exist too. Empty this list once they are all merged.
PENDING = {
    "src/shipping/delivery": "the delivery service is written in its own branch",
    "src/shipping/scheduler": "the scheduler service is written in its own branch",
    "src/gateway": "the gateway is written in its own branch",
    "charts": "the Helm charts are written in their own branch",
    "src/shipping/package/Dockerfile": "the service images are written with the charts",
}


def named_paths(service: str) -> set[str]:
    """The repository paths a pipeline depends on: its path filters and what its steps read."""
    paths = set(written(service)["trigger"]["paths"]["include"])
    paths |= set(written(service)["pr"]["paths"]["include"])
    for _, step in all_steps(expanded(service)):
        env = step.get("env", {})
        if "DOCKERFILE" in env:
            paths.add(env["DOCKERFILE"])
        if "FOLDERS" in env and "RESULTS" in env:  # the unit tests
            paths |= {f"{folder}/tests" for folder in env["FOLDERS"].split()}
        if "VALUES_FILE" in env:  # read from the released chart, packaged from charts/<service>
            paths.add(f"charts/{service}/{env['VALUES_FILE']}")
    return paths


def _excuse(path: str) -> str | None:
    for pending, reason in PENDING.items():
        inside = path == pending or path.startswith(pending + "/")
        if inside and not (ROOT / pending).exists():
            return f"{path}: {pending} is not in this tree yet ({reason})"
    return None


@pytest.mark.parametrize(
    ("service", "path"),
    sorted((service, path) for service in SERVICES for path in named_paths(service)),
)
def test_the_path_exists(service: str, path: str) -> None:
    if not (ROOT / path).exists():
        excuse = _excuse(path)
        if excuse is not None:
            pytest.skip(excuse)
        pytest.fail(f"pipelines/{service}.yml names {path}, which does not exist")


def test_every_template_is_used() -> None:
    used: set[Path] = set()
    for service in SERVICES:
        expansion = Expansion(pipeline_file(service))
        expansion.run()
        used |= set(expansion.files)
    templates = set((PIPELINES / "templates").rglob("*.yml"))
    assert templates - used == set()


def test_there_is_a_pipeline_for_every_component() -> None:
    assert sorted(path.stem for path in PIPELINES.glob("*.yml")) == sorted(SERVICES)
