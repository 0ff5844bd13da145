"""The benchmark's report: ratios to the baseline, targets, and what makes a bench.json unusable."""

from __future__ import annotations

from typing import Any

from loadtests.bench.paced import PacedResult
from loadtests.bench.report import Measurements, problems, result, table
from loadtests.bench.wrk import parse_summary

MACHINE = {
    "cores": 2,
    "cpu_model": "Test CPU",
    "memory_gib": 8.0,
    "python": "3.11.7",
    "python_executable": "/opt/python/3.11.7/bin/python3.11",
    "nginx": "1.22.1",
    "load_average": [0.5, 0.4, 0.3],
}


def measured(**overrides: Any) -> Measurements:
    values: dict[str, Any] = {
        "baseline_rps": 4000.0,
        "read_rps": 2400.0,
        "accept_rps": 1000.0,
        "scheduled_per_s": 100.0,
        "read_p99_ms": 12.5,
        "read_p99_rate": 1200.0,
        "errors": {"read": 0, "accept": 0},
    }
    values.update(overrides)
    return Measurements(**values)


def test_ratios_are_each_measurement_over_the_baseline() -> None:
    document = result(measured(), MACHINE, {})

    assert document["read_ratio"] == 0.6
    assert document["accept_ratio"] == 0.25
    assert document["scheduled_ratio"] == 0.025
    assert document["targets_met"] == {
        "read_ratio": True,
        "accept_ratio": False,
        "scheduled_ratio": False,
        "read_p99_ms": True,
    }
    assert problems(document) == []


def test_the_table_says_which_targets_are_not_met() -> None:
    text = table(result(measured(read_p99_ms=35.0), MACHINE, {}))

    assert "read_p99_ms at 1200 rps" in text
    assert "target <= 20: NOT MET" in text
    assert "2 cores, Test CPU" in text
    assert "Python 3.11.7 (/opt/python/3.11.7/bin/python3.11)" in text


def test_the_table_shows_the_baseline_before_and_after_the_system() -> None:
    bracket = {"baseline": {"before": {"rps": 4400.0}, "after": {"rps": 3600.0}}}

    text = table(result(measured(details=bracket), MACHINE, {}))

    assert "baseline before and after the system: 4,400 and 3,600 rps" in text


def test_the_table_says_when_the_end_to_end_waited_for_drones() -> None:
    waited = table(result(measured(details={"end_to_end": {"no_drone_free": 7}}), MACHINE, {}))
    did_not = table(result(measured(details={"end_to_end": {"no_drone_free": 0}}), MACHINE, {}))

    assert "end to end: 7 assignments found no drone free" in waited
    assert "no drone free" not in did_not


def test_a_run_with_failures_or_gaps_is_unusable() -> None:
    failed = result(measured(errors={"accept": 3}), MACHINE, {})
    assert problems(failed) == ["requests or deliveries failed: {'accept': 3}"]

    incomplete = result(measured(read_p99_ms=float("nan")), {"cores": 2}, {})
    found = problems(incomplete)
    assert "read_p99_ms is not a number >= 0: nan" in found
    assert "machine.cpu_model is missing" in found

    without_baseline = result(measured(baseline_rps=0.0), MACHINE, {})
    assert without_baseline["read_ratio"] == 0.0


def test_wrk_summary_lines_are_read_from_its_output() -> None:
    output = (
        "Running 10s test @ http://127.0.0.1:8080\n  1 threads and 32 connections\n"
        'WRK_SUMMARY {"requests":5000,"duration_us":2000000,"errors":{"connect":0,"read":1,'
        '"write":0,"status":2,"timeout":0},"latency_us":{"p50":1500,"p99":9000,"max":12000}}\n'
    )

    summary = parse_summary(output)

    assert summary.rps == 2500
    assert summary.errors == 3
    assert summary.failed_answers == 2
    assert (summary.p50_ms, summary.p99_ms) == (1.5, 9.0)


def test_paced_percentiles_are_nearest_rank() -> None:
    paced = PacedResult(
        rate=100, sent=100, errors=0, latencies_ms=[float(n) for n in range(1, 101)]
    )

    assert paced.percentile(0.99) == 99.0
    assert paced.percentile(0.5) == 50.0
    assert paced.percentile(1.0) == 100.0
