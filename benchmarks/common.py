"""What every benchmark shares: the Measurement record, a timer, and one workspace
(a $MEMBERSCORE_HOME and a Spark session) reused by all benchmarks of a run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from memberscore.config import Settings, load_settings
from memberscore.context import RunContext
from memberscore.text_tables import text_table


@dataclass(frozen=True)
class Measurement:
    """One figure. `ok` is whether it meets `target` (lower is better unless
    `higher_is_better`); a figure without a target is informational and ok."""

    name: str
    value: float | None
    unit: str
    target: float | None = None
    higher_is_better: bool = False
    note: str = ""

    @property
    def ok(self) -> bool:
        if self.value is None:
            return False
        if self.target is None:
            return True
        return self.value >= self.target if self.higher_is_better else self.value <= self.target

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "unit": self.unit,
                "target": self.target, "ok": self.ok}


@contextmanager
def timer() -> Iterator[dict[str, float]]:
    """`with timer() as t: ...` then `t["seconds"]`."""
    box: dict[str, float] = {}
    start = time.perf_counter()
    try:
        yield box
    finally:
        box["seconds"] = time.perf_counter() - start


@dataclass
class Workspace:
    """A benchmark home directory; data prepared in it is reused across benchmarks
    (and across runs, keyed by marker files) so each figure measures one thing."""

    root: Path
    markers: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        os.environ["MEMBERSCORE_HOME"] = str(self.root)

    @cached_property
    def settings(self) -> Settings:
        return load_settings("local")

    @cached_property
    def ctx(self) -> RunContext:
        return RunContext(self.settings, run_id="bench")

    def new_ctx(self, run_id: str = "bench") -> RunContext:
        """A fresh context sharing the session (jobs may cache per context)."""
        return RunContext(self.settings, run_id=run_id, spark=self.ctx.spark)

    def done(self, marker: str) -> bool:
        return (self.root / f".{marker}.done").exists()

    def mark(self, marker: str) -> None:
        (self.root / f".{marker}.done").write_text("ok\n")


@dataclass(frozen=True)
class ChildRun:
    """A command run as its own process: wall seconds and its peak resident memory."""

    seconds: float
    peak_rss_mb: float


def run_child(*argv: str, home: Path, allowed: tuple[int, ...] = (0,)) -> ChildRun:
    """Run `memberscore <argv>` as a child process with MEMBERSCORE_HOME=`home` and
    measure it (peak RSS from the kernel's accounting of that one process, which an
    in-process run cannot separate from the benchmark's own memory).  An exit status
    not in `allowed` raises with the command's last lines of stderr."""
    command = [str(Path(sys.executable).with_name("memberscore")), *argv]
    start = time.perf_counter()
    child = subprocess.Popen(command, env={**os.environ, "MEMBERSCORE_HOME": str(home)},
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert child.stderr is not None
    stderr = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if child.returncode not in allowed:
        tail = "\n".join(stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"memberscore {' '.join(argv)} exited with {child.returncode}: "
                           f"{tail}")
    return ChildRun(seconds, usage.ru_maxrss / 1024)  # ru_maxrss is in KiB on Linux


def report(results: list[Measurement], path: Path) -> int:
    """Print the table, write `path` (name, value, unit, target, ok per figure) and
    return the exit status: 1 when a figure misses its target or failed."""
    rows = []
    for m in results:
        target = "" if m.target is None else (">= " if m.higher_is_better else "<= ") + \
            f"{m.target:g}"
        value = "-" if m.value is None else f"{m.value:,.3f}".rstrip("0").rstrip(".")
        rows.append((m.name, value, m.unit, target, "ok" if m.ok else "MISSED"))
    print("\n".join(text_table(("benchmark", "value", "unit", "target", "ok"), rows,
                               rule=True)))
    path.write_text(json.dumps([m.as_json() for m in results], indent=2) + "\n")
    print(f"\nwrote {path}")
    missed = [m.name for m in results if not m.ok]
    if missed:
        print(f"missed or failed: {', '.join(missed)}", file=sys.stderr)
        return 1
    return 0
