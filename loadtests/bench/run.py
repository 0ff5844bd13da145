"""The benchmark's measurements, in order: the baseline, then the system on one fresh stack.

1. baseline: the constant app (`baseline.py`) behind the gateway's nginx template, wrk GETs.
2. read: deliveries requested and flown to completion first, then wrk GETs of them at random,
   then the paced client at half the rate wrk reached, for the p99.
3. end to end: a fixed number of delivery requests as fast as wrk sends them, counted in the
   delivery store until every one has left `Requested`; deliveries that reached `Scheduled` (or
   later) per second, from the first request to the last one scheduled. None may fail, and the
   scheduler's access log says whether any waited for a free drone.
4. accept: wrk POSTs of delivery requests for the measurement time.

Every process is started here, on 127.0.0.1 only, and stopped before the run returns.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from devstack.gateway import GatewayLimits, find_nginx, gateway_values, nginx_command, write_config
from devstack.stack import Ports, Stack, StackSettings, uvicorn_command
from loadtests.bench.bodies import delivery_request, write_bodies
from loadtests.bench.machine import describe_machine
from loadtests.bench.paced import run_paced
from loadtests.bench.report import Measurements, result
from loadtests.bench.wrk import (
    WrkResult,
    WrkSettings,
    find_wrk,
    parse_summary,
    run_wrk,
    wrk_command,
)
from servicekit.testing import free_port

# The benchmark sends far more than one client should; the gateway's limit is raised for it alone.
BENCH_LIMITS = GatewayLimits(max_body_size="16k", rate_limit="100000r/s", rate_burst=100000)
REPOSITORY = Path(__file__).resolve().parents[2]
PASSED_REQUESTED = ("Scheduled", "HeadedToPickup", "HeadedToDropoff", "Completed")


@dataclass(frozen=True)
class BenchSettings:
    seconds: float = 10
    """Each throughput measurement, and the paced latency measurement."""
    warmup_seconds: float = 2
    read_deliveries: int = 200
    """Deliveries flown before the read measurement; GETs pick among them."""
    scheduled_deliveries: int = 1000
    """Delivery requests of the end-to-end measurement."""
    settle_timeout: float = 120
    wrk: WrkSettings = field(default_factory=WrkSettings)
    # A fleet this large and fast has a free drone for every request: the measurement is of the
    # system's work, not of waiting for drones (the end to end counts the times it was not so; 300
    # drones ran short once the end to end passed about 300 deliveries a second). A drone is free
    # again at the first tick after it lands: at 2000x the default tick (0.5 s) would add up to 1000
    # simulated seconds to every flight, 0.1 s adds at most 200.
    stack_env: dict[str, str] = field(
        default_factory=lambda: {
            "SCHEDULER_FLEET_SIZE": "450",
            "SCHEDULER_SIM_SPEEDUP": "2000",
            "SCHEDULER_TICK_SECONDS": "0.1",
        }
    )


SMOKE = BenchSettings(
    seconds=1, warmup_seconds=0, read_deliveries=10, scheduled_deliveries=20, settle_timeout=60
)


class Benchmark:
    def __init__(self, settings: BenchSettings, work_dir: Path) -> None:
        self.settings = settings
        self.work_dir = work_dir
        self.wrk = find_wrk()
        self.nginx = find_nginx()

    def run(self) -> dict[str, Any]:
        shutil.rmtree(self.work_dir, ignore_errors=True)
        self.work_dir.mkdir(parents=True)
        bodies = write_bodies(self.work_dir / "bodies.txt")
        machine = describe_machine(self.nginx, self.wrk)
        errors: dict[str, int] = {}
        details: dict[str, Any] = {}

        # The baseline brackets the system's measurements, and their mean divides them: a shared
        # machine's speed drifts over the minute and more between the two (a quarter, seen here).
        print("baseline: the constant app behind the gateway ...", flush=True)
        baseline_before = self._baseline()

        with self._stack() as stack:
            print("read: flying deliveries to read ...", flush=True)
            ids = self._fly_deliveries(stack, self.settings.read_deliveries)
            ids_file = self.work_dir / "ids.txt"
            ids_file.write_text("\n".join(ids) + "\n")
            read = self._wrk(stack.gateway_url, "read.lua", [str(ids_file)])
            errors["read"] = read.errors
            details["read"] = asdict(read)
            rate = max(1.0, read.rps / 2)
            print(f"read latency: paced at {rate:.0f} rps ...", flush=True)
            paced = run_paced(
                "127.0.0.1",
                stack.settings.ports.gateway,
                [f"/api/deliveries/{id}" for id in ids],
                rate=rate,
                seconds=self.settings.seconds,
            )
            errors["read_paced"] = paced.errors
            details["read_paced"] = {
                "rate": rate,
                "sent": paced.sent,
                "p50_ms": paced.percentile(0.5),
            }

            print("end to end: requests until Scheduled ...", flush=True)
            scheduled = self._end_to_end(stack, bodies)
            errors["end_to_end"] = scheduled["failed"] + scheduled["failed_answers"]
            details["end_to_end"] = scheduled
            self._wait_until_settled(stack)

            print("accept: delivery requests ...", flush=True)
            accept = self._wrk(stack.gateway_url, "accept.lua", [str(bodies)])
            errors["accept"] = accept.errors
            details["accept"] = asdict(accept)

        print("baseline again ...", flush=True)
        baseline_after = self._baseline()
        errors["baseline"] = baseline_before.errors + baseline_after.errors
        details["baseline"] = {
            "before": {"rps": baseline_before.rps, **asdict(baseline_before)},
            "after": {"rps": baseline_after.rps, **asdict(baseline_after)},
        }

        measurements = Measurements(
            baseline_rps=(baseline_before.rps + baseline_after.rps) / 2,
            read_rps=read.rps,
            accept_rps=accept.rps,
            scheduled_per_s=scheduled["scheduled_per_s"],
            read_p99_ms=paced.percentile(0.99),
            read_p99_rate=round(rate, 1),
            errors=errors,
            details=details,
        )
        settings = {
            "seconds": self.settings.seconds,
            "wrk": asdict(self.settings.wrk),
            "stack_env": self.settings.stack_env,
            "read_deliveries": self.settings.read_deliveries,
            "scheduled_deliveries": self.settings.scheduled_deliveries,
        }
        return result(measurements, machine, settings)

    # -- the measurements ----------------------------------------------------------------------

    def _wrk(self, url: str, script: str, args: list[str]) -> WrkResult:
        if self.settings.warmup_seconds > 0:
            run_wrk(
                self.wrk,
                url,
                script,
                args,
                seconds=self.settings.warmup_seconds,
                settings=self.settings.wrk,
            )
        return run_wrk(
            self.wrk, url, script, args, seconds=self.settings.seconds, settings=self.settings.wrk
        )

    def _baseline(self) -> WrkResult:
        app_port, gateway_port = free_port(), free_port()
        directory = self.work_dir / "baseline"
        config = write_config(
            directory / "nginx.conf",
            gateway_values(
                listen_port=gateway_port,
                delivery_upstream=f"127.0.0.1:{app_port}",
                runtime_dir=directory / "run",
                limits=BENCH_LIMITS,
            ),
        )
        with (
            _process(
                uvicorn_command("loadtests.bench.baseline:app", port=app_port),
                directory / "app.log",
            ),
            _process(nginx_command(self.nginx, config), directory / "nginx.log"),
        ):
            url = f"http://127.0.0.1:{gateway_port}"
            _wait_for(f"{url}/api/deliveries/ready")
            return self._wrk(url, "read.lua", [str(_write(directory / "ids.txt", "baseline\n"))])

    @contextmanager
    def _stack(self) -> Iterator[Stack]:
        ports = Ports(
            gateway=free_port(), delivery=free_port(), package=free_port(), scheduler=free_port()
        )
        settings = StackSettings(
            data_dir=self.work_dir / "stack",
            ports=ports,
            limits=BENCH_LIMITS,
            env=self.settings.stack_env,
        )
        with Stack(settings) as stack:
            yield stack

    def _fly_deliveries(self, stack: Stack, count: int) -> list[str]:
        rng = random.Random(5)
        with httpx.Client(base_url=stack.gateway_url, timeout=10) as client:
            ids = []
            for number in range(count):
                response = client.post("/api/deliveryrequests", json=delivery_request(rng, number))
                response.raise_for_status()
                ids.append(response.json()["deliveryId"])
        self._wait_until_settled(stack)
        return ids

    def _end_to_end(self, stack: Stack, bodies: Path) -> dict[str, Any]:
        store = DeliveryCounts(stack.data_dir / "delivery.db")
        before = store.last_row()
        busy_fleet = NoDroneFreeAnswers(stack.log_path("scheduler"))
        log_position = busy_fleet.position()
        wanted = self.settings.scheduled_deliveries
        timeout = self.settings.settle_timeout
        # wrk runs for its whole duration whatever its threads do: it is interrupted (and then
        # prints its summary) once the store holds the deliveries wanted.
        wrk = subprocess.Popen(
            wrk_command(
                self.wrk,
                stack.gateway_url,
                "accept.lua",
                [str(bodies), str(wanted)],
                seconds=timeout,
                settings=self.settings.wrk,
            ),
            stdout=subprocess.PIPE,
            text=True,
        )
        started = time.monotonic()
        finished_at: float | None = None
        # Polled every 50 ms on the machine being measured, so each poll reads as little as it can:
        # counting stages over every new delivery's JSON took 5 ms, a tenth of a core.
        requested_from = before + 1
        try:
            while time.monotonic() - started < timeout:
                time.sleep(0.05)
                if wrk.poll() is None:
                    if store.last_row() - before >= wanted:
                        wrk.send_signal(signal.SIGINT)
                    continue
                first_requested = store.first_requested(requested_from)
                if first_requested is None:
                    finished_at = time.monotonic()
                    break
                requested_from = first_requested
        finally:
            if wrk.poll() is None:
                wrk.send_signal(signal.SIGINT)
            output, _ = wrk.communicate(timeout=30)
        sent = parse_summary(output)
        stages = store.stages(before)
        scheduled = sum(stages.get(stage, 0) for stage in PASSED_REQUESTED)
        elapsed = (finished_at or time.monotonic()) - started
        return {
            "requested": sum(stages.values()),
            "scheduled": scheduled,
            "failed": stages.get("Failed", 0) + stages.get("Requested", 0),
            # Interrupting wrk cuts the requests in flight: only answers count against the system.
            "failed_answers": sent.failed_answers,
            "seconds": round(elapsed, 3),
            "scheduled_per_s": scheduled / elapsed if finished_at else 0.0,
            "no_drone_free": busy_fleet.since(log_position),
        }

    def _wait_until_settled(self, stack: Stack) -> None:
        """Until no delivery is on its way: the next measurement starts on a quiet system."""
        store = DeliveryCounts(stack.data_dir / "delivery.db")
        deadline = time.monotonic() + self.settings.settle_timeout
        while time.monotonic() < deadline:
            stages = store.stages()
            if set(stages) <= {"Completed", "Cancelled", "Failed"}:
                return
            time.sleep(0.2)
        raise TimeoutError(
            f"deliveries still under way after {self.settings.settle_timeout:g} s: {store.stages()}"
        )


class DeliveryCounts:
    """Counts deliveries by stage, reading the delivery service's SQLite store (read-only)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    # Deliveries are rows of a rowid table that nothing deletes from: a new delivery's row comes
    # after every older one's, so "created since" is "rowid above".

    def last_row(self) -> int:
        """The newest delivery's row: deliveries created later have rows above it."""
        return int(self._query("SELECT MAX(rowid) FROM deliveries")[0][0] or 0)

    def first_requested(self, from_row: int) -> int | None:
        """The first row at or after `from_row` still `Requested`, or None.

        A delivery never returns to `Requested`, so the next call may start from the row answered.
        """
        rows = self._query(
            "SELECT rowid FROM deliveries WHERE rowid >= ? "
            "AND json_extract(body, '$.stage') = 'Requested' ORDER BY rowid LIMIT 1",
            (from_row,),
        )
        return int(rows[0][0]) if rows else None

    def stages(self, after_row: int = 0) -> dict[str, int]:
        rows = self._query(
            "SELECT json_extract(body, '$.stage'), COUNT(*) FROM deliveries "
            "WHERE rowid > ? GROUP BY 1",
            (after_row,),
        )
        return {str(stage): int(count) for stage, count in rows}

    def _query(self, sql: str, params: tuple[int, ...] = ()) -> list[tuple[Any, ...]]:
        connection = sqlite3.connect(f"file:{self._path}?mode=ro", uri=True, timeout=5)
        try:
            return connection.execute(sql, params).fetchall()
        finally:
            connection.close()


class NoDroneFreeAnswers:
    """Counts the scheduler's 503 answers to assignments (no drone able to fly it is free), from its
    JSON access log: each makes a delivery wait for the simulated fleet, at least a second."""

    def __init__(self, log: Path) -> None:
        self._log = log

    def position(self) -> int:
        """Where the log ends now: `since` counts what is written after."""
        return self._log.stat().st_size if self._log.exists() else 0

    def since(self, position: int) -> int:
        if not self._log.exists():
            return 0
        count = 0
        with self._log.open("rb") as log:
            log.seek(position)
            for line in log:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # uvicorn's own lines, or a line cut short while being written
                if (
                    isinstance(record, dict)
                    and record.get("http.method") == "PUT"
                    and str(record.get("http.path", "")).startswith("/api/dronedeliveries/")
                    and record.get("http.status") == 503
                ):
                    count += 1
        return count


@contextmanager
def _process(command: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPOSITORY
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


def _wait_for(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout:g} s")
        time.sleep(0.1)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
