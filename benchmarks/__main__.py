"""`python -m benchmarks [--only NAME ...] [--workdir DIR]`: run every benchmark,
print a table, write benchmarks/results.json, exit 1 when a figure misses its target
or a benchmark fails."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback
from pathlib import Path

from benchmarks.common import Measurement, Workspace, report
from memberscore.logs import configure_logging

# In order: later benchmarks reuse data prepared by earlier ones.
MODULES = [
    "bench_generate",
    "bench_lake",
    "bench_features",
    "bench_validate",
    "bench_score",
    "bench_publish",
    "bench_api",
    "bench_events",
    "bench_monitor",
    "bench_backends",
]

RESULTS = Path(__file__).with_name("results.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--only", action="append", default=None,
                        help="run only this benchmark (features or bench_features, ...); "
                             "repeatable")
    parser.add_argument("--workdir", type=Path, default=Path(".memberscore-bench"),
                        help="where generated data is kept between runs")
    args = parser.parse_args(argv)
    names = [n if n.startswith("bench_") else f"bench_{n}" for n in (args.only or MODULES)]
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from "
                     f"{', '.join(m.removeprefix('bench_') for m in MODULES)}")
    configure_logging()
    log = logging.getLogger("benchmarks")
    workspace = Workspace(args.workdir.resolve())
    results: list[Measurement] = []
    failed: list[str] = []
    for name in names:
        log.info("benchmark %s: starting", name)
        try:
            module = importlib.import_module(f"benchmarks.{name}")
            results.extend(module.run(workspace))
        except Exception:  # noqa: BLE001 - report and go on with the others
            failed.append(name)
            # on stderr, not only the log: the console shows memberscore's own lines
            print(f"benchmark {name} failed:\n{traceback.format_exc()}", file=sys.stderr)
            results.append(Measurement(f"{name}_failed", None, "error"))
    return report(results, RESULTS)


if __name__ == "__main__":
    raise SystemExit(main())
