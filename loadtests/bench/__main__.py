"""`python -m loadtests.bench` (make bench): measure, write loadtests/results/bench.json, print a table.

--smoke runs every measurement for about a second, to check that the benchmark works (CI does).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from devstack.gateway import NginxMissingError
from devstack.stack import StackError
from loadtests.bench import report
from loadtests.bench.run import SMOKE, Benchmark, BenchSettings
from loadtests.bench.wrk import WrkMissingError

RESULTS = Path(__file__).resolve().parents[1] / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="about a second per measurement")
    parser.add_argument("--seconds", type=float, default=BenchSettings.seconds)
    parser.add_argument("--out", type=Path, default=RESULTS / "bench.json")
    parser.add_argument("--work-dir", type=Path, default=Path(".data/bench"))
    args = parser.parse_args(argv)
    settings = SMOKE if args.smoke else BenchSettings(seconds=args.seconds)
    try:
        document = Benchmark(settings, args.work_dir.resolve()).run()
    except (NginxMissingError, WrkMissingError, StackError) as exc:
        print(exc, file=sys.stderr)
        return 1
    report.write(document, args.out)
    print(report.table(document))
    print(f"written to {args.out}")
    found = report.problems(document)
    for problem in found:
        print(problem, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
