"""The branch flow: what each kind of run does, in which order, against which environment.

feature/*                  Build
pull requests, main        Build, Image (build + scan)
release/<service>/vX.Y.Z   Build, Image, Publish, QA, approval, Production
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

import pytest

from pipeline_runs import (
    SERVICES,
    Run,
    dependencies,
    expanded,
    job_steps,
    jobs,
    script_of,
    stage,
    stages,
    stages_that_run,
    step_named,
    step_runs,
)

EVERY_STAGE = ["Build", "Image", "Publish", "QA", "Production"]


def release(service: str, version: str = "1.4.0") -> Run:
    return Run.push(f"release/{service}/v{version}")


@pytest.mark.parametrize("service", SERVICES)
def test_the_stages_in_order(service: str) -> None:
    assert [candidate["stage"] for candidate in stages(expanded(service))] == EVERY_STAGE


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize(
    ("run", "expected"),
    [
        (Run.push("feature/route-planning"), ["Build"]),
        (Run("IndividualCI", "refs/heads/feature/route-planning"), ["Build"]),
        (Run("Manual", "refs/heads/feature/route-planning"), ["Build"]),
        (Run.pull_request(), ["Build", "Image"]),
        (Run.push("main"), ["Build", "Image"]),
        (Run("Manual", "refs/heads/main"), ["Build", "Image"]),
    ],
    ids=["feature", "feature-single-push", "feature-manual", "pull-request", "main", "main-manual"],
)
def test_what_a_run_does(service: str, run: Run, expected: list[str]) -> None:
    assert stages_that_run(expanded(service), run) == expected


@pytest.mark.parametrize("service", SERVICES)
def test_a_release_branch_ships_all_the_way(service: str) -> None:
    assert stages_that_run(expanded(service), release(service)) == EVERY_STAGE


@pytest.mark.parametrize("service", SERVICES)
def test_another_services_release_branch_ships_nothing_of_this_one(service: str) -> None:
    # Its trigger ignores the branch; run by hand on it, the pipeline only builds and tests.
    other = next(name for name in SERVICES if name != service)
    assert stages_that_run(expanded(service), release(other)) == ["Build"]


@pytest.mark.parametrize("service", SERVICES)
def test_nothing_ships_from_a_pull_request_built_from_a_release_branch(service: str) -> None:
    # A pull request runs on its merge ref, whatever branch it comes from.
    assert "Publish" not in stages_that_run(expanded(service), Run.pull_request())


@pytest.mark.parametrize("service", SERVICES)
def test_qa_before_production(service: str) -> None:
    document = expanded(service)
    assert dependencies(document, "QA") == ["Publish"]
    # Production waits for QA and reads the release version from Publish.
    assert sorted(dependencies(document, "Production")) == ["Publish", "QA"]


def _deployment(service: str, stage_name: str) -> dict[str, Any]:
    (job,) = jobs(stage(expanded(service), stage_name))
    return job


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize(
    ("stage_name", "environment", "values"),
    [("QA", "shipping-qa", "values-qa.yaml"), ("Production", "shipping-prod", "values-prod.yaml")],
)
def test_each_deployment_is_bound_to_its_environment(
    service: str, stage_name: str, environment: str, values: str
) -> None:
    job = _deployment(service, stage_name)
    # A deployment job: the environment's approvals and checks gate it.
    assert "deployment" in job
    assert job["environment"] == environment
    deploy = step_named(job_steps(job), "Deploy")
    script = script_of(deploy) or ""
    assert "helm upgrade" in script
    for flag in ("--install", "--atomic", "--wait"):
        assert flag in script
    assert deploy["env"]["NAMESPACE"] == environment
    assert deploy["env"]["VALUES_FILE"] == values
    assert deploy["env"]["VERSION"] == "$(releaseVersion)"
    assert "helm test" in (script_of(step_named(job_steps(job), "helm test")) or "")


@pytest.mark.parametrize("service", SERVICES)
def test_production_promotes_what_qa_tested(service: str) -> None:
    hooks = _deployment(service, "Production")["strategy"]["runOnce"]
    (promote,) = [step for step in hooks["preDeploy"]["steps"] if "task" in step]
    assert "az acr import" in (script_of(promote) or "")
    assert promote["env"]["SOURCE_REGISTRY"] == "$(qaRegistryName)"
    assert promote["env"]["TARGET_REGISTRY"] == "$(prodRegistryName)"
    deploy = step_named(hooks["deploy"]["steps"], "Deploy")
    assert deploy["env"]["REGISTRY_NAME"] == "$(prodRegistryName)"
    # QA deploys what Publish pushed, with nothing to promote.
    assert "preDeploy" not in _deployment(service, "QA")["strategy"]["runOnce"]


@pytest.mark.parametrize("service", SERVICES)
def test_the_image_is_scanned_and_fails_on_high_or_critical(service: str) -> None:
    (job,) = jobs(stage(expanded(service), "Image"))
    scan = script_of(step_named(job_steps(job), "Scan the image")) or ""
    gate = next(line for line in scan.splitlines() if "--exit-code 1" in line)
    assert "trivy image" in gate
    assert "--severity HIGH,CRITICAL" in gate


@pytest.mark.parametrize("service", SERVICES)
def test_only_a_release_keeps_the_scanned_image(service: str) -> None:
    (job,) = jobs(stage(expanded(service), "Image"))
    kept = [step_named(job_steps(job), "Save the scanned image")]
    kept.append(step_named(job_steps(job), "Keep the scanned image"))
    for step in kept:
        assert step_runs(step, release(service))
        assert not step_runs(step, Run.push("main"))
        assert not step_runs(step, Run.pull_request())


@pytest.mark.parametrize("service", SERVICES)
def test_the_release_version_travels_from_publish_to_the_deployments(service: str) -> None:
    document = expanded(service)
    (release_job,) = jobs(stage(document, "Publish"))
    (version_step,) = [step for step in job_steps(release_job) if step.get("name") == "version"]
    assert "variable=releaseVersion;isOutput=true" in (script_of(version_step) or "")
    reference = (
        f"$[ stageDependencies.Publish.{release_job['job']}.outputs['version.releaseVersion'] ]"
    )
    for deploying in ("QA", "Production"):
        variables = stage(document, deploying)["variables"]
        assert {"name": "releaseVersion", "value": reference} in variables
    publishing = [step for step in job_steps(release_job) if "VERSION" in step.get("env", {})]
    assert publishing, "the publishing steps read the version"
    for step in publishing:
        assert step["env"]["VERSION"] == "$(version.releaseVersion)"


def _derive_version(service: str, branch: str) -> subprocess.CompletedProcess[str]:
    (release_job,) = jobs(stage(expanded(service), "Publish"))
    (step,) = [step for step in job_steps(release_job) if step.get("name") == "version"]
    bash = shutil.which("bash")
    assert bash is not None
    env = {**os.environ, **step["env"], "SOURCE_BRANCH": branch}
    return subprocess.run(
        [bash, "-c", step["bash"]], env=env, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("version", ["1.4.0", "0.1.0", "10.20.30"])
def test_the_version_is_the_release_branchs_name(service: str, version: str) -> None:
    derived = _derive_version(service, f"refs/heads/release/{service}/v{version}")
    assert derived.returncode == 0, derived.stdout
    assert f"##vso[task.setvariable variable=releaseVersion;isOutput=true]{version}\n" in (
        derived.stdout
    )


@pytest.mark.parametrize(
    "branch",
    [
        "refs/heads/release/delivery/v1.4",
        "refs/heads/release/delivery/v1.4.0-rc.1",
        "refs/heads/release/delivery/v01.4.0",
        "refs/heads/release/delivery/1.4.0",
        "refs/heads/release/package/v1.4.0",
        "refs/heads/main",
    ],
)
def test_a_branch_that_is_not_a_release_of_the_service_releases_nothing(branch: str) -> None:
    derived = _derive_version("delivery", branch)
    assert derived.returncode == 1
    assert "##vso[task.logissue type=error]" in derived.stdout
    assert "isOutput=true" not in derived.stdout
