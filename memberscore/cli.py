"""`memberscore [--env ENV] COMMAND [options]`: the one command-line entry point.

Each command is a module in `memberscore.jobs` with `add_arguments(parser)` and
`run(ctx, args) -> JobResult`.  This module parses arguments, loads configuration,
builds the RunContext, logs one line at each job boundary, and turns failures into
one line on stderr (a traceback only with --verbose).
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Sequence

from memberscore.args import iso_date, positive_int  # noqa: F401 - re-exported
from memberscore.commands import COMMANDS
from memberscore.config import ENVIRONMENTS, load_settings
from memberscore.context import JobResult, RunContext, new_run_id
from memberscore.errors import MemberscoreError
from memberscore.logs import close_run_log, configure_logging, open_run_log
from memberscore.runner import Parser, execute, job_module
from memberscore.runtime import on_databricks

log = logging.getLogger("memberscore")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="memberscore",
        description=(
            "Batch features and churn scores for SME members: landing files -> Delta "
            "lake -> Great Expectations -> MLflow model -> Snowflake."
        ),
        epilog=(
            "Local state lives under $MEMBERSCORE_HOME (default .memberscore/). "
            "`memberscore COMMAND --help` describes each command."
        ),
    )
    parser.add_argument("--env", choices=ENVIRONMENTS, default="local",
                        help="configuration environment from conf/ (default: local)")
    parser.add_argument("--run-id", default=None,
                        help="id recorded with every output row (default: generated)")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="debug logging and full tracebacks on failure")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    for name, summary in COMMANDS.items():
        sub = commands.add_parser(name, help=summary, description=summary)
        job_module(name).add_arguments(sub)
    return parser


def run_command(argv: Sequence[str]) -> JobResult:
    """Parse `argv`, run the command, and return its result (raises on failure)."""
    args = build_parser().parse_args(list(argv))
    configure_logging(args.verbose)
    settings = load_settings(args.env)
    ctx = RunContext(settings, run_id=args.run_id or new_run_id(), verbose=args.verbose)
    # on Databricks every line goes to the driver log (the console there shows them)
    log_file = (None if on_databricks() else
                open_run_log(ctx.paths.logs / f"{ctx.run_id}-{args.command}.log"))
    try:
        result = execute(ctx, args.command, args)
    finally:
        close_run_log()
    if log_file is not None:
        result.messages.append(f"full log: {log_file}")
    return result


def unexpected(exc: BaseException) -> str:
    """One line for an error memberscore did not foresee: the root cause a person can
    act on (for a Spark failure, the JVM exception, not py4j's `An error occurred
    while calling o123.count`), and what to do."""
    report = "re-run with --verbose for the traceback and report it"
    java = _java_cause(exc)
    if java is not None:
        name, message = java
        if name.endswith("OutOfMemoryError"):
            return (f"Spark ran out of memory ({name}: {message}); raise spark.driver_memory "
                    "in conf (or MEMBERSCORE__SPARK__DRIVER_MEMORY), or process less at "
                    "once: a shorter --start/--end range, or a smaller "
                    "ingest.range_chunk_mb (ingest) or features.backfill_chunk_days "
                    "(backfill)")
        return f"in Spark: {name}: {message} ({report})"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first} ({report})"


def _java_cause(exc: BaseException) -> tuple[str, str] | None:
    """(class, first message line) of the deepest JVM exception behind `exc`, or None
    when `exc` did not come from the JVM."""
    # py4j's Py4JJavaError keeps the JVM exception as `java_exception`; PySpark's own
    # (AnalysisException, SparkRuntimeException, ...) as `_origin`
    java = getattr(exc, "java_exception", None) or getattr(exc, "_origin", None)
    if java is None:
        return None
    try:
        cause = java
        while cause.getCause() is not None and cause.getCause() != cause:
            cause = cause.getCause()
        name = str(cause.getClass().getName()).rsplit(".", 1)[-1]
        text = str(cause.getMessage() or "").strip().splitlines()
    except Exception:  # noqa: BLE001 - the JVM may be gone (it ran out of memory)
        return type(exc).__name__, str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return name, text[0] if text else ""


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point; returns the process exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in argv or "-v" in argv
    command = next((a for a in argv if a in COMMANDS), "memberscore")
    try:
        result = run_command(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    except KeyboardInterrupt:
        sys.stderr.write(f"memberscore: {command} interrupted\n")
        return 130
    except MemberscoreError as exc:
        if verbose:
            traceback.print_exc()
        sys.stderr.write(f"memberscore: {command} failed: {exc}\n")
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        if verbose:
            traceback.print_exc()
        sys.stderr.write(f"memberscore: {command} failed unexpectedly: {unexpected(exc)}\n")
        return 1
    for line in result.messages:
        print(line)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
