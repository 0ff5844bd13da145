"""The benchmark's result: the measurements, their ratios to the baseline, and the machine."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# What the system should reach (docs/performance.md): ratios to the baseline, and a latency.
TARGETS = {
    "read_ratio": (">=", 0.50),
    "accept_ratio": (">=", 0.30),
    "scheduled_ratio": (">=", 0.03),
    "read_p99_ms": ("<=", 20.0),
}
REQUIRED = (
    "baseline_rps",
    "read_rps",
    "accept_rps",
    "scheduled_per_s",
    "read_ratio",
    "accept_ratio",
    "scheduled_ratio",
    "read_p99_ms",
    "machine",
)


@dataclass
class Measurements:
    baseline_rps: float
    read_rps: float
    accept_rps: float
    scheduled_per_s: float
    read_p99_ms: float
    read_p99_rate: float
    """The paced rate read_p99_ms was measured at: half of read_rps."""
    errors: dict[str, int] = field(default_factory=dict)
    """Failed requests or deliveries per measurement; a valid run has none."""
    details: dict[str, Any] = field(default_factory=dict)


def result(
    measurements: Measurements, machine: dict[str, Any], settings: dict[str, Any]
) -> dict[str, Any]:
    base = measurements.baseline_rps
    ratios = {
        "read_ratio": _ratio(measurements.read_rps, base),
        "accept_ratio": _ratio(measurements.accept_rps, base),
        "scheduled_ratio": _ratio(measurements.scheduled_per_s, base),
    }
    values = {**asdict(measurements), **ratios}
    return {
        **{key: _rounded(value) for key, value in values.items()},
        "targets_met": {name: _meets(values[name], rule) for name, rule in TARGETS.items()},
        "settings": settings,
        "machine": machine,
    }


def problems(document: dict[str, Any]) -> list[str]:
    """What makes a bench.json unusable (nothing: an empty list)."""
    found = [f"{key} is missing" for key in REQUIRED if key not in document]
    for key in REQUIRED[:-1]:
        value = document.get(key)
        if key in document and not (
            isinstance(value, int | float) and math.isfinite(value) and value >= 0
        ):
            found.append(f"{key} is not a number >= 0: {value!r}")
    if any(document.get("errors", {}).values()):
        found.append(f"requests or deliveries failed: {document['errors']}")
    machine = document.get("machine", {})
    for key in ("cores", "cpu_model", "memory_gib", "python", "python_executable", "nginx"):
        if key not in machine:
            found.append(f"machine.{key} is missing")
    return found


def table(document: dict[str, Any]) -> str:
    rows = [
        ("baseline (constant app) rps", document["baseline_rps"], ""),
        ("read GET /api/deliveries/{id} rps", document["read_rps"], ""),
        ("accept POST /api/deliveryrequests rps", document["accept_rps"], ""),
        ("end to end: reaching Scheduled per s", document["scheduled_per_s"], ""),
        ("read_ratio", document["read_ratio"], _target("read_ratio", document)),
        ("accept_ratio", document["accept_ratio"], _target("accept_ratio", document)),
        ("scheduled_ratio", document["scheduled_ratio"], _target("scheduled_ratio", document)),
        (
            f"read_p99_ms at {document['read_p99_rate']:g} rps",
            document["read_p99_ms"],
            _target("read_p99_ms", document),
        ),
    ]
    width = max(len(name) for name, _, _ in rows)
    lines = [f"{name:<{width}}  {value:>10,.3f}  {target}".rstrip() for name, value, target in rows]
    machine = document["machine"]
    lines.append(
        f"machine: {machine['cores']} cores, {machine['cpu_model']}, {machine['memory_gib']} GiB, "
        f"Python {machine['python']} ({machine['python_executable']}), "
        f"nginx {machine['nginx']}, load {machine['load_average']}"
    )
    details = document.get("details", {})
    bracket = details.get("baseline", {})
    if "before" in bracket and "after" in bracket:
        lines.append(
            f"baseline before and after the system: {bracket['before']['rps']:,.0f} and "
            f"{bracket['after']['rps']:,.0f} rps (their mean divides the ratios)"
        )
    waited = details.get("end_to_end", {}).get("no_drone_free", 0)
    if waited:
        lines.append(
            f"end to end: {waited} assignments found no drone free: the rate includes waiting "
            "for the simulated fleet, not only the system's work"
        )
    if any(document["errors"].values()):
        lines.append(f"FAILURES: {document['errors']}")
    return "\n".join(lines)


def write(document: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


def _target(name: str, document: dict[str, Any]) -> str:
    operator, bound = TARGETS[name]
    met = document["targets_met"][name]
    return f"target {operator} {bound:g}: {'met' if met else 'NOT MET'}"


def _meets(value: float, rule: tuple[str, float]) -> bool:
    operator, bound = rule
    return value >= bound if operator == ">=" else value <= bound


def _ratio(value: float, base: float) -> float:
    return value / base if base > 0 else 0.0


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    return value
