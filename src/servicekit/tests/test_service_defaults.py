"""What `create_service_app` gives every service: problems, request ids, probes, logs, draining."""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sample_service import create_app

from servicekit.requests import access_level
from servicekit.testing import ServiceProcess, serve_in_thread

PROBLEM_JSON = "application/problem+json"


@pytest.fixture(scope="module")
def service() -> Iterator[httpx.Client]:
    with serve_in_thread(create_app()) as url, httpx.Client(base_url=url) as client:
        yield client


def test_probes_answer_without_touching_anything(service: httpx.Client) -> None:
    for path in ("/livez", "/readyz", "/healthz"):
        response = service.get(path)
        assert response.status_code == 200, path


def test_validation_problem_lists_each_field_at_fault(service: httpx.Client) -> None:
    response = service.post("/paint", json={"colour": "blue", "litres": -1})

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    problem = response.json()
    assert problem["status"] == 422
    assert problem["title"] == "Validation failed"
    assert {(e["field"], e["in"]) for e in problem["errors"]} == {
        ("colour", "body"),
        ("litres", "body"),
        ("ownerId", "body"),
    }
    assert problem["requestId"] == response.headers["x-request-id"]


def test_enum_values_are_accepted_in_any_case(service: httpx.Client) -> None:
    response = service.post("/paint", json={"colour": "gREEN", "litres": 2, "ownerId": "o"})

    assert response.status_code == 200
    assert response.json() == {"colour": "Green", "litres": 2.0, "ownerId": "o"}


@pytest.mark.parametrize("body", [b"{", b"not json", b'{"colour": "Red",}', b"\xff\xfe"])
def test_malformed_json_is_a_400_problem(service: httpx.Client, body: bytes) -> None:
    response = service.post("/paint", content=body, headers={"content-type": "application/json"})

    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["title"] == "Malformed JSON"


def test_unknown_route_and_wrong_method_are_problems(service: httpx.Client) -> None:
    missing = service.get("/nowhere")
    wrong = service.delete("/paint")

    assert (missing.status_code, missing.headers["content-type"]) == (404, PROBLEM_JSON)
    assert (wrong.status_code, wrong.headers["content-type"]) == (405, PROBLEM_JSON)
    assert wrong.headers["allow"] == "POST"


def test_a_wrong_method_is_told_every_method_the_path_allows(service: httpx.Client) -> None:
    # FastAPI makes one route per method; the 405 must name the methods of all of them (RFC 9110).
    for method in ("PUT", "OPTIONS", "TRACE"):
        response = service.request(method, "/paint/red")

        assert response.status_code == 405
        assert response.headers["allow"] == "DELETE, GET"
    # A concrete path is its own resource, though /paint/{id} would match it too.
    assert service.options("/paint/catalogue").headers["allow"] == "GET"


def test_a_concrete_path_is_not_taken_for_a_templated_one(service: httpx.Client) -> None:
    # DELETE /paint/{id} would take /paint/catalogue; as OpenAPI matches paths, it is not an id.
    removed = service.delete("/paint/catalogue")

    assert (removed.status_code, removed.headers["allow"]) == (405, "GET")
    assert removed.headers["content-type"] == PROBLEM_JSON
    assert removed.headers["x-request-id"]
    assert service.get("/paint/catalogue").json() == ["red", "green"]
    assert service.delete("/paint/red").status_code == 204


def test_a_route_can_answer_its_own_problem(service: httpx.Client) -> None:
    response = service.get("/teapot")

    assert response.status_code == 418
    assert response.json()["type"].endswith("/problems/teapot")
    assert response.json()["detail"] == "Short and stout."


def test_unexpected_error_is_a_500_without_internals(service: httpx.Client) -> None:
    response = service.get("/crash", headers={"X-Request-ID": "trace-me-1"})

    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.headers["x-request-id"] == "trace-me-1"
    assert response.json()["requestId"] == "trace-me-1"
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text


def test_store_outage_is_a_503_with_retry_after(service: httpx.Client) -> None:
    response = service.get("/store-down")

    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"] == PROBLEM_JSON


def test_request_id_is_kept_when_sane_and_replaced_when_not(service: httpx.Client) -> None:
    kept = service.get("/livez", headers={"X-Request-ID": "abc-123"})
    replaced = service.get("/livez", headers={"X-Request-ID": "bad id\twith spaces"})
    generated = service.get("/livez")

    assert kept.headers["x-request-id"] == "abc-123"
    assert replaced.headers["x-request-id"] not in ("", "bad id\twith spaces")
    assert len(generated.headers["x-request-id"]) == 32


