"""Running a job: its arguments, its module, the log lines at its boundary.

The CLI runs one job per invocation through `execute`; `pipeline` and `demo` run
several in one process the same way (`job_arguments` gives each the options its
command line would).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import time
from collections.abc import Sequence
from types import ModuleType
from typing import NoReturn

from memberscore.context import JobResult, RunContext

log = logging.getLogger("memberscore")


class Parser(argparse.ArgumentParser):
    """argparse with the contract's one-line error (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(2)


def job_module(command: str) -> ModuleType:
    return importlib.import_module(f"memberscore.jobs.{command}")


def job_arguments(command: str, argv: Sequence[str] = ()) -> argparse.Namespace:
    """The Namespace `memberscore <command> <argv...>` would give the job, defaults
    included; how one job runs another in-process (pipeline, demo)."""
    parser = Parser(prog=f"memberscore {command}")
    job_module(command).add_arguments(parser)
    return parser.parse_args(list(argv))


def execute(ctx: RunContext, command: str, args: argparse.Namespace) -> JobResult:
    """Run one job with the boundary log lines; used by the CLI, `pipeline` and `demo`."""
    run_date = getattr(args, "run_date", None)
    boundary = f"job={command} env={ctx.env} run_id={ctx.run_id}" + (
        f" run_date={run_date}" if run_date else ""
    )
    log.info("%s status=started home=%s", boundary, ctx.paths.home)
    start = time.monotonic()
    try:
        result: JobResult = job_module(command).run(ctx, args)
    except BaseException as exc:
        log.info("%s status=failed seconds=%.1f error=%s", boundary,
                 time.monotonic() - start, type(exc).__name__)
        raise
    rows = " ".join(f"{table}={count}" for table, count in result.rows.items())
    log.info("%s status=ok seconds=%.1f %s", boundary, time.monotonic() - start,
             f"rows: {rows}" if rows else "")
    return result
