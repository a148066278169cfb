"""Point-in-time training sets: each label joined to the feature snapshot a model
would have had the day before, and never to anything later.

A label row says whether a member had churned as of `label_date`.  The features a
model may learn from are those of the latest snapshot taken strictly before that day
(`as_of_date < label_date`) and not older than `ttl_days` (`as_of_date >=
label_date - ttl_days`).  A snapshot on or after the label date may already reflect
the outcome, so joining it would leak the answer into the training set.

Method (no pairing of every label with every snapshot): each label row is exploded
into its `ttl_days` candidate dates `label_date - 1 .. label_date - ttl_days`, the
candidates are equi-joined to the snapshots on `(member_id, as_of_date)`, and a
window over `(member_id, label_date)` keeps the latest candidate that matched.  The
work is `labels x ttl_days` rows through one hash- or sort-merge join on the table's
own keys, whatever the number of snapshot days; a snapshot outside a label's TTL
window is never a join candidate, so neither leakage nor staleness can slip in.
Labels without any snapshot in their window are kept, with `has_snapshot` false, so
the caller can count (and then drop) them; this module never counts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from memberscore.schemas import quoted

LABEL_KEYS = ("member_id", "label_date")
SNAPSHOT_DATE = "snapshot_date"
HAS_SNAPSHOT = "has_snapshot"
SUPERSEDED = "superseded_label_rows"


def latest_labels(bronze_labels: DataFrame, up_to: Column | None = None) -> DataFrame:
    """One label per (member_id, label_date): the row that landed last wins.

    A later landing file corrects an earlier one (the outcome feed re-sends a label
    when it changes); within the same landing day the last `source_file` in name
    order wins, so the choice is deterministic.  `superseded_label_rows` tells how
    many other rows the kept one replaced, for the caller to report.  `up_to`, when
    given, is a boolean Column over `label_date` that selects the labels to keep
    (e.g. `label_date <= D`).

    Output: member_id, label_date, churned, landing_date, superseded_label_rows.
    """
    rows = bronze_labels if up_to is None else bronze_labels.filter(up_to)
    key = Window.partitionBy(*LABEL_KEYS)
    newest_first = key.orderBy(F.col("landing_date").desc_nulls_last(),
                               F.col("source_file").desc_nulls_last())
    return (
        rows
        .withColumn("_rank", F.row_number().over(newest_first))
        .withColumn(SUPERSEDED, (F.count(F.lit(1)).over(key) - 1).cast(T.IntegerType()))
        .filter(F.col("_rank") == 1)
        .select("member_id", "label_date", "churned", "landing_date", SUPERSEDED)
    )


def candidate_dates(label_date: Column, ttl_days: int) -> Column:
    """The snapshot days a label may use, newest first: label_date - 1 .. label_date - ttl."""
    _check_ttl(ttl_days)
    return F.sequence(F.date_sub(label_date, 1), F.date_sub(label_date, ttl_days),
                      F.expr("INTERVAL -1 DAY"))


def attach_snapshots(labels: DataFrame, snapshots: DataFrame, feature_columns: Sequence[str],
                     ttl_days: int) -> DataFrame:
    """Every label row with the values of its point-in-time snapshot.

    `labels` must hold one row per (member_id, label_date) (see `latest_labels`);
    `snapshots` is the feature table (keys member_id, as_of_date).  Every label column
    is kept; `snapshot_date` is the as_of_date of the snapshot used and `has_snapshot`
    is false (features null) when no snapshot lies in
    [label_date - ttl_days, label_date - 1].
    """
    _check_ttl(ttl_days)
    label_columns = list(labels.columns)
    features = list(feature_columns)
    clash = sorted(set(features) & set(label_columns))
    if clash:
        raise ValueError(f"feature columns {clash} clash with label columns {label_columns}")
    candidates = labels.withColumn("_candidate_date",
                                   F.explode(candidate_dates(F.col("label_date"), ttl_days)))
    snapshot_rows = snapshots.select(
        F.col("member_id").alias("_snapshot_member_id"),
        F.col("as_of_date").alias(SNAPSHOT_DATE),
        *features,
    )
    matched = F.col("_snapshot_member_id").isNotNull()
    joined = candidates.join(
        snapshot_rows,
        on=(F.col("member_id") == F.col("_snapshot_member_id"))
        & (F.col("_candidate_date") == F.col(SNAPSHOT_DATE)),
        how="left",
    )
    latest_first = Window.partitionBy(*LABEL_KEYS).orderBy(
        F.col(SNAPSHOT_DATE).desc_nulls_last())
    return (
        joined
        .withColumn("_rank", F.row_number().over(latest_first))
        .filter(F.col("_rank") == 1)
        .select(*label_columns, F.col(SNAPSHOT_DATE), matched.alias(HAS_SNAPSHOT), *features)
    )


def model_inputs(df: DataFrame, feature_columns: Sequence[str], keep: Sequence[str] = (),
                 types: Mapping[str, T.DataType] | None = None) -> DataFrame:
    """`keep` columns as they are, then each feature cast to its model type: the
    model's input.

    Features are doubles unless `types` says otherwise (a model's signature may):
    models see every feature as a float64 (nulls become NaN for the imputer), and the
    same cast is used to train and to score, so both see identical numbers.
    """
    types = types or {}
    # One SQL projection: building the same plan from Column objects costs ~40 py4j
    # round trips per column (a measurable share of a one-day scoring job).
    return df.selectExpr(
        *[quoted(c) for c in keep],
        *[f"CAST({quoted(c)} AS {types.get(c, T.DoubleType()).simpleString()}) AS {quoted(c)}"
          for c in feature_columns])



def needed_snapshot_dates(label_dates: Iterable[dt.date]) -> list[dt.date]:
    """The snapshot each label should find: the day before its label_date (sorted)."""
    return sorted({d - dt.timedelta(days=1) for d in label_dates})


REFERENCE_DAYS = 28


def reference_days(last_snapshot: dt.date) -> list[dt.date]:
    """The drift baseline's reference weeks: the 28 snapshot days ending on the last
    training snapshot, four of each weekday (memberscore.models.baseline)."""
    return [last_snapshot - dt.timedelta(days=n) for n in range(REFERENCE_DAYS - 1, -1, -1)]


def date_runs(dates: Iterable[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """Consecutive days grouped into (first, last) runs: [1,2,3,5] -> [(1,3), (5,5)]."""
    runs: list[tuple[dt.date, dt.date]] = []
    for day in sorted(set(dates)):
        if runs and day - runs[-1][1] == dt.timedelta(days=1):
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def format_runs(runs: Sequence[tuple[dt.date, dt.date]]) -> str:
    """`2026-01-01..2026-01-03, 2026-01-05` for messages."""
    return ", ".join(a.isoformat() if a == b else f"{a.isoformat()}..{b.isoformat()}"
                     for a, b in runs)


def _check_ttl(ttl_days: int) -> None:
    if ttl_days < 1:
        raise ValueError(f"feature_ttl_days must be at least 1, found {ttl_days}")
