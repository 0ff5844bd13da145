"""pipelines/validate.py passes the project's pipelines and fails a broken one, naming the fault.

The schema is not part of the project: it is read where it lies beside the repository
(../shared/schemas/), or where AZURE_PIPELINES_SCHEMA points.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from pipeline_runs import ROOT
from validate import main

SCHEMA = Path(
    os.environ.get(
        "AZURE_PIPELINES_SCHEMA",
        ROOT.parent / "shared" / "schemas" / "azure-pipelines.schema.json",
    )
)

pytestmark = pytest.mark.skipif(
    not SCHEMA.is_file(), reason=f"no Azure Pipelines schema at {SCHEMA}"
)


def write(folder: Path, text: str) -> Path:
    path = folder / "pipeline.yml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_the_projects_pipelines_conform(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--schema", str(SCHEMA)]) == 0
    output = capsys.readouterr().out
    for service in ("delivery", "package", "scheduler", "gateway"):
        assert f"ok {ROOT / 'pipelines' / service}.yml" in output


def test_a_path_filter_with_slashes_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline = write(
        tmp_path,
        """\
        trigger:
          paths:
            include:
              - /src/shipping/delivery/
        steps:
          - bash: echo
        """,
    )
    assert main(["--schema", str(SCHEMA), str(pipeline)]) == 1
    output = capsys.readouterr().out
    assert "FAIL" in output
    assert "trigger/paths/include/0: '/src/shipping/delivery/' does not match" in output


def test_a_misspelt_task_input_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pipeline = write(
        tmp_path,
        """\
        steps:
          - task: AzureCLI@2
            inputs:
              azureSubscription: drone-delivery-qa
              scriptTyp: bash
              inlineScript: az version
        """,
    )
    assert main(["--schema", str(SCHEMA), str(pipeline)]) == 1
    assert "'scriptTyp' was unexpected" in capsys.readouterr().out


def test_a_task_the_schema_names_but_does_not_describe_is_taken_and_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline = write(
        tmp_path,
        """\
        steps:
          - task: PublishCodeCoverageResults@2
            inputs:
              summaryFileLocation: coverage.xml
        """,
    )
    assert main(["--schema", str(SCHEMA), str(pipeline)]) == 0
    assert "does not describe PublishCodeCoverageResults@2" in capsys.readouterr().out


def test_a_missing_schema_is_an_error(tmp_path: Path) -> None:
    assert main(["--schema", str(tmp_path / "absent.json")]) == 2
