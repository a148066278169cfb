"""The synthetic bank: deterministic, contract-shaped, realistic where the model needs
it (churners fade before they leave), and dirty only when asked to be."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import tracemalloc
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from memberscore.cli import main
from memberscore.landing import list_landing_files
from memberscore.local.landing_files import (
    generate_landing,
    jsonl_bytes,
    write_landing_file,
)
from memberscore.local.synthetic import (
    LABEL_HORIZON_DAYS,
    GenerateParams,
    SyntheticBank,
    generate,
    label_dates,
)
from memberscore.schemas import CHANNELS, LEGAL_FORMS, SOURCES, STATUSES

END = dt.date(2026, 3, 31)


@pytest.fixture(scope="module")
def clean_bank() -> SyntheticBank:
    """600 members over 120 days, no dirty rows: enough churners to see the signal."""
    return generate(GenerateParams(members=600, days=120, seed=11, end_date=END))


def transactions(bank: SyntheticBank) -> pa.Table:
    """Every delivered transaction, typed, with its landing day."""
    parts = []
    for f in bank.files_of("transactions"):
        t = f.table
        if f.format == "jsonl":
            t = t.set_column(t.schema.get_field_index("amount"), "amount",
                             pc.cast(t["amount"], pa.decimal128(18, 2)))
            for column in ("booked_at", "ingested_at"):
                t = t.set_column(t.schema.get_field_index(column), column,
                                 pc.strptime(t[column], "%Y-%m-%dT%H:%M:%SZ", "us"))
        else:
            for column in ("booked_at", "ingested_at"):
                t = t.set_column(t.schema.get_field_index(column), column,
                                 pc.cast(t[column], pa.timestamp("us")))
        parts.append(t.append_column("landing_date",
                                     pa.array([f.landing_date] * t.num_rows, pa.date32())))
    return pa.concat_tables(parts)


# ----------------------------------------------------------------------------- determinism


def test_same_arguments_give_the_same_bytes(tmp_path: Path) -> None:
    params = GenerateParams(members=60, days=65, seed=3, end_date=END, dirty_share=0.02)
    first = generate_landing(tmp_path / "a", params)
    second = generate_landing(tmp_path / "b", params)
    other = generate(GenerateParams(members=60, days=65, seed=4, end_date=END,
                                    dirty_share=0.02))

    names = sorted(p.relative_to(tmp_path / "a").as_posix() for p in first.paths)
    assert names == sorted(p.relative_to(tmp_path / "b").as_posix() for p in second.paths)
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert {"parquet", "csv", "jsonl"} == {Path(n).suffix.lstrip(".") for n in names}
    # what the stream wrote day by day is what `generate` holds in memory
    in_memory = generate(params)
    for f in in_memory.files:
        write_landing_file(tmp_path / "c", f)
    assert sorted(f.relative_path for f in in_memory.files) == names
    for name in names:
        assert (tmp_path / "c" / name).read_bytes() == (tmp_path / "a" / name).read_bytes()
    assert other.files_of("transactions")[5].table != in_memory.files_of("transactions")[5].table


def test_memory_holds_one_day_not_the_window(tmp_path: Path) -> None:
    """Writing 4x the days takes 4x the rows but not 4x the memory: the stream holds
    a day's rows (and the few late ones in flight), never the window's."""
    def peak(days: int) -> tuple[int, int]:
        params = GenerateParams(members=400, days=days, seed=9, end_date=END,
                                dirty_share=0.02)
        tracemalloc.start()
        try:
            summary = generate_landing(tmp_path / str(days), params)
            return tracemalloc.get_traced_memory()[1], summary.rows["transactions"]
        finally:
            tracemalloc.stop()

    peak(5)  # first use: imports and lookup tables, which are not the rows
    short_peak, short_rows = peak(20)
    long_peak, long_rows = peak(80)
    assert long_rows > 3.5 * short_rows
    assert long_peak < 1.5 * short_peak, (short_peak, long_peak)


def test_regenerating_replaces_the_days_folders(tmp_path: Path) -> None:
    root = tmp_path / "landing"
    generate_landing(root, GenerateParams(members=20, days=3, seed=1, end_date=END))
    stray = root / "transactions" / END.isoformat() / "old_feed.csv"
    stray.write_text("x\n")
    summary = generate_landing(root, GenerateParams(members=20, days=3, seed=2, end_date=END))
    assert not stray.exists()
    assert sorted(list_landing_files(root, "transactions", END)) == sorted(
        p for p in summary.paths if p.parent.name == END.isoformat()
        and p.parent.parent.name == "transactions")


# ----------------------------------------------------------------------------- contract


def test_files_have_the_declared_columns_and_valid_values(clean_bank: SyntheticBank) -> None:
    for source in SOURCES:
        for f in clean_bank.files_of(source):
            assert f.table.column_names == SOURCES[source].names, f.relative_path
    card = next(f for f in clean_bank.files_of("transactions") if f.format == "parquet")
    assert card.table.schema.field("amount").type == pa.decimal128(18, 2)
    assert card.table.schema.field("booked_at").type == pa.timestamp("us", tz="UTC")

    t = transactions(clean_bank)
    assert set(pc.unique(t["channel"]).to_pylist()) == set(CHANNELS)
    assert set(pc.unique(t["status"]).to_pylist()) == set(STATUSES)
    assert pc.unique(t["currency"]).to_pylist() == ["GBP"]
    assert pc.count_distinct(t["transaction_id"]).as_py() == t.num_rows
    assert t["member_id"].null_count == 0 and t["transaction_id"].null_count == 0
    assert pc.all(pc.less_equal(t["booked_at"], t["ingested_at"])).as_py()
    # a file of day D holds the rows that became known on D
    assert pc.all(pc.equal(pc.cast(t["ingested_at"], pa.date32()), t["landing_date"])).as_py()
    # late rows only with dirt: clean rows are known within a few hours of booking
    lag = pc.cast(pc.subtract(t["ingested_at"], t["booked_at"]), pa.int64())
    assert pc.max(lag).as_py() < 8 * 3600 * 1_000_000

    members = pa.concat_tables(f.table for f in clean_bank.files_of("members"))
    assert set(pc.unique(members["legal_form"]).to_pylist()) == set(LEGAL_FORMS)
    assert pc.all(pc.match_substring_regex(members["industry_code"], r"^\d{5}$")).as_py()


def test_rhythm_segments_and_recurring_counterparties(clean_bank: SyntheticBank) -> None:
    t = transactions(clean_bank)
    settled = t.filter(pc.equal(t["status"], "settled"))
    weekday = pc.day_of_week(settled["booked_at"])  # Monday = 0
    per_day = np.bincount(weekday.to_numpy(), minlength=7) / np.bincount(
        [d.weekday() for d in clean_bank.landing_days], minlength=7)
    assert per_day[6] < 0.7 * per_day[:5].mean()  # quieter Sundays

    # payroll by BACS on the last working day of the month
    payroll = settled.filter(pc.starts_with(settled["counterparty_id"], "PAY"))
    assert set(pc.unique(payroll["channel"]).to_pylist()) == {"bacs"}
    booked = payroll["booked_at"].to_pylist()
    assert all(d.weekday() < 5 and (d + dt.timedelta(days=3)).month != d.month
               and (d.weekday() == 4 or (d + dt.timedelta(days=1)).month != d.month)
               for d in booked)

    # quarterly VAT and monthly rent recur to the same counterparties
    vat = settled.filter(pc.starts_with(settled["counterparty_id"], "HMRC"))
    assert vat.num_rows > 0 and set(pc.unique(vat["channel"]).to_pylist()) == {"direct_debit"}
    rent = settled.filter(pc.starts_with(settled["counterparty_id"], "LL"))
    per_member = rent.group_by("member_id").aggregate([("counterparty_id", "count_distinct"),
                                                       ("counterparty_id", "count")])
    assert pc.max(per_member["counterparty_id_count_distinct"]).as_py() == 1
    assert np.median(per_member["counterparty_id_count"].to_numpy()) >= 3  # Jan, Feb, Mar

    # shops take cash and small tickets; consultancies invoice large amounts
    truth = clean_bank.truth
    by_member = settled.join(truth.select(["member_id", "industry_code"]), "member_id")
    spend = by_member.filter(pc.less(by_member["amount"], 0))
    tickets = spend.group_by("industry_code").aggregate([("amount", "approximate_median")])
    median = dict(zip(tickets["industry_code"].to_pylist(),
                      tickets["amount_approximate_median"].to_pylist(), strict=True))
    assert median["70229"] < median["47110"]  # more negative = bigger outflows


def test_labels_follow_their_definition(clean_bank: SyntheticBank) -> None:
    truth = {r["member_id"]: r for r in clean_bank.truth.to_pylist()}
    start = clean_bank.params.start_date
    seen_dates = set()
    for f in clean_bank.files_of("member_outcomes"):
        for row in f.table.to_pylist():
            label = dt.date.fromisoformat(row["label_date"])
            seen_dates.add(label)
            assert f.landing_date == label + dt.timedelta(days=LABEL_HORIZON_DAYS + 1)
            churn = truth[row["member_id"]]["churn_date"]
            closes_in_horizon = churn is not None and \
                churn <= label + dt.timedelta(days=LABEL_HORIZON_DAYS)
            assert (row["churned"] == "true") == closes_in_horizon
            assert churn is None or churn >= label  # only members not closed before L
    assert sorted(seen_dates) == label_dates(start, END)

    closed = sum(1 for r in truth.values() if r["closed_at"] is not None
                 and r["churn_date"] >= start)
    assert 0.05 <= closed / len(truth) <= 0.2
    labels = pa.concat_tables(f.table for f in clean_bank.files_of("member_outcomes"))
    positive = pc.mean(pc.cast(pc.equal(labels["churned"], "true"), pa.float64())).as_py()
    assert 0.015 <= positive <= 0.1


def test_members_feed_is_a_snapshot_history(clean_bank: SyntheticBank) -> None:
    first_day = clean_bank.files_of("members")[0]
    assert first_day.landing_date == clean_bank.params.start_date
    start = dt.datetime.combine(first_day.landing_date, dt.time(), dt.UTC)
    onboarded = pc.less(clean_bank.truth["onboarded_at"], pa.scalar(start, pa.timestamp(
        "us", tz="UTC")))
    assert first_day.table.num_rows >= pc.sum(onboarded).as_py()

    rows = pa.concat_tables(f.table for f in clean_bank.files_of("members")).to_pylist()
    latest: dict[str, dict[str, str]] = {}
    for row in sorted(rows, key=lambda r: r["updated_at"]):
        latest[row["member_id"]] = row
    assert set(latest) == set(clean_bank.truth["member_id"].to_pylist())
    for member in clean_bank.truth.to_pylist():
        closed = member["closed_at"]
        expected = None if closed is None else closed.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert latest[member["member_id"]]["closed_at"] == expected


# ----------------------------------------------------------------------------- churn signal


def test_churners_inflows_fade_before_they_leave(clean_bank: SyntheticBank) -> None:
    """The planted signal, computed from the generated files: a churner's inflows over
    the 3 weeks before closing are a fraction of its inflows 6-10 weeks before, while
    members who stay keep a steady level over the same calendar weeks."""
    t = transactions(clean_bank)
    t = t.filter(pc.and_(pc.equal(t["status"], "settled"), pc.greater(t["amount"], 0)))
    day = pc.cast(t["booked_at"], pa.date32()).to_numpy().astype("datetime64[D]")
    amount = pc.cast(t["amount"], pa.float64()).to_numpy()
    member = t["member_id"].to_numpy(zero_copy_only=False)
    start = np.datetime64(clean_bank.params.start_date)

    def inflow(who: str, first: np.datetime64, last: np.datetime64) -> float:
        pick = (member == who) & (day >= first) & (day < last)
        return float(amount[pick].sum())

    churner_ratios, stayer_ratios = [], []
    for row in clean_bank.truth.to_pylist():
        if row["churn_date"] is not None and row["closed_at"] is not None \
                and not row["is_abrupt_churn"]:
            close = np.datetime64(row["churn_date"])
            if close - start < 75:
                continue
            before = inflow(row["member_id"], close - 70, close - 42)
            recent = inflow(row["member_id"], close - 21, close)
            if before > 0:
                churner_ratios.append(recent / before * 28 / 21)
        elif row["churn_date"] is None and not row["has_dip"] and \
                row["onboarded_at"].date() < clean_bank.params.start_date:
            close = np.datetime64(END) - 10
            before = inflow(row["member_id"], close - 70, close - 42)
            if before > 0:
                stayer_ratios.append(inflow(row["member_id"], close - 21, close)
                                     / before * 28 / 21)
    assert len(churner_ratios) >= 15
    assert np.median(churner_ratios) < 0.45
    assert 0.75 < np.median(stayer_ratios) < 1.3


def test_labelled_churners_look_different_at_their_label_date(
        clean_bank: SyntheticBank) -> None:
    """What a model sees at label date L (labels with 60 days of history): positives'
    inflows over the last 30 days have fallen against the 30 days before, they were
    active on fewer days, and they have more failed payments; negatives are steady."""
    t = transactions(clean_bank)
    day = pc.cast(t["booked_at"], pa.date32()).to_numpy().astype("datetime64[D]")
    member = t["member_id"].to_numpy(zero_copy_only=False)
    failed = pc.equal(t["status"], "failed").to_numpy(zero_copy_only=False)
    settled = pc.equal(t["status"], "settled").to_numpy(zero_copy_only=False)
    amount = pc.cast(t["amount"], pa.float64()).to_numpy()
    start = np.datetime64(clean_bank.params.start_date)
    order = np.argsort(member, kind="stable")
    members, first = np.unique(member[order], return_index=True)
    rows_of = dict(zip(members, np.split(order, first[1:]), strict=True))
    stats: dict[bool, list[tuple[float, int, int]]] = {True: [], False: []}
    for f in clean_bank.files_of("member_outcomes"):
        for row in f.table.to_pylist():
            label = np.datetime64(row["label_date"])
            if label - start < 60:
                continue
            mine = rows_of.get(row["member_id"], np.array([], np.int64))
            d, a, ok, bad = day[mine], amount[mine], settled[mine], failed[mine]
            recent = (d > label - 30) & (d <= label)
            before = (d > label - 60) & (d <= label - 30)
            inflow_before = a[before & ok & (a > 0)].sum()
            ratio = a[recent & ok & (a > 0)].sum() / inflow_before \
                if inflow_before > 0 else np.nan
            stats[row["churned"] == "true"].append(
                (ratio, len(np.unique(d[recent & ok])), int(bad[recent].sum())))
    positives, negatives = np.array(stats[True]), np.array(stats[False])
    assert len(positives) >= 30
    assert np.nanmedian(positives[:, 0]) < 0.7
    assert 0.85 < np.nanmedian(negatives[:, 0]) < 1.2
    assert positives[:, 1].mean() < 0.9 * negatives[:, 1].mean()
    assert positives[:, 2].mean() > 3 * negatives[:, 2].mean()


# ----------------------------------------------------------------------------- dirt


def test_dirty_rows_only_when_asked() -> None:
    dirty = generate(GenerateParams(members=200, days=30, seed=5, end_date=END,
                                    dirty_share=0.02))
    clean = generate(GenerateParams(members=200, days=30, seed=5, end_date=END))
    assert clean.dirty == {"transactions": {}, "members": {}, "member_outcomes": {}}
    kinds = dirty.dirty["transactions"]
    assert {"duplicate", "late", "foreign_currency", "null_member_id",
            "unparseable_amount"} <= set(kinds)
    share = sum(kinds.values()) / clean.rows("transactions")
    assert 0.01 < share < 0.03
    # dirty rows are extra copies: the clean rows are all still delivered
    def ids(bank: SyntheticBank, known_by: dt.date = END) -> set[str]:
        return {i for f in bank.files_of("transactions") if f.landing_date <= known_by
                for i in f.table["transaction_id"].to_pylist()}

    # (a late row arrives up to 5 days later, so it may still be on its way at the end)
    assert ids(clean, known_by=END - dt.timedelta(days=6)) <= ids(dirty)
    texts = pa.concat_tables(f.table for f in dirty.files_of("transactions")
                             if f.format == "jsonl")
    bad = pc.invert(pc.match_substring_regex(texts["amount"], r"^-?\d+\.\d\d$"))
    assert pc.sum(bad).as_py() == kinds["unparseable_amount"]


def test_a_landing_days_dirt_comes_from_its_own_bookings() -> None:
    """Ingest refuses a day whose quarantined share passes 1%, so a small bank's quiet
    Sunday must not also receive a busy Saturday's dirt: every landing day's dirty rows
    are copies of that day's own bookings, at most `dirty_share` of them plus one (the
    rounding), and a resent duplicate lands on its original's day."""
    share = 0.003
    params = GenerateParams(members=400, days=60, seed=7, end_date=END, dirty_share=share)
    dirty = generate(params)
    booked = Counter(t.date() for t in transactions(
        generate(dataclasses.replace(params, dirty_share=0.0)))["booked_at"].to_pylist())
    first_landed: dict[str, dt.date] = {}
    dirt: Counter[dt.date] = Counter()
    for f in sorted(dirty.files_of("transactions"), key=lambda f: f.landing_date):
        for txn_id in f.table["transaction_id"].to_pylist():
            if txn_id is None or int(txn_id[1:]) >= 5_000_000_000:  # a dirty copy's number
                dirt[f.landing_date] += 1
            elif txn_id in first_landed:  # a resent duplicate
                assert first_landed[txn_id] == f.landing_date, txn_id
                dirt[f.landing_date] += 1
            else:
                first_landed[txn_id] = f.landing_date
    kinds = dirty.dirty["transactions"]
    assert sum(dirt.values()) == sum(n for kind, n in kinds.items() if kind != "late") > 20
    over = {day: (n, booked[day]) for day, n in dirt.items() if n > share * booked[day] + 1}
    assert not over


