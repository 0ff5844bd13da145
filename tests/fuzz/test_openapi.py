"""Schemathesis over every service's OpenAPI document, and over the public API through the gateway.

Each operation gets generated requests, valid and invalid (the examples, coverage, fuzzing and
stateful phases), and every answer is checked against the document: no server error, a documented
status code, the documented content type, headers and schema, invalid requests refused, 405s that
name the allowed methods. FUZZ_MAX_EXAMPLES bounds the examples per operation (10 by default, as
in CI; `make fuzz` runs 100).

One check is left out: `positive_data_acceptance`, which expects every request the schema allows
to be accepted. Some rules cannot be said in JSON Schema, so a request it allows may rightly be
refused: a deadline already passed, a delivery id in the body that differs from the path's, a weight
over the limit a deployment configures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.stack import Stack

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "10"))
EXCLUDED_CHECKS = "positive_data_acceptance"

# The public API: what the gateway routes to the delivery service (docs/gateway.md).
PUBLIC_OPERATIONS = (
    "POST /api/deliveryrequests",
    "PATCH /api/deliveryrequests/{id}",
    "DELETE /api/deliveryrequests/{id}",
    "GET /api/deliveries/summary",
    "GET /api/deliveries/{id}",
    "GET /api/deliveries/{id}/status",
    "GET /api/deliveries/{id}/events",
    "GET /api/deliveries/{id}/owner",
    "POST /api/deliveries/{id}/notifymerequests",
)


def schemathesis(
    request: pytest.FixtureRequest, name: str, schema_url: str, *options: str
) -> subprocess.CompletedProcess[str]:
    # Its artefacts (the cases to replay, hypothesis's examples) go under .data/fuzz/<name>.
    workdir = request.config.rootpath / ".data" / "fuzz" / name
    workdir.mkdir(parents=True, exist_ok=True)
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        schema_url,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--exclude-checks",
        EXCLUDED_CHECKS,
        "--workers",
        "1",
        "--request-timeout",
        "15",
        "--no-color",
        *options,
    ]
    return subprocess.run(
        command,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false"},
    )


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("service", ["delivery", "package", "scheduler"])
def test_each_service_keeps_to_its_openapi_document(
    request: pytest.FixtureRequest, fuzz_stack: Stack, service: str
) -> None:
    base = fuzz_stack.service_url(service)

    run = schemathesis(request, service, f"{base}/openapi.json")

    assert run.returncode == 0, run.stdout[-20_000:] + run.stderr[-2_000:]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_public_api_keeps_to_its_document_through_the_gateway(
    request: pytest.FixtureRequest, fuzz_stack: Stack, tmp_path: Path
) -> None:
    document = httpx.get(f"{fuzz_stack.service_url('delivery')}/openapi.json").json()
    public = tmp_path / "public-openapi.json"
    public.write_text(json.dumps(public_document(document)))

    run = schemathesis(request, "gateway", str(public), "--url", fuzz_stack.gateway_url)

    assert run.returncode == 0, run.stdout[-20_000:] + run.stderr[-2_000:]
    assert f"Selected: {len(PUBLIC_OPERATIONS)}/{len(PUBLIC_OPERATIONS)}" in run.stdout, run.stdout


def public_document(document: dict[str, Any]) -> dict[str, Any]:
    """The delivery service's document cut down to the public API: what a client of the gateway sees."""
    paths: dict[str, Any] = {}
    for path, item in document["paths"].items():
        public = {
            key: value
            for key, value in item.items()
            if key not in HTTP_METHODS or f"{key.upper()} {path}" in PUBLIC_OPERATIONS
        }
        if any(key in HTTP_METHODS for key in public):
            paths[path] = public
    return {**document, "paths": paths}


HTTP_METHODS = frozenset(("get", "put", "post", "delete", "options", "head", "patch", "trace"))
