"""`python -m tests.faults [--work DIR] [--only TEXT]`: run the fault suite, print one
table and `N cases, 0 lost, 0 doubled, 0 leaks`, write the figures as JSON; exit 1
when any case failed or anything was lost, doubled or leaked."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import time
from pathlib import Path

from tests.faults.harness import Outcome

DEFAULT_WORK = Path(".memberscore-faults")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults", description=__doc__)
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK,
                        help="where the cases' homes go (replaced; default %(default)s)")
    parser.add_argument("--only", default=None,
                        help="run only the groups whose name contains this text "
                             "(files, kill, warehouse, secrets, concurrency, quality, arguments)")
    args = parser.parse_args(argv)
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ.pop("MEMBERSCORE_CONF_DIR", None)
    work = args.work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started = time.monotonic()

    from tests.faults import bad_files, runs

    outcomes: list[Outcome] = []

    def wanted(group: str) -> bool:
        return args.only is None or args.only in group

    def report(found: list[Outcome]) -> None:
        for out in found:
            outcomes.append(out)
            print(_row(out), flush=True)

    print(_header(), flush=True)
    if wanted("files"):
        report(bad_files.run_cases(work))
    groups = [("kill", runs.kill_cases), ("warehouse", runs.warehouse_cases),
              ("secrets", lambda b, w: [runs.secrets_case(b, w)]),
              ("concurrency", runs.concurrency_cases), ("quality", runs.quality_cases),
              ("arguments", runs.argument_cases)]
    if any(wanted(name) for name, _ in groups):
        from memberscore.local.broker_server import local_broker
        from tests.faults.harness import BROKER_VAR

        # one Kafka broker for every case's "day published" events, as in `make test`
        with local_broker(work / "kafka", must_serve=True) as broker:
            os.environ[BROKER_VAR] = broker.address().bootstrap_servers
            base, setup = runs.build_base(work)
            report([setup])
            if base is not None and setup.verdict == "ok":
                for name, cases in groups:
                    if wanted(name):
                        report(cases(base, work))

    lost = sum(o.lost for o in outcomes)
    twice = sum(o.doubled for o in outcomes)
    leaks = sum(o.leaks for o in outcomes)
    failed = [o for o in outcomes if o.verdict != "ok"]
    for out in failed:
        print(f"FAIL {out.case}: {'; '.join(out.problems)}")
    total = time.monotonic() - started
    print(f"{len(outcomes)} cases, {lost} lost, {twice} doubled, {leaks} leaks"
          f"{f', {len(failed)} FAILED' if failed else ''} ({total:.0f} s)")
    results = work / "results.json"
    results.write_text(json.dumps({
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "seconds": round(total, 1), "cases": len(outcomes), "lost": lost, "doubled": twice,
        "leaks": leaks, "failed": len(failed),
        "rows": [{"case": o.case, "rows_in": o.rows_in, "kept": o.kept,
                  "quarantined": o.quarantined, "lost": o.lost, "doubled": o.doubled,
                  "leaks": o.leaks, "exit": o.exit, "seconds": round(o.seconds, 1),
                  "verdict": o.verdict, "problems": o.problems} for o in outcomes],
    }, indent=2))
    print(f"figures: {results}")
    return 1 if failed or lost or twice or leaks else 0


_COLUMNS = (("case", 58), ("rows in", 8), ("kept", 8), ("quarant.", 8), ("lost", 5),
            ("doubled", 7), ("exit", 4), ("seconds", 7), ("verdict", 7))


def _header() -> str:
    return " ".join(f"{name:<{width}}" if i == 0 else f"{name:>{width}}"
                    for i, (name, width) in enumerate(_COLUMNS))


def _row(out: Outcome) -> str:
    def show(value: object) -> str:
        return "-" if value is None else str(value)

    values = (out.case[:58], show(out.rows_in), show(out.kept), show(out.quarantined),
              str(out.lost), str(out.doubled), show(out.exit), f"{out.seconds:.1f}", out.verdict)
    return " ".join(f"{v:<{w}}" if i == 0 else f"{v:>{w}}"
                    for i, (v, (_, w)) in enumerate(zip(values, _COLUMNS, strict=True)))


if __name__ == "__main__":
    raise SystemExit(main())
