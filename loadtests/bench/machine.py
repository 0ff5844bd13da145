"""What the benchmark ran on: its numbers mean little without the machine beside them."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any


def describe_machine(nginx: str, wrk: str) -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "os": platform.platform(),
        "python": platform.python_version(),
        # How the interpreter was built moves every number (a read cost a fifth more CPU on pyenv's
        # 3.11.7, built without PGO, than on Debian's 3.11.2, on one machine): its path says which.
        "python_executable": os.path.realpath(sys.executable),
        "nginx": _version_of([nginx, "-v"], r"nginx/(\S+)"),
        "wrk": _version_of([wrk, "--version"], r"wrk (\S+)"),
        "uvicorn": version("uvicorn"),
        "fastapi": version("fastapi"),
        "pydantic": version("pydantic"),
    }


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    meminfo = Path("/proc/meminfo")
    if not meminfo.is_file():
        return None
    match = re.search(r"^MemTotal:\s+(\d+) kB", meminfo.read_text(), re.MULTILINE)
    return round(int(match.group(1)) / 2**20, 1) if match else None


def _version_of(command: list[str], pattern: str) -> str:
    # nginx -v and wrk --version both write to stderr (wrk then exits 1).
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    match = re.search(pattern, done.stdout + done.stderr)
    return match.group(1) if match else "unknown"
