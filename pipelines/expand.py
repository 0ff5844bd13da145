"""Expand an Azure Pipelines file into the single document the service runs.

Before a run starts, the service follows `extends` and every `template:` reference, binds and
type-checks the templates' parameters, substitutes `${{ }}` expressions and applies conditional
insertion (`${{ if }}`, `${{ elseif }}`, `${{ else }}`). This module does the same for the
constructs the project's pipelines use, so that the expanded document can be checked against the
schema and its stages and conditions tested without a round trip to Azure DevOps. A construct it
does not know (`${{ each }}`, `${{ insert }}`) is an error rather than a silent misreading.

YAML is read with every scalar as a string, as the service reads it; a parameter's declared type
turns `true` into a boolean, and nothing else does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import yaml

from expressions import ExpressionError, Value, evaluate, to_bool, to_str

_EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
_DIRECTIVE = re.compile(r"^\$\{\{\s*(if|elseif|else|each|insert)\b(.*?)\}\}$", re.DOTALL)
_TEMPLATE_LISTS = ("stages", "jobs", "steps", "variables")


class TemplateError(ValueError):
    """A file that the service would refuse to expand, with the file named in the message."""


def load_yaml(path: Path) -> Any:
    """The file's YAML with every scalar a string (no `true`, `1.0` or `null` guessing)."""
    with path.open(encoding="utf-8") as stream:
        return yaml.load(stream, Loader=yaml.BaseLoader)  # noqa: S506 (BaseLoader builds no objects)


class Expansion:
    """Expands one pipeline file; `files` then lists every file it read, templates included."""

    def __init__(self, pipeline: Path) -> None:
        self.pipeline = pipeline
        self.files: list[Path] = []

    def run(self) -> dict[str, Any]:
        document = self._read(self.pipeline)
        extends = document.pop("extends", None)
        if extends is None:
            parameters = _bind(self.pipeline, document.pop("parameters", []), {})
            return cast("dict[str, Any]", self._node(document, self.pipeline, parameters))
        body = self._template(
            self.pipeline, extends["template"], extends.get("parameters", {}), parameters={}
        )
        return {**document, **body}

    def _read(self, path: Path) -> dict[str, Any]:
        self.files.append(path)
        document = load_yaml(path)
        if not isinstance(document, dict):
            raise TemplateError(f"{path}: a pipeline or template is a mapping")
        return document

    def _template(
        self,
        including: Path,
        reference: str,
        arguments: Any,
        parameters: Mapping[str, Value],
    ) -> dict[str, Any]:
        """Expands the template `reference`, named relative to the file that includes it."""
        path = (including.parent / reference).resolve()
        if not path.is_file():
            raise TemplateError(f"{including}: template {reference} does not exist")
        bound_arguments = self._node(arguments, including, parameters)
        document = self._read(path)
        declared = document.pop("parameters", [])
        bound = _bind(path, declared, bound_arguments)
        return cast("dict[str, Any]", self._node(document, path, bound))

    def _node(self, node: Any, file: Path, parameters: Mapping[str, Value], key: str = "") -> Any:
        if isinstance(node, str):
            return _substitute(node, file, parameters)
        if isinstance(node, list):
            return self._sequence(node, file, parameters, key)
        if isinstance(node, dict):
            return self._mapping(node, file, parameters)
        return node

    def _mapping(
        self, node: dict[str, Any], file: Path, parameters: Mapping[str, Value]
    ) -> dict[str, Any]:
        expanded: dict[str, Any] = {}
        for value in self._conditional(list(node.items()), file, parameters):
            name, content = value
            if _DIRECTIVE.match(name):
                inserted = self._node(content, file, parameters)
                if not isinstance(inserted, dict):
                    raise TemplateError(f"{file}: {name} inserts into a mapping, so holds one")
                expanded.update(inserted)
            else:
                key = to_str(_substitute(name, file, parameters))
                expanded[key] = self._node(content, file, parameters, key)
        return expanded

    def _sequence(
        self, node: list[Any], file: Path, parameters: Mapping[str, Value], key: str
    ) -> list[Any]:
        items: list[tuple[str, Any]] = []
        for item in node:
            if isinstance(item, dict) and len(item) == 1 and _DIRECTIVE.match(next(iter(item))):
                items.append(next(iter(item.items())))
            else:
                items.append(("", item))
        expanded: list[Any] = []
        for name, item in self._conditional(items, file, parameters):
            if name:  # the content of a conditional insertion, spliced into the sequence
                inserted = self._node(item, file, parameters, key)
                expanded.extend(inserted if isinstance(inserted, list) else [inserted])
            elif key in _TEMPLATE_LISTS and isinstance(item, dict) and "template" in item:
                extra = set(item) - {"template", "parameters"}
                if extra:
                    raise TemplateError(f"{file}: a template reference takes no {sorted(extra)}")
                body = self._template(
                    file, item["template"], item.get("parameters", {}), parameters
                )
                if set(body) != {key}:
                    raise TemplateError(f"{file}: {item['template']} must hold only {key}")
                expanded.extend(body[key])
            else:
                expanded.append(self._node(item, file, parameters, key))
        return expanded

    def _conditional(
        self, entries: list[tuple[str, Any]], file: Path, parameters: Mapping[str, Value]
    ) -> list[tuple[str, Any]]:
        """The entries that survive `${{ if }}` chains; a directive keeps its key, to be spliced."""
        kept: list[tuple[str, Any]] = []
        chain_taken: bool | None = None  # None: no if/elseif chain is open
        for name, content in entries:
            directive = _DIRECTIVE.match(name)
            if directive is None:
                chain_taken = None
                kept.append((name, content))
                continue
            kind, condition = directive.group(1), directive.group(2).strip()
            if kind in ("each", "insert"):
                raise TemplateError(f"{file}: ${{{{ {kind} }}}} is not supported here")
            if kind == "if":
                chain_taken = False
            elif chain_taken is None:
                raise TemplateError(f"{file}: {name} without an if before it")
            if chain_taken:
                continue
            if kind == "else":
                taken = True
                chain_taken = None
            else:
                taken = to_bool(_evaluate(condition, file, parameters))
                chain_taken = taken
            if taken:
                kept.append((name, content))
        return kept