def test_openapi_documents_problems_as_problem_json(service: httpx.Client) -> None:
    document = service.get("/openapi.json").json()

    responses = document["paths"]["/paint"]["post"]["responses"]
    assert set(responses) >= {"200", "400", "422", "500", "503"}
    for status in ("400", "422", "500", "503"):
        assert list(responses[status]["content"]) == [PROBLEM_JSON]
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_a_full_collection_walks_only_what_the_service_made_since_start_up() -> None:
    # The collector walks on the event loop: start-up's objects, walked every full collection,
    # held every request for 40-60 ms now and then.
    with serve_in_thread(create_app()) as url:
        assert httpx.get(f"{url}/livez").status_code == 200
        walked, out_of_reach = len(gc.get_objects()), gc.get_freeze_count()

    assert walked * 10 < out_of_reach
    assert gc.get_freeze_count() == 0, "a stopped service gives start-up's objects back"


def test_logs_are_json_lines_carrying_the_request_id(tmp_path: Path) -> None:
    with sample_process(tmp_path, {"SAMPLE_COSMOS_KEY": "not-for-logs"}) as service:
        httpx.get(f"{service.url}/teapot", headers={"X-Request-ID": "log-me-7"})
    text = service.log.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    access = [line for line in lines if line["logger"] == "servicekit.access"]
    assert access, lines
    assert access[0]["request_id"] == "log-me-7"
    assert access[0]["service"] == "sample"
    assert access[0]["http.status"] == 418
    starting = [line for line in lines if line["message"] == "sample 1.0 starting"]
    assert starting[0]["settings.store_url"] == "sqlite:///.data/sample.db"
    assert "not-for-logs" not in text, "secrets are masked in the settings logged at start"


@pytest.mark.parametrize(("level", "sdk_info_shown"), [("INFO", False), ("DEBUG", True)])
def test_the_azure_sdks_request_by_request_logs_show_only_when_debugging(
    level: str, sdk_info_shown: bool
) -> None:
    script = (
        "import logging\n"
        "from servicekit.logs import configure_logging\n"
        f"configure_logging('sample', {level!r})\n"
        "http = logging.getLogger('azure.cosmos._cosmos_http_logging_policy')\n"
        "http.info('Request URL: https://account.documents.azure.com/dbs/shipping')\n"
        "http.warning('the endpoint is unavailable')\n"
        "logging.getLogger('scheduler_service').info('fleet ready')\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    messages = [json.loads(line)["message"] for line in shown.splitlines()]

    assert "the endpoint is unavailable" in messages
    assert "fleet ready" in messages
    assert any(m.startswith("Request URL") for m in messages) is sdk_info_shown


def test_sigterm_drains_readiness_before_stopping(tmp_path: Path) -> None:
    with sample_process(tmp_path, {"SAMPLE_DRAIN_SECONDS": "1.5"}) as service:
        service.signal(signal.SIGTERM)
        time.sleep(0.3)
        ready = httpx.get(f"{service.url}/readyz")
        alive = httpx.get(f"{service.url}/livez")
        assert (ready.status_code, ready.json()) == (503, {"status": "draining"})
        assert alive.status_code == 200, "draining is not dying: work in flight goes on"
        service.process.wait(timeout=10)


def sample_process(tmp_path: Path, env: dict[str, str] | None = None) -> ServiceProcess:
    return ServiceProcess(
        "sample_service:app",
        env={**os.environ, "DATA_DIR": str(tmp_path), **(env or {})},
        cwd=Path(__file__).parent,
        log=tmp_path / "service.log",
    )


@pytest.mark.parametrize(
    ("path", "status", "level"),
    [
        ("/api/things/1", 200, logging.DEBUG),
        ("/api/things/1", 204, logging.DEBUG),
        ("/api/things/1", 404, logging.INFO),
        ("/api/things/1", 422, logging.INFO),
        ("/api/things/1", 503, logging.WARNING),
        ("/readyz", 200, logging.DEBUG),
        ("/readyz", 503, logging.WARNING),
    ],
)
def test_the_access_log_speaks_up_for_what_went_wrong(path: str, status: int, level: int) -> None:
    assert access_level(path, status) == level
