"""Reading the images' Dockerfiles: their stages and instructions, continuation lines joined."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def arguments(self, instruction: str) -> list[str]:
        return [args for keyword, args in self.instructions if keyword == instruction]


def stages(dockerfile: Path) -> list[Stage]:
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    found: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), " ".join(args.split())
        if keyword == "FROM":
            base, _, name = args.partition(" AS ")
            found.append(Stage(base.strip(), name.strip()))
        else:
            found[-1].instructions.append((keyword, args))
    return found


def uv_sync_commands(dockerfile: Path) -> list[list[str]]:
    """Each `uv sync ...` the builder runs, as its argument list."""
    commands = []
    for stage in stages(dockerfile):
        for run in stage.arguments("RUN"):
            words = shlex.split(run)
            if words[:2] == ["uv", "sync"]:
                commands.append(words)
    return commands
