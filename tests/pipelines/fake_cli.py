"""A stand-in for a command-line client of a remote service (az, docker, helm, kubelogin).

The pipelines' scripts talk to Azure, which a test cannot reach. Installed on PATH under a tool's
name, this records each call (arguments and standard input) and answers as the service would, from
a list of canned answers; `helm package` really packages the chart folder, so that the script's own
check of the package's content runs. Run as `fake_cli.py <tool> <arguments...>`, with FAKE_CLI_DIR
holding `answers.json` ([[tool, [argument prefix...], stdout, exit code], ...]) and receiving
`calls.jsonl`.
"""

from __future__ import annotations

import json
import os
import sys
import tarfile
from pathlib import Path


def _package(arguments: list[str]) -> None:
    chart = Path(arguments[1])
    version = arguments[arguments.index("--version") + 1]
    destination = Path(arguments[arguments.index("--destination") + 1])
    with tarfile.open(destination / f"{chart.name}-{version}.tgz", "w:gz") as archive:
        archive.add(chart, arcname=chart.name)


def main() -> int:
    tool, arguments = sys.argv[1], sys.argv[2:]
    folder = Path(os.environ["FAKE_CLI_DIR"])
    standard_input = "" if sys.stdin.isatty() else sys.stdin.read()
    with (folder / "calls.jsonl").open("a", encoding="utf-8") as calls:
        calls.write(json.dumps({"tool": tool, "argv": arguments, "stdin": standard_input}) + "\n")
    if tool == "helm" and arguments[:1] == ["package"]:
        _package(arguments)
    answers = json.loads((folder / "answers.json").read_text(encoding="utf-8"))
    for answer_tool, prefix, stdout, exit_code in answers:
        if answer_tool == tool and arguments[: len(prefix)] == prefix:
            sys.stdout.write(stdout)
            return int(exit_code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