# ----------------------------------------------------------------------------- writers


def test_jsonl_writer_escapes_and_keeps_nulls() -> None:
    table = pa.table({"a": ["x", None, 'say "hi"\\\n'], "b": ["1", "2", "3"]})
    lines = jsonl_bytes(table).decode("utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        {"a": "x", "b": "1"}, {"a": None, "b": "2"}, {"a": 'say "hi"\\\n', "b": "3"}]
    assert jsonl_bytes(table.slice(0, 0)) == b""


def test_cli_writes_where_it_says(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--members", "30", "--days", "5", "--seed", "2",
                 "--end-date", "2026-03-31", "--clean"]) == 0
    out = capsys.readouterr().out
    landing = home / "landing"
    assert f"under {landing}" in out
    assert "(2026-03-27 .. 2026-03-31, seed 2)" in out
    files = sorted((landing / "transactions" / "2026-03-27").iterdir())
    assert [p.name for p in files] == ["card_2026-03-27.parquet", "payments_2026-03-27.jsonl"]
    members = pa_csv.read_csv(landing / "members" / "2026-03-27" / "members_2026-03-27.csv")
    assert members.num_rows >= 25
    card = pq.read_table(files[0])
    assert card.num_rows > 0
    assert "dirty" not in out


def test_cli_refuses_a_negative_seed(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--members", "5", "--days", "2", "--seed", "-1"]) == 4
    assert "seed must be 0 or more, found -1" in capsys.readouterr().err
    assert not (home / "landing").exists()
