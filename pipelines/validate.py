"""Check the pipelines against the Azure Pipelines YAML schema.

    uv run python pipelines/validate.py --schema ../shared/schemas/azure-pipelines.schema.json

Each pipeline is checked twice: as written (its triggers, its `extends`), and expanded into the one
document the service runs, which is how the templates get checked (the schema cannot read
conditional insertion in a template on its own). The schema was written for an editor that sees
every YAML scalar as a string, so the files are read that way. Exits 1 when a file does not conform.

The schema names a few current tasks without describing them (it describes the deprecated
PublishCodeCoverageResults@1 but not @2), which would reject every use of them. A step running such
a task is checked for the shape every task step has, and the output says so.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from jsonschema import ValidationError, validators

from expand import TemplateError, expand, load_yaml

PIPELINES = Path(__file__).resolve().parent
DEFAULT_SCHEMA = PIPELINES.parent.parent / "shared" / "schemas" / "azure-pipelines.schema.json"


def undescribed_tasks(schema: dict[str, Any]) -> set[str]:
    """Tasks the schema names, and does not call deprecated, but gives no description of."""
    task = schema["definitions"]["task"]
    named = {
        name
        for choice in task["properties"]["task"]["anyOf"]
        if not choice.get("deprecationMessage")
        for name in choice.get("enum", [])
    }
    described = {
        choice["properties"]["task"]["pattern"].removeprefix("^").removesuffix("$")
        for choice in task["anyOf"]
        if "pattern" in choice.get("properties", {}).get("task", {})
    }
    return named - described


def accepting(schema: dict[str, Any], tasks: set[str]) -> dict[str, Any]:
    """A copy of the schema that takes a step running one of `tasks` with any inputs."""
    widened = copy.deepcopy(schema)
    for name in sorted(tasks):
        widened["definitions"]["task"]["anyOf"].append(
            {
                "properties": {
                    "task": {"pattern": f"^{re.escape(name)}$"},
                    "inputs": {"type": "object"},
                },
                "required": ["task"],
            }
        )
    return widened


def tasks_in(document: Any) -> Iterator[str]:
    """The name of every task a document runs."""
    if isinstance(document, dict):
        if isinstance(document.get("task"), str):
            yield document["task"]
        for value in document.values():
            yield from tasks_in(value)
    elif isinstance(document, list):
        for item in document:
            yield from tasks_in(item)


def _names_another_task(error: ValidationError) -> bool:
    return error.validator == "pattern" and list(error.absolute_path)[-1:] == ["task"]


def _leaves(error: ValidationError) -> list[ValidationError]:
    """The innermost reasons: the schema's `oneOf` at the root hides them behind one message.

    A step matches one of hundreds of task descriptions; those of other tasks only say "this is not
    that task", so they are left out, unless no description of the step's task exists at all.
    """
    if not error.context:
        return [error]
    alternatives: dict[object, list[ValidationError]] = {}
    for child in error.context:
        alternatives.setdefault(child.relative_schema_path[0], []).append(child)
    relevant = [
        child
        for children in alternatives.values()
        if not any(_names_another_task(child) for child in children)
        for child in children
    ]
    return [leaf for child in relevant or error.context for leaf in _leaves(child)]


def problems(schema: dict[str, Any], document: Any) -> list[str]:
    """What is wrong with `document`. The deepest failures come first: they name the culprit."""
    validator = validators.validator_for(schema)(schema)
    leaves = [leaf for error in validator.iter_errors(document) for leaf in _leaves(error)]
    leaves.sort(key=lambda leaf: -len(leaf.absolute_path))
    found: list[str] = []
    for leaf in leaves:
        where = "/".join(str(part) for part in leaf.absolute_path) or "(root)"
        message = f"{where}: {leaf.message}"
        if message not in found:
            found.append(message)
    return found


def main(arguments: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schema", type=Path, default=DEFAULT_SCHEMA)
    parser.add_argument("pipelines", type=Path, nargs="*", help="default: pipelines/*.yml")
    options = parser.parse_args(arguments)
    if not options.schema.is_file():
        print(f"no Azure Pipelines schema at {options.schema}", file=sys.stderr)
        return 2
    schema = json.loads(options.schema.read_text(encoding="utf-8"))
    undescribed = undescribed_tasks(schema)
    schema = accepting(schema, undescribed)
    failed = False
    for pipeline in options.pipelines or sorted(PIPELINES.glob("*.yml")):
        try:
            forms = {"as written": load_yaml(pipeline), "expanded": expand(pipeline)}
        except (OSError, yaml.YAMLError, TemplateError) as error:
            found = [str(error)]
        else:
            found = [
                f"({form}) {problem}"
                for form, document in forms.items()
                for problem in problems(schema, document)
            ]
            for task in sorted(undescribed.intersection(tasks_in(forms["expanded"]))):
                print(
                    f"note {pipeline.name}: the schema does not describe {task}; checked as a task"
                )
        failed = failed or bool(found)
        print(f"{'FAIL' if found else 'ok'} {pipeline}")
        for problem in found[:10]:
            print(f"  {problem}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
