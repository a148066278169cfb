"""Synthetic sources and ingest at 20,000 members x 90 days.

Figures:
- `generate_20k_members_90d_seconds`: `memberscore generate --members 20000 --days 90`
  end to end (numpy/Arrow generation plus writing every landing file), run as its own
  process.  Target 60 s.
- `generate_peak_rss_mb`: that process's peak resident memory.  The generator streams
  one landing day at a time, so this grows with the members, not the days; target
  2048 MB (the scale bench holds 200,000 members to it).
- `ingest_20k_members_one_day_seconds`: `memberscore ingest` of one ordinary day
  (the second generated day, so the duplicate check reads an earlier day's bronze);
  informational.  The first day is ingested untimed before it, which also starts
  Spark.

Runs in its own home, `<workdir>/generate/`, regenerated on every run (the
generation is the measurement).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path

from benchmarks.common import Measurement, Workspace, run_child, timer
from memberscore.cli import main

log = logging.getLogger("benchmarks.generate")

MEMBERS = 20_000
DAYS = 90
SEED = 7
END = dt.date(2031, 3, 31)


def run(ws: Workspace) -> list[Measurement]:
    home = ws.root / "generate"
    home.mkdir(parents=True, exist_ok=True)
    previous = os.environ.get("MEMBERSCORE_HOME")
    os.environ["MEMBERSCORE_HOME"] = str(home)
    try:
        generate = run_child("generate", "--members", str(MEMBERS), "--days", str(DAYS),
                             "--seed", str(SEED), "--end-date", END.isoformat(), home=home)
        start = END - dt.timedelta(days=DAYS - 1)
        _cli("ingest", "--run-date", start.isoformat())
        with timer() as ingest:
            _cli("ingest", "--run-date", (start + dt.timedelta(days=1)).isoformat())
    finally:
        if previous is None:
            os.environ.pop("MEMBERSCORE_HOME", None)
        else:
            os.environ["MEMBERSCORE_HOME"] = previous
    size = _landing_bytes(home / "landing")
    note = f"{MEMBERS} members x {DAYS} days, {size / 1e6:.0f} MB of landing files"
    results = [
        Measurement("generate_20k_members_90d_seconds", generate.seconds, "s", 60.0,
                    note=note),
        Measurement("generate_peak_rss_mb", generate.peak_rss_mb, "MB", 2048.0,
                    note=f"{MEMBERS} members x {DAYS} days, the generate process"),
        Measurement("ingest_20k_members_one_day_seconds", ingest["seconds"], "s",
                    note="second generated day, Spark already running"),
    ]
    for m in results:
        log.info("%s = %.3f %s (%s)", m.name, m.value or 0.0, m.unit, m.note)
    return results


def _cli(*argv: str) -> None:
    code = main(list(argv))
    if code not in (0, 7):  # 7: the day's bad-row share gate; its rows are written
        raise RuntimeError(f"memberscore {' '.join(argv)} exited with {code}")


def _landing_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
