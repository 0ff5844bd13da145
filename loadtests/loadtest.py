"""`make loadtest`: the locustfile, headless, against the local system for a bounded time.

When no gateway answers at the target, the system is started with devstack for the run (a fleet and
a speed-up suited to load, a gateway rate limit above what the customers send) and stopped after it.
The HTML report and the CSV statistics go to `loadtests/results/`; the exit code is Locust's, which
the locustfile sets from its service level objectives.
"""

from __future__ import annotations

import argparse
import csv
import re
import subprocess
import sys
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx

from devstack.__main__ import settings_from_environment
from devstack.gateway import GatewayLimits
from devstack.stack import Stack, StackSettings

HERE = Path(__file__).resolve().parent
LOCUSTFILE = HERE / "locustfile.py"
RESULTS = HERE / "results"
# More drones, flying faster than `make dev`'s, so that customers rarely wait for a free one.
LOAD_ENV = {"SCHEDULER_FLEET_SIZE": "200", "SCHEDULER_SIM_SPEEDUP": "300"}
LOAD_LIMITS = GatewayLimits(rate_limit="1000r/s", rate_burst=1000)
_DELIVERY_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-")


@dataclass(frozen=True)
class Run:
    shape: str
    seconds: float
    peak_users: int
    # Objectives a few seconds on a busy machine can judge fairly: errors, not percentiles.
    p95_scale: float = 1.0


SMOKE = Run(shape="step", seconds=8, peak_users=8, p95_scale=20.0)


def locust_command(host: str, run: Run, results: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "locust",
        "--locustfile",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        host,
        "--load-shape",
        run.shape,
        "--shape-seconds",
        f"{run.seconds:g}",
        "--peak-users",
        str(run.peak_users),
        "--slo-p95-scale",
        f"{run.p95_scale:g}",
        "--html",
        str(results / "loadtest.html"),
        "--csv",
        str(results / "loadtest"),
        "--only-summary",
    ]


def check_results(results: Path) -> list[str]:
    """What is wrong with the files a run left (nothing: an empty list)."""
    problems = []
    html = results / "loadtest.html"
    if not html.is_file() or "<html" not in html.read_text(errors="replace")[:2000].lower():
        problems.append(f"{html} is missing or not HTML")
    stats = results / "loadtest_stats.csv"
    if not stats.is_file():
        return [*problems, f"{stats} is missing"]
    with stats.open(newline="") as file:
        rows = list(csv.DictReader(file))
    names = {row.get("Name") for row in rows}
    if "Aggregated" not in names:
        problems.append(f"{stats} has no Aggregated row")
    if not any(row.get("Name", "").startswith("/api/") for row in rows):
        problems.append(f"{stats} has no route")
    if any(_DELIVERY_ID.search(row.get("Name", "")) for row in rows):
        problems.append(f"{stats} names single deliveries: requests are not grouped by route")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loadtest", description=__doc__)
    parser.add_argument(
        "--host", help="a running gateway (default: the local one, started if down)"
    )
    parser.add_argument("--shape", choices=("step", "spike", "soak"), default="step")
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--peak-users", type=int, default=40)
    parser.add_argument("--smoke", action="store_true", help="a few seconds, to check it works")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    run = SMOKE if args.smoke else Run(args.shape, args.seconds, args.peak_users)
    results: Path = args.results
    results.mkdir(parents=True, exist_ok=True)
    with ExitStack() as cleanup:
        host = args.host
        if host is None:
            local = settings_from_environment()
            stack = Stack(
                StackSettings(
                    data_dir=local.data_dir / "loadtest",
                    ports=local.ports,
                    limits=LOAD_LIMITS,
                    env=LOAD_ENV,
                )
            )
            host = stack.gateway_url
            if _is_up(host):
                print(f"load testing the system running at {host}", flush=True)
            else:
                print(f"starting the system at {host} for the load test ...", flush=True)
                cleanup.enter_context(stack)
        code = subprocess.call(locust_command(host, run, results))
    problems = check_results(results)
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"report: {results / 'loadtest.html'}; statistics: {results}/loadtest_*.csv")
    return code or (1 if problems else 0)


def _is_up(gateway_url: str) -> bool:
    try:
        return httpx.get(f"{gateway_url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


if __name__ == "__main__":
    sys.exit(main())
