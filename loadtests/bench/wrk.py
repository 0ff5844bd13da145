"""wrk, the load generator for throughput: C, one thread, keep-alive connections, Lua for the requests.

On two cores the generator competes with what it measures; wrk spends a small share of a core where
a Python generator would be the bottleneck of the baseline itself.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LUA = Path(__file__).resolve().parent / "lua"


class WrkMissingError(RuntimeError):
    pass


@dataclass(frozen=True)
class WrkSettings:
    """The same for every measurement, so that their ratios compare like with like."""

    threads: int = 1
    connections: int = 32
    timeout_seconds: int = 5


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    errors: int
    """Connection errors, timeouts and answers of 400 or more."""
    failed_answers: int
    """Answers of 400 or more, and timeouts: what the server did wrong."""
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def find_wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise WrkMissingError(
            "the benchmark needs wrk: sudo apt-get install wrk (Debian, Ubuntu), brew install wrk"
        )
    return found


def wrk_command(
    wrk: str,
    url: str,
    script: str,
    script_args: list[str],
    *,
    seconds: float,
    settings: WrkSettings,
) -> list[str]:
    return [
        wrk,
        f"--threads={settings.threads}",
        f"--connections={settings.connections}",
        f"--duration={max(1, round(seconds))}s",
        f"--timeout={settings.timeout_seconds}s",
        f"--script={LUA / script}",
        url,
        "--",
        *script_args,
    ]


def run_wrk(
    wrk: str,
    url: str,
    script: str,
    script_args: list[str],
    *,
    seconds: float,
    settings: WrkSettings,
) -> WrkResult:
    command = wrk_command(wrk, url, script, script_args, seconds=seconds, settings=settings)
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=seconds + 60
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    return parse_summary(done.stdout)


def parse_summary(output: str) -> WrkResult:
    """The summary line our Lua scripts print (see lua/report.lua)."""
    for line in output.splitlines():
        if line.startswith("WRK_SUMMARY "):
            summary: dict[str, Any] = json.loads(line.removeprefix("WRK_SUMMARY "))
            latency = summary["latency_us"]
            return WrkResult(
                requests=summary["requests"],
                seconds=summary["duration_us"] / 1e6,
                errors=sum(summary["errors"].values()),
                failed_answers=summary["errors"]["status"] + summary["errors"]["timeout"],
                p50_ms=latency["p50"] / 1000,
                p99_ms=latency["p99"] / 1000,
            )
    raise ValueError(f"no summary in wrk's output:\n{output}")
