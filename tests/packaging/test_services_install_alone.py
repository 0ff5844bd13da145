"""Each service installs alone, from the lock file, with only servicekit beside it, and starts.

This is the install recipe of the service images (the last `uv sync` of the service's Dockerfile,
`uv sync --frozen --no-dev --package <service> --no-editable`, over a copy of the repository holding
only that service and servicekit), run here where no image can be built, so that a service that
quietly imports a sibling fails before it ships.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from dockerfiles import uv_sync_commands

from servicekit.testing import ServiceProcess

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {
    "delivery": ("delivery-service", "delivery_service"),
    "package": ("package-service", "package_service"),
    "scheduler": ("scheduler-service", "scheduler_service"),
}


def uv() -> str:
    found = os.environ.get("UV") or shutil.which("uv")
    if not found:
        pytest.fail("uv is needed to install a service alone (make test installs it)")
    return found


@pytest.fixture(params=sorted(SERVICES))
def installed_alone(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path]:
    service = request.param
    distribution, _ = SERVICES[service]
    source = tmp_path / "src-copy"
    (source / "src" / "shipping").mkdir(parents=True)
    for name in ("pyproject.toml", "uv.lock"):
        shutil.copy(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("tests", "__pycache__", ".data")
    shutil.copytree(ROOT / "src" / "servicekit", source / "src" / "servicekit", ignore=ignore)
    shutil.copytree(
        ROOT / "src" / "shipping" / service, source / "src" / "shipping" / service, ignore=ignore
    )
    venv = tmp_path / "venv"
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv)}
    env.pop("VIRTUAL_ENV", None)
    # The image's own command, read from its Dockerfile, so the two cannot drift apart.
    install = uv_sync_commands(ROOT / "src" / "shipping" / service / "Dockerfile")[-1]
    assert distribution in install
    subprocess.run(
        [uv(), *install[1:], "--quiet"],
        cwd=source,
        env=env,
        check=True,
        timeout=300,
    )
    shutil.rmtree(source)  # nothing may be imported from the copy: the venv must stand alone
    return service, venv


def test_service_installs_alone_and_serves(
    installed_alone: tuple[str, Path], tmp_path: Path
) -> None:
    service, venv = installed_alone
    _, module = SERVICES[service]
    site_packages = next((venv / "lib").glob("python*/site-packages"))
    assert (site_packages / module).is_dir()
    for _, sibling in SERVICES.values():
        if sibling != module:
            assert not (site_packages / sibling).exists(), f"{service} pulled in {sibling}"

    workdir = tmp_path / "run"
    workdir.mkdir()
    with ServiceProcess(
        f"{module}.app:app",
        env={"PATH": os.defpath, "HOME": str(tmp_path)},
        cwd=workdir,
        log=tmp_path / "service.log",
        python=str(venv / "bin" / "python"),
    ) as process:
        openapi = httpx.get(f"{process.url}/openapi.json")
    assert openapi.status_code == 200
    assert openapi.json()["paths"], "the service's routes are there"
