"""The end to end's check that no delivery waited for a drone, read from an access log that
servicekit writes (in a process of its own, as the scheduler does)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from loadtests.bench.run import NoDroneFreeAnswers

ANSWER = """
import asyncio, json, sys
from servicekit.logs import configure_logging
from servicekit.requests import RequestContextMiddleware

configure_logging("scheduler")

async def answer(method, path, status):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})
    async def receive():
        return {"type": "http.request", "body": b""}
    async def send(message):
        pass
    scope = {"type": "http", "method": method, "path": path, "headers": []}
    await RequestContextMiddleware(app)(scope, receive, send)

for method, path, status in json.loads(sys.argv[1]):
    asyncio.run(answer(method, path, status))
"""


def answer(log: Path, *answers: tuple[str, str, int]) -> None:
    with log.open("a") as output:
        subprocess.run(
            [sys.executable, "-c", ANSWER, json.dumps(answers)], stdout=output, check=True
        )


def test_counts_the_assignments_answered_no_drone_free_since_a_position(tmp_path: Path) -> None:
    log = tmp_path / "scheduler.log"
    answers = NoDroneFreeAnswers(log)
    assert (answers.position(), answers.since(0)) == (0, 0), "no log yet: nothing waited"

    answer(log, ("PUT", "/api/dronedeliveries/earlier", 503))
    position = answers.position()
    answer(
        log,
        ("PUT", "/api/dronedeliveries/d-1", 503),
        ("PUT", "/api/dronedeliveries/d-2", 201),
        ("GET", "/api/dronedeliveries/d-3", 503),
        ("PUT", "/api/packages/p-1", 503),
        ("PUT", "/api/dronedeliveries/d-4", 503),
    )
    with log.open("a") as output:
        output.write("INFO:     Shutting down\n")

    assert answers.since(0) == 3
    assert answers.since(position) == 2
