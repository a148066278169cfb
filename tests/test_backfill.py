"""Backfill: every tiled day equals the direct single-day computation; days are
skipped only when built from the same inputs; each day is its own commit."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from functools import reduce
from typing import Any

import numpy as np
import pytest
from featuredata import (
    append_transactions,
    feature_values,
    member,
    members_frame,
    transactions_frame,
    ts,
    txn,
    with_features,
    write_bronze,
)
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from memberscore import snapshots
from memberscore.cli import main
from memberscore.config import Settings
from memberscore.context import RunContext
from memberscore.feature_builds import (
    BuildLog,
    InputFingerprint,
    RowsFingerprint,
    code_digest,
    cumulative,
)
from memberscore.jobs import backfill
from memberscore.tables import MEMBER_FEATURES_DAILY
from memberscore.transforms.features import (
    day_index,
    member_features,
    member_fingerprints,
    snapshot_aggregates,
)

LATENESS = 6.0
START, END = dt.date(2026, 3, 10), dt.date(2026, 3, 17)
CHANNELS = ["card", "faster_payment", "bacs", "direct_debit", "transfer", "cash"]


def random_bronze(seed: int) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """Members and ~350 transactions around [START, END] that hit the boundaries:
    bookings on midnights, ingestion exactly at and a microsecond after a cutoff,
    days-late rows, failed/reversed rows, zero amounts, null counterparties, members
    onboarded, closed and re-stated inside the range, a member unknown to the feed."""
    rng = np.random.default_rng(seed)
    day0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    span = (END - dt.date(2026, 1, 1)).days + 3

    def at(days: float) -> dt.datetime:
        return day0 + dt.timedelta(microseconds=int(days * 86_400_000_000))

    def iso(value: dt.datetime) -> str:
        return value.replace(tzinfo=None).isoformat(sep=" ")

    members = []
    for i in range(8):
        onboarded = at(rng.uniform(-30, span))
        closed = at(rng.uniform(60, span)) if rng.random() < 0.4 else None
        updated = max(onboarded, closed) if closed else onboarded
        if rng.random() < 0.5 and closed is not None:
            # first known open, the closing row arrives later (maybe after a cutoff)
            members.append(member(f"m{i}", iso(onboarded)))
            updated = closed + dt.timedelta(hours=float(rng.choice([0, 5, 6, 7, 30])))
        members.append(member(f"m{i}", iso(onboarded),
                              closed_at=iso(closed) if closed else None,
                              updated_at=iso(updated)))

    rows = []
    for i in range(350):
        booked = at(rng.uniform(-40, span))
        if rng.random() < 0.15:  # exactly on a midnight
            booked = booked.replace(hour=0, minute=0, second=0, microsecond=0)
        next_midnight = (booked + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0,
                                                               microsecond=0)
        kind = rng.integers(0, 6)
        if kind == 0:
            ingested = booked
        elif kind == 1:  # exactly at the booked day's cutoff
            ingested = next_midnight + dt.timedelta(hours=LATENESS)
        elif kind == 2:  # a microsecond late
            ingested = next_midnight + dt.timedelta(hours=LATENESS, microseconds=1)
        elif kind == 3:
            ingested = booked + dt.timedelta(days=float(rng.uniform(1, 45)))
        else:
            ingested = booked + dt.timedelta(hours=float(rng.uniform(0, 5)))
        amount = Decimal(int(rng.integers(-50_000, 50_000))) / 100
        if rng.random() < 0.03:
            amount = Decimal("0.00")
        counterparty = None if rng.random() < 0.3 else f"c{rng.integers(0, 6)}"
        status = str(rng.choice(["settled"] * 6 + ["failed", "failed", "reversed"]))
        rows.append(txn(f"t{i:04d}", f"m{rng.integers(0, 9)}", iso(booked), str(amount),
                        channel=str(rng.choice(CHANNELS)), counterparty_id=counterparty,
                        status=status, ingested_at=iso(ingested)))
    return members, rows


def direct(members: DataFrame, transactions: DataFrame, start: dt.date,
           end: dt.date) -> DataFrame:
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    frames = [member_features(members, transactions, d, LATENESS, "direct",
                              ts("2026-04-01 00:00:00")) for d in days]
    return reduce(DataFrame.unionByName, frames)


def backfill_ctx(ctx: RunContext, **changes: Any) -> RunContext:
    settings: Settings = with_features(ctx.settings, **changes)
    return RunContext(settings, run_id=ctx.run_id, spark=ctx.spark)


def run_backfill(ctx: RunContext, start: dt.date, end: dt.date,
                 force: bool = False) -> dict[str, object]:
    args = type("Args", (), {"start": start, "end": end, "force": force})()
    return backfill.run(ctx, args).details  # type: ignore[arg-type]


def test_every_tiled_day_equals_the_direct_computation(ctx: RunContext) -> None:
    members, transactions = random_bronze(seed=4)
    write_bronze(ctx, members, transactions)
    small_chunks = backfill_ctx(ctx, backfill_chunk_days=3)   # chunk edges inside range
    details = run_backfill(small_chunks, START, END)
    assert len(details["days_built"]) == 8  # type: ignore[arg-type]

    member_rows = members_frame(ctx.spark, members)
    transaction_rows = transactions_frame(ctx.spark, transactions)
    tiled = feature_values(ctx.lake.read(MEMBER_FEATURES_DAILY.name))
    expected = feature_values(direct(member_rows, transaction_rows, START, END))
    assert len(expected) > 30
    assert tiled == expected

    # the late counts and input fingerprints of the build log match the one-day pass
    days = [START + dt.timedelta(days=i) for i in range((END - START).days + 1)]
    parts = ("late_txn_count", "fp_rows", "fp_hash_hi", "fp_hash_lo")
    per_day = reduce(DataFrame.unionByName,
                     [snapshot_aggregates(transaction_rows, d, LATENESS) for d in days])
    totals = {r["day"]: r for r in per_day.groupBy("day").agg(
        *[F.sum(c).alias(c) for c in parts]).collect()}
    members_seen = cumulative(
        member_fingerprints(member_rows, START, END, LATENESS).collect(), days)
    logged = BuildLog(ctx.lake, ctx.settings.features.build_log_table,
                      MEMBER_FEATURES_DAILY.name).latest(START, END)
    code = code_digest()
    for d in days:
        direct_totals = totals[day_index(d)]
        fingerprint = InputFingerprint(d, RowsFingerprint.from_row(direct_totals, "fp_"),
                                       members_seen[d], LATENESS, code)
        assert logged[d].late_txn_count == direct_totals["late_txn_count"], d
        assert logged[d].input_fingerprint == fingerprint.digest, d

    # the data exercised what it should
    assert sum(r.late_txn_count for r in logged.values()) > 0
    counts_7d = {v[0] for v in expected.values()}
    assert 0 in counts_7d and max(counts_7d) > 1


def test_skips_only_days_built_from_the_same_inputs(
        ctx: RunContext, capsys: pytest.CaptureFixture[str]) -> None:
    d1, d2, d3 = dt.date(2026, 3, 1), dt.date(2026, 3, 2), dt.date(2026, 3, 3)
    write_bronze(
        ctx,
        [member("m1", "2026-01-01 00:00:00"), member("m2", "2026-02-01 00:00:00")],
        [txn("t1", "m1", "2026-02-28 10:00:00", "-10.00", counterparty_id="c1"),
         txn("t2", "m1", "2026-03-01 10:00:00", "20.00"),
         txn("t3", "m2", "2026-03-02 23:00:00", "-1.00", channel="card")],
    )
    table = MEMBER_FEATURES_DAILY.name
    args = ["backfill", "--start", d1.isoformat(), "--end", d3.isoformat()]
    assert main(args) == 0
    assert "built 3 day(s), skipped 0" in capsys.readouterr().out
    version = ctx.lake.version(table)

    # a re-run skips every day; a row late for every day of the range is not an
    # input of any of them
    append_transactions(ctx, [txn("t4", "m1", "2026-03-01 12:00:00", "-5.00",
                                  ingested_at="2026-03-04 06:00:01")])
    assert main(args) == 0
    assert "built 0 day(s), skipped 3" in capsys.readouterr().out
    assert ctx.lake.version(table) == version   # nothing rewritten

    # a row known by d2's cutoff changes d2 and d3, not d1
    append_transactions(ctx, [txn("t5", "m2", "2026-03-02 08:00:00", "-7.00",
                                  ingested_at="2026-03-03 06:00:00")])
    details = run_backfill(ctx, d1, d3)
    assert details["days_built"] == [d2.isoformat(), d3.isoformat()]
    assert details["days_skipped"] == [d1.isoformat()]
    rows = feature_values(ctx.lake.read(table))
    assert rows[("m2", d2)][5] == Decimal("8.00")   # outflow_sum_30d: t3 + t5

    # a partition rewritten behind the log's back is rebuilt
    empty = ctx.lake.read(table).filter(f"as_of_date = '{d1}'").limit(0)
    ctx.lake.replace_where(table, empty, {"as_of_date": d1}, ["as_of_date"])
    assert run_backfill(ctx, d1, d3)["days_built"] == [d1.isoformat()]

    # --force rebuilds everything, the chunk's days in one commit
    before = ctx.lake.version(table)
    assert run_backfill(ctx, d1, d3, force=True)["days_built"] == \
        [d1.isoformat(), d2.isoformat(), d3.isoformat()]
    assert ctx.lake.version(table) == (before or 0) + 1
    assert feature_values(ctx.lake.read(table)) == rows


def test_days_built_by_the_features_job_are_skipped(ctx: RunContext) -> None:
    """The direct job and the tiles fingerprint a day identically."""
    write_bronze(
        ctx,
        [member("m1", "2026-01-01 00:00:00"),
         member("m1", "2026-01-01 00:00:00", closed_at="2026-03-09 00:00:00",
                updated_at="2026-03-02 03:00:00")],
        [txn("t1", "m1", "2026-02-28 10:00:00", "-10.00", counterparty_id="c1"),
         txn("t2", "m1", "2026-03-01 23:59:59", "20.00", ingested_at="2026-03-02 06:00:00"),
         txn("t3", "m9", "2026-03-01 10:00:00", "-1.00", ingested_at="2026-03-03 00:00:00")],
    )
    assert main(["features", "--run-date", "2026-03-01"]) == 0
    details = run_backfill(ctx, dt.date(2026, 3, 1), dt.date(2026, 3, 2))
    assert details["days_skipped"] == ["2026-03-01"]
    assert details["days_built"] == ["2026-03-02"]
    latest = BuildLog(ctx.lake, ctx.settings.features.build_log_table,
                      MEMBER_FEATURES_DAILY.name).latest(dt.date(2026, 3, 1),
                                                          dt.date(2026, 3, 2))
    assert latest[dt.date(2026, 3, 1)].job == "features"
    assert latest[dt.date(2026, 3, 1)].late_txn_count == 1
    assert latest[dt.date(2026, 3, 2)].job == "backfill"


def test_backfill_refuses_an_inverted_range(capsys: pytest.CaptureFixture[str],
                                            home: object) -> None:
    assert main(["backfill", "--start", "2026-03-05", "--end", "2026-03-01"]) == 4
    err = [line for line in capsys.readouterr().err.splitlines()
           if line.startswith("memberscore:")]
    assert len(err) == 1 and "is after --end" in err[0]


def test_an_interrupted_backfill_keeps_its_written_chunks_and_resumes(
        ctx: RunContext, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of two days; the second chunk's commit fails: the first chunk stays
    written AND logged as built, the rest untouched (a chunk is one commit: none of
    its days is half there); the re-run builds only the days that were not written."""
    days = [dt.date(2026, 3, d) for d in range(1, 6)]
    write_bronze(
        ctx,
        [member("m1", "2026-01-01 00:00:00"), member("m2", "2026-02-01 00:00:00")],
        [txn(f"t{d}", "m1", f"2026-03-0{d} 10:00:00", f"-{d}.00") for d in range(1, 6)],
    )
    ctx = RunContext(dataclasses.replace(ctx.settings, features=dataclasses.replace(
        ctx.settings.features, backfill_chunk_days=2)), run_id=ctx.run_id, spark=ctx.spark)
    table = MEMBER_FEATURES_DAILY.name
    lake_class = type(ctx.lake)
    real_replace = lake_class.replace_where
    calls = {"n": 0}

    def failing_replace(lake: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        if name == table:
            calls["n"] += 1
            if calls["n"] == 2:   # one commit per chunk: the second chunk's fails
                raise OSError("disk full (injected)")
        return real_replace(lake, name, *args, **kwargs)

    monkeypatch.setattr(lake_class, "replace_where", failing_replace)
    with pytest.raises(OSError, match="injected"):
        snapshots.build_days(ctx, days)
    monkeypatch.setattr(lake_class, "replace_where", real_replace)

    written = sorted({r["as_of_date"] for r in ctx.lake.read(table).collect()})
    assert written == days[:2]
    latest = BuildLog(ctx.lake, ctx.settings.features.build_log_table, table).latest(
        days[0], days[-1])
    assert sorted(latest) == days[:2]

    details = run_backfill(ctx, days[0], days[-1])
    assert details["days_skipped"] == [d.isoformat() for d in days[:2]]
    assert details["days_built"] == [d.isoformat() for d in days[2:]]
    rows = feature_values(ctx.lake.read(table))
    assert rows[("m1", days[4])][5] == Decimal("15.00")   # outflow_sum_30d: 1+2+3+4+5