def _evaluate(expression: str, file: Path, parameters: Mapping[str, Value]) -> Value:
    try:
        return evaluate(expression, {"parameters": dict(parameters), "variables": {}})
    except ExpressionError as error:
        raise TemplateError(f"{file}: {error}") from None


def _substitute(text: str, file: Path, parameters: Mapping[str, Value]) -> Value:
    """A string holding one whole expression becomes its value (a list stays a list)."""
    whole = _EXPRESSION.fullmatch(text.strip())
    if whole is not None and not _DIRECTIVE.match(text.strip()):
        return _evaluate(whole.group(1).strip(), file, parameters)
    return _EXPRESSION.sub(
        lambda match: to_str(_evaluate(match.group(1).strip(), file, parameters)), text
    )


_SCALAR_TYPES = {"string", "number", "boolean"}


def _bind(file: Path, declared: Any, arguments: Any) -> dict[str, Value]:
    """The template's parameters: each argument checked against its declaration, defaults filled."""
    if not isinstance(declared, list) or not isinstance(arguments, dict):
        raise TemplateError(f"{file}: parameters are a list of declarations")
    names = {declaration["name"] for declaration in declared}
    unexpected = set(arguments) - names
    if unexpected:
        raise TemplateError(f"{file}: unexpected parameters {sorted(unexpected)}")
    bound: dict[str, Value] = {}
    for declaration in declared:
        name, kind = declaration["name"], declaration.get("type", "string")
        if name in arguments:
            value = arguments[name]
        elif "default" in declaration:
            value = declaration["default"]
        else:
            raise TemplateError(f"{file}: a value for the parameter {name!r} must be provided")
        bound[name] = _typed(file, name, kind, value)
        allowed = declaration.get("values")
        if allowed is not None and bound[name] not in allowed:
            raise TemplateError(f"{file}: {name} must be one of {allowed}, not {bound[name]!r}")
    return bound


def _typed(file: Path, name: str, kind: str, value: Any) -> Value:
    if kind in _SCALAR_TYPES and isinstance(value, list | dict):
        raise TemplateError(f"{file}: {name} is a {kind}, not a {type(value).__name__}")
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if to_str(value).casefold() not in ("true", "false"):
            raise TemplateError(f"{file}: {name} is a boolean, not {value!r}")
        return to_str(value).casefold() == "true"
    if kind == "number":
        try:
            return float(value) if "." in to_str(value) else int(value)
        except ValueError:
            raise TemplateError(f"{file}: {name} is a number, not {value!r}") from None
    if kind == "string":
        return to_str(value)
    return cast("Value", value)


def expand(pipeline: Path) -> dict[str, Any]:
    """The pipeline as the service runs it: one document, no templates, no template expressions."""
    return Expansion(pipeline).run()
