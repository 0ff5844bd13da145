"""The expander turns a pipeline and its templates into the one document the service would run."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from expand import Expansion, TemplateError, expand


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
def component(tmp_path: Path) -> Path:
    """A pipeline extending a template that includes a steps template from a sub-folder."""
    write(
        tmp_path,
        "templates/flow.yml",
        """\
        parameters:
          - name: service
            type: string
          - name: usesServicekit
            type: boolean
          - name: pool
            type: string
            default: ubuntu-24.04
        pool:
          vmImage: ${{ parameters.pool }}
        stages:
          - stage: Build
            displayName: Build ${{ parameters.service }}
            ${{ if eq(parameters.service, 'gateway') }}:
              variables:
                - name: kind
                  value: nginx
            ${{ else }}:
              variables:
                - name: kind
                  value: python
            jobs:
              - job: Test
                steps:
                  - template: steps/test.yml
                    parameters:
                      folders:
                        - src/${{ parameters.service }}
                        - ${{ if parameters.usesServicekit }}:
                            - src/servicekit
        """,
    )
    write(
        tmp_path,
        "templates/steps/test.yml",
        """\
        parameters:
          - name: folders
            type: object
        steps:
          - bash: pytest ${{ join(' ', parameters.folders) }}
          - ${{ if gt(length(parameters.folders), 1) }}:
              - bash: echo "more than one folder"
        """,
    )
    return write(
        tmp_path,
        "delivery.yml",
        """\
        trigger:
          batch: true
        extends:
          template: templates/flow.yml
          parameters:
            service: delivery
            usesServicekit: true
        """,
    )


def test_a_pipeline_expands_through_its_templates(component: Path) -> None:
    expansion = Expansion(component)
    document = expansion.run()
    assert document["trigger"] == {
        "batch": "true"
    }  # scalars stay strings, as the service reads them
    assert document["pool"] == {"vmImage": "ubuntu-24.04"}  # a default fills an omitted parameter
    (build,) = document["stages"]
    assert build["displayName"] == "Build delivery"
    assert build["variables"] == [{"name": "kind", "value": "python"}]
    assert build["jobs"][0]["steps"] == [
        {"bash": "pytest src/delivery src/servicekit"},
        {"bash": 'echo "more than one folder"'},
    ]
    assert [path.relative_to(component.parent).as_posix() for path in expansion.files] == [
        "delivery.yml",
        "templates/flow.yml",
        "templates/steps/test.yml",
    ]


def test_a_false_condition_inserts_nothing(component: Path) -> None:
    text = component.read_text(encoding="utf-8")
    text = text.replace("service: delivery", "service: gateway").replace(
        "usesServicekit: true", "usesServicekit: False"
    )
    component.write_text(text, encoding="utf-8")
    (build,) = expand(component)["stages"]
    assert build["variables"] == [{"name": "kind", "value": "nginx"}]
    assert build["jobs"][0]["steps"] == [{"bash": "pytest src/gateway"}]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("service: delivery", "a value for the parameter 'usesServicekit' must be provided"),
        ("service: delivery\n    usesServicekit: perhaps", "usesServicekit is a boolean"),
        ("service: [a, b]\n    usesServicekit: true", "service is a string, not a list"),
        (
            "service: x\n    usesServicekit: true\n    colour: red",
            "unexpected parameters ['colour']",
        ),
    ],
)
def test_arguments_are_checked_against_the_declarations(
    component: Path, arguments: str, message: str
) -> None:
    text = component.read_text(encoding="utf-8")
    start = text.index("service: delivery")
    component.write_text(text[:start] + arguments + "\n", encoding="utf-8")
    with pytest.raises(TemplateError, match=message.replace("[", r"\[").replace("]", r"\]")):
        expand(component)


def test_a_missing_template_names_the_including_file(tmp_path: Path) -> None:
    pipeline = write(tmp_path, "p.yml", "steps:\n  - template: steps/absent.yml\n")
    with pytest.raises(TemplateError, match=r"p\.yml: template steps/absent\.yml does not exist"):
        expand(pipeline)


@pytest.mark.parametrize(
    "construct",
    ["${{ each folder in parameters.folders }}", "${{ insert }}"],
)
def test_an_unsupported_construct_is_an_error_not_a_misreading(
    tmp_path: Path, construct: str
) -> None:
    pipeline = write(
        tmp_path,
        "p.yml",
        f"parameters:\n  - name: folders\n    type: object\n    default: [a]\n"
        f"steps:\n  - {construct}:\n      - bash: echo\n",
    )
    with pytest.raises(TemplateError, match="is not supported"):
        expand(pipeline)


def test_else_without_if_is_an_error(tmp_path: Path) -> None:
    pipeline = write(tmp_path, "p.yml", "steps:\n  - ${{ else }}:\n      - bash: echo\n")
    with pytest.raises(TemplateError, match="without an if before it"):
        expand(pipeline)
