"""`make new-service NAME=...`: a new service, its chart and its pipeline, copied from the package service.

The package service is the template: the smallest service, with everything a service has. The copy
keeps its domain (packages) as a working example to replace, and takes the new name everywhere the
service is named: the module, the distribution, the settings prefix and class, the store file, the
image, the chart, the release, the identity, the secrets and the pipeline. docs/new-service.md says
what to do next.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

TEMPLATE = "package"
_NAME = re.compile(r"^[a-z][a-z0-9]{1,19}$")
_SKIPPED = shutil.ignore_patterns("__pycache__", ".data", ".mypy_cache", "*.tgz", "Chart.lock")


class ScaffoldError(ValueError):
    pass


def service_renamer(name: str) -> Callable[[str], str]:
    """Rename the template service's identifiers in its code, leaving its domain words alone."""
    replacements = {
        "package_service": f"{name}_service",
        "package-service": f"{name}-service",
        "PACKAGE_": f"{name.upper()}_",
        "PackageSettings": f"{name.capitalize()}Settings",
        'service_name: ClassVar[str] = "package"': f'service_name: ClassVar[str] = "{name}"',
        '"package.db"': f'"{name}.db"',
        "src/shipping/package": f"src/shipping/{name}",
        "shipping/package:": f"shipping/{name}:",
        "package service": f"{name} service",
    }
    pattern = re.compile("|".join(re.escape(old) for old in replacements))
    return lambda text: pattern.sub(lambda m: replacements[m.group(0)], text)


def deployment_renamer(name: str) -> Callable[[str], str]:
    """Rename the service wherever a chart or pipeline names it: there, 'package' is only a name."""
    lower = re.compile(r"(?<![A-Za-z])package(?![a-z])")
    upper = re.compile(r"(?<![A-Za-z])PACKAGE(?![A-Z])")
    return lambda text: upper.sub(name.upper(), lower.sub(name, text))


def new_service(root: Path, name: str) -> list[Path]:
    """Create the service; answer the folders and files created."""
    if not _NAME.fullmatch(name):
        raise ScaffoldError(f"a service name is 2-20 lower-case letters and digits: {name!r}")
    targets = {
        root / "src" / "shipping" / TEMPLATE: root / "src" / "shipping" / name,
        root / "charts" / TEMPLATE: root / "charts" / name,
        root / "pipelines" / f"{TEMPLATE}.yml": root / "pipelines" / f"{name}.yml",
    }
    for target in targets.values():
        if target.exists():
            raise ScaffoldError(f"{target.relative_to(root)} exists already")

    service, chart, pipeline = targets.values()
    _copy(root / "src" / "shipping" / TEMPLATE, service, service_renamer(name))
    (service / f"{TEMPLATE}_service").rename(service / f"{name}_service")
    _copy(root / "charts" / TEMPLATE, chart, deployment_renamer(name))
    pipeline.write_text(
        deployment_renamer(name)((root / "pipelines" / f"{TEMPLATE}.yml").read_text())
    )
    _register_for_type_checks(root / "pyproject.toml", name)
    # The new name sorts elsewhere among the imports: let the project's formatter place them.
    for command in (["check", "--fix", "--select", "I", "--quiet"], ["format", "--quiet"]):
        subprocess.run([sys.executable, "-m", "ruff", *command, str(service)], cwd=root, check=True)
    return [service, chart, pipeline]


def _copy(source: Path, target: Path, rename: Callable[[str], str]) -> None:
    shutil.copytree(source, target, ignore=_SKIPPED)
    for path in target.rglob("*"):
        if path.is_file():
            try:
                text = path.read_text()
            except UnicodeDecodeError:
                continue
            path.write_text(rename(text))


def _register_for_type_checks(pyproject: Path, name: str) -> None:
    text = pyproject.read_text()
    entry = f'    "src/shipping/{TEMPLATE}/{TEMPLATE}_service",\n'
    if entry not in text:
        raise ScaffoldError(
            f"{pyproject.name} no longer lists the template for mypy; add the service"
        )
    pyproject.write_text(
        text.replace(entry, entry + f'    "src/shipping/{name}/{name}_service",\n', 1)
    )
