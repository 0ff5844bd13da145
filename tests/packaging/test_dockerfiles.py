"""The images, read from their Dockerfiles (no image can be built here; CI's pipelines build them)."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
from dockerfiles import ROOT, stages, uv_sync_commands

SERVICES = sorted(p.parent.name for p in (ROOT / "src" / "shipping").glob("*/Dockerfile"))
PINNED = re.compile(r"^[a-z0-9./-]+:[0-9][A-Za-z0-9._-]*$")  # a version tag, never latest


def dockerfile(service: str) -> Path:
    return ROOT / "src" / "shipping" / service / "Dockerfile"


def test_every_service_has_an_image() -> None:
    assert {"delivery", "package", "scheduler"} <= set(SERVICES)


@pytest.mark.parametrize("service", SERVICES)
def test_the_builder_installs_the_service_alone_from_the_lock_file(service: str) -> None:
    distribution = f"{service}-service"
    dependencies, project = uv_sync_commands(dockerfile(service))
    assert dependencies == [
        *["uv", "sync", "--frozen", "--no-dev", "--package", distribution],
        "--no-install-workspace",
    ]
    assert project == [
        *["uv", "sync", "--frozen", "--no-dev", "--package", distribution],
        "--no-editable",
    ]
    builder = next(s for s in stages(dockerfile(service)) if s.name == "builder")
    copies = builder.arguments("COPY")
    # The dependency layer sees the lock and the two pyprojects only; the sources come after it.
    assert copies[1:5] == [
        "pyproject.toml uv.lock ./",
        "src/servicekit/pyproject.toml src/servicekit/",
        f"src/shipping/{service}/pyproject.toml src/shipping/{service}/",
        "src/servicekit/ src/servicekit/",
    ]
    assert copies[5] == f"src/shipping/{service}/ src/shipping/{service}/"


@pytest.mark.parametrize("service", SERVICES)
def test_the_runtime_is_the_pinned_slim_python_running_uvicorn_unprivileged(service: str) -> None:
    all_stages = stages(dockerfile(service))
    python = all_stages[0]
    assert python.name == "python"
    assert PINNED.match(python.base)
    assert python.base.startswith("python:3.11.")
    assert "-slim" in python.base
    runtime = all_stages[-1]
    assert runtime.base == "python"
    assert runtime.arguments("COPY") == ["--from=builder /opt/venv /opt/venv"], "only the venv"
    (user,) = runtime.arguments("USER")
    uid, _, gid = user.partition(":")
    assert int(uid) >= 10000
    assert int(gid) >= 10000
    environment = " ".join(runtime.arguments("ENV"))
    for variable in ("PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1", "HOME=/tmp"):
        assert variable in environment
    (command,) = runtime.arguments("CMD")
    argv = json.loads(command)  # exec form: uvicorn is PID 1 and gets SIGTERM itself
    module = tomllib.loads((dockerfile(service).parent / "pyproject.toml").read_text())
    assert argv[:2] == ["uvicorn", f"{service}_service.app:app"]
    assert module["project"]["name"] == f"{service}-service"
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    assert argv[argv.index("--port") + 1] == "8080"
    assert "--proxy-headers" in argv


def test_the_package_image_carries_the_sql_server_odbc_driver() -> None:
    runtime = stages(dockerfile("package"))[-1]
    install = " ".join(runtime.arguments("RUN"))
    assert "packages.microsoft.com/keys/microsoft.asc" in install
    assert (
        "ACCEPT_EULA=Y apt-get install -y --no-install-recommends msodbcsql18 unixodbc" in install
    )
    assert "rm -rf /var/lib/apt/lists/*" in install
    for service in set(SERVICES) - {"package"}:
        assert "msodbcsql18" not in dockerfile(service).read_text()


def test_the_gateway_image_renders_the_template_and_runs_nginx_unprivileged() -> None:
    (only,) = stages(ROOT / "src" / "gateway" / "Dockerfile")
    assert only.base.startswith("nginxinc/nginx-unprivileged:")
    assert PINNED.match(only.base)
    assert "src/gateway/nginx.conf.template /etc/nginx/drone-delivery/nginx.conf.template" in (
        only.arguments("COPY")
    )
    (user,) = only.arguments("USER")
    assert int(user.partition(":")[0]) >= 10000
    assert json.loads(only.arguments("ENTRYPOINT")[0]) == ["/usr/local/bin/gateway-entrypoint"]


def test_the_build_context_holds_only_what_the_images_install() -> None:
    patterns = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert patterns[0] == "*", "an allow-list: nothing enters the context unless named"
    assert set(patterns) >= {"!pyproject.toml", "!uv.lock", "!src/", "src/**/tests/"}
