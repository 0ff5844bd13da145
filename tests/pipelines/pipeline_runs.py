"""What Azure Pipelines would do with the project's pipelines: which pushes trigger them, which
stages a run executes, and the steps and scripts inside. The pipelines are expanded with
pipelines/expand.py first, so every test sees what the service would run."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from expand import expand, load_yaml
from expressions import Value, evaluate, to_bool

ROOT = Path(__file__).resolve().parents[2]
PIPELINES = ROOT / "pipelines"
SERVICES = ("delivery", "package", "scheduler", "gateway")

# The variables a run starts with that the pipelines read, as Azure predefines them.
PREDEFINED = (
    "Agent.OS",
    "Agent.TempDirectory",
    "Build.ArtifactStagingDirectory",
    "Build.BuildId",
    "Build.Reason",
    "Build.Repository.Uri",
    "Build.SourceBranch",
    "Build.SourcesDirectory",
    "Build.SourceVersion",
    "Common.TestResultsDirectory",
    "Pipeline.Workspace",
)


def pipeline_file(service: str) -> Path:
    return PIPELINES / f"{service}.yml"


@cache
def written(service: str) -> dict[str, Any]:
    """The pipeline file as written (its triggers)."""
    document: dict[str, Any] = load_yaml(pipeline_file(service))
    return document


@cache
def expanded(service: str) -> dict[str, Any]:
    """The pipeline as the service runs it."""
    return expand(pipeline_file(service))


def _wildcard(pattern: str) -> re.Pattern[str]:
    # In branch filters `*` matches any characters, `/` included, and `?` one character.
    translated = "".join(
        ".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern
    )
    return re.compile(translated, re.IGNORECASE)


def branch_filter_matches(filters: Mapping[str, Any], branch: str) -> bool:
    """Whether a push to `branch` (refs/heads/...) passes `branches: {include, exclude}`."""
    name = branch.removeprefix("refs/heads/")

    def matches(pattern: str) -> bool:
        return _wildcard(pattern.removeprefix("refs/heads/")).fullmatch(name) is not None

    included = any(matches(pattern) for pattern in filters.get("include", []))
    return included and not any(matches(pattern) for pattern in filters.get("exclude", []))


def path_filter_matches(filters: Mapping[str, Any], changed: str) -> bool:
    """Whether a change to the file `changed` passes `paths: {include, exclude}`: a filter without
    wildcards names a file or a folder, and a folder takes everything below it."""

    def matches(pattern: str) -> bool:
        return changed == pattern or changed.startswith(pattern + "/")

    included = any(matches(pattern) for pattern in filters.get("include", []))
    return included and not any(matches(pattern) for pattern in filters.get("exclude", []))


@dataclass(frozen=True)
class Run:
    """What started a run: Build.Reason and Build.SourceBranch."""

    reason: str
    source_branch: str

    @classmethod
    def push(cls, branch: str) -> Run:
        return cls("BatchedCI", f"refs/heads/{branch}")

    @classmethod
    def pull_request(cls, number: int = 7) -> Run:
        return cls("PullRequest", f"refs/pull/{number}/merge")

    @property
    def variables(self) -> dict[str, Value]:
        return {"Build.Reason": self.reason, "Build.SourceBranch": self.source_branch}


def _status(results: list[str]) -> dict[str, Any]:
    """The status functions of a condition, answering for the dependencies' results."""
    return {
        "succeeded": lambda: all(result == "Succeeded" for result in results),
        "failed": lambda: any(result == "Failed" for result in results),
        "succeededOrFailed": lambda: all(result in ("Succeeded", "Failed") for result in results),
        "always": lambda: True,
        "canceled": lambda: False,
    }


def stages(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = document["stages"]
    return found


def stage(document: Mapping[str, Any], name: str) -> dict[str, Any]:
    return next(candidate for candidate in stages(document) if candidate["stage"] == name)


def dependencies(document: Mapping[str, Any], name: str) -> list[str]:
    """A stage's dependencies: by default the stage before it."""
    names = [candidate["stage"] for candidate in stages(document)]
    declared = stage(document, name).get("dependsOn")
    if declared is None:
        index = names.index(name)
        return names[index - 1 : index]
    return [declared] if isinstance(declared, str) else list(declared)


def stages_that_run(document: Mapping[str, Any], run: Run) -> list[str]:
    """The stages a run executes when every stage that runs succeeds."""
    results: dict[str, str] = {}
    for candidate in stages(document):
        name = candidate["stage"]
        needed = [results[dependency] for dependency in dependencies(document, name)]
        condition = candidate.get("condition", "succeeded()")
        runs = to_bool(evaluate(condition, {"variables": run.variables}, _status(needed)))
        results[name] = "Succeeded" if runs else "Skipped"
    return [name for name, result in results.items() if result == "Succeeded"]


def step_runs(step: Mapping[str, Any], run: Run) -> bool:
    """Whether a step runs when every step before it succeeded."""
    condition = step.get("condition", "succeeded()")
    return to_bool(evaluate(condition, {"variables": run.variables}, _status([])))


def jobs(stage_: Mapping[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = stage_["jobs"]
    return found


def job_steps(job: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A job's steps; a deployment job's are in its strategy's hooks, in the order they run."""
    if "steps" in job:
        found: list[dict[str, Any]] = job["steps"]
        return found
    hooks = job["strategy"]["runOnce"]
    order = ("preDeploy", "deploy", "routeTraffic", "postRouteTraffic")
    return [step for hook in order if hook in hooks for step in hooks[hook]["steps"]]


def all_steps(document: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every step of the pipeline with the stage it belongs to."""
    for stage_ in stages(document):
        for job in jobs(stage_):
            for step in job_steps(job):
                yield stage_["stage"], step


def script_of(step: Mapping[str, Any]) -> str | None:
    """The Bash a step runs: a bash step's, or an Azure CLI step's inline script."""
    if "bash" in step:
        script: str = step["bash"]
        return script
    inputs = step.get("inputs", {})
    if step.get("task", "").startswith("AzureCLI@") and inputs.get("scriptType") == "bash":
        inline: str = inputs["inlineScript"]
        return inline
    return None


def step_named(steps: list[dict[str, Any]], display_name_part: str) -> dict[str, Any]:
    matching = [step for step in steps if display_name_part in step.get("displayName", "")]
    assert len(matching) == 1, f"one step named like {display_name_part!r}, found {matching}"
    return matching[0]
