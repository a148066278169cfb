"""The reference distributions drift monitoring compares each scored day against.

`train` logs one JSON document per training run, artifact
`baseline/feature_baseline.json`, describing every model feature and the model's
score over the point-in-time training set (training and holdout rows, the population
the model was built and judged on).  Format (version 1):

    {
      "format": "memberscore.feature_baseline",
      "format_version": 1,
      "population": "training_set",
      "rows": 5321,                      # rows described
      "label_rate": 0.037,               # their churn rate (prediction drift compares)
      "label_date_min": "2026-01-08", "label_date_max": "2026-03-31",
      "feature_table": "member_features_daily", "feature_table_version": 41,
      "binning": "deciles",
      "bin_rule": "right_closed",
      "columns": {
        "<column>": {
          "role": "feature" | "score",
          "count": 5300,                 # non-null values
          "null_count": 21, "null_share": 0.0039,   # null (or non-finite) values
          "mean": 1.5, "std": 0.7, "min": 0.0, "max": 9.0,   # null when count is 0
          "percentiles": [p0, p1, ..., p100],                # 101 values, [] when count is 0
          "bin_edges": [e1, ..., e(k-1)],   # inner cut points, strictly increasing
          "bin_proportions": [q0, ..., q(k-1)]  # k values summing to 1 (non-null values)
        }, ...
      },
      "by_weekday": {                    # optional: the reference weeks (see below)
        "population": "reference_weeks",
        "<monday..sunday>": {"as_of_dates": ["2026-03-02", ...], "rows": 6600,
                             "columns": {"<column>": {...as above...}, ...}}, ...
      }
    }

The reference weeks.  Members' activity follows the calendar (quiet weekends), and a
feature such as `days_since_last_txn` is distributed differently as of a Monday than
as of a Tuesday.  Labels land weekly, so the training snapshots all fall on one
weekday; compared with them alone, a stationary bank alerted on every Saturday,
Sunday and Monday.  So `train` also describes the scoring population of the 28
daily snapshots that end on its last training snapshot (every member of each day,
rows with complete windows only, at most `REFERENCE_MAX_ROWS` of them, a seeded
sample beyond that), pooled by weekday: four of each, so one month end or payday
does not make a weekday's reference.  Monitor compares a day with the section of its
weekday, and with `columns` when the baseline has none (baselines logged before this
key existed, or a weekday without complete rows).

Binning: the edges are the distinct deciles (10th..90th percentile, numpy's linear
interpolation) of the non-null values, so a column with many ties has fewer than ten
bins (all zeros gives edges [0.0] and bins (-inf, 0], (0, inf)).  Bins are right
closed: bin i holds the values v with e(i) < v <= e(i+1), taking e(0) = -inf and
e(k) = +inf; equivalently i = the number of edges strictly below v (`assign_bins`,
numpy `searchsorted(edges, v, side="left")`, or in Spark the sum over edges of
`(col > e).cast("int")`).  Proportions are over non-null values; nulls are reported
separately as `null_share`.  A proportion may be 0: a PSI computation must floor it
(e.g. at 1e-6).  Every number is a finite float or null (strict JSON, no NaN).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

FORMAT = "memberscore.feature_baseline"
FORMAT_VERSION = 1
ARTIFACT_DIR = "baseline"
ARTIFACT_FILE = "feature_baseline.json"
ARTIFACT_PATH = f"{ARTIFACT_DIR}/{ARTIFACT_FILE}"
SCORE_COLUMN = "score"
DECILES = tuple(q / 10 for q in range(1, 10))
REFERENCE_MAX_ROWS = 400_000
"""The reference weeks' rows described at most (a seeded sample above it): deciles
and percentiles of 57,000 rows a weekday are as good as of millions, and `train`
holds them in its own process."""


def describe_column(values: pd.Series | np.ndarray, role: str) -> dict[str, Any]:
    """Summary statistics, percentiles, decile edges and bin proportions of one column."""
    array = np.asarray(values, dtype="float64")
    present = array[np.isfinite(array)]
    total = len(array)
    nulls = total - len(present)
    out: dict[str, Any] = {
        "role": role,
        "count": len(present),
        "null_count": nulls,
        "null_share": _number(nulls / total) if total else None,
    }
    if len(present) == 0:
        return {**out, "mean": None, "std": None, "min": None, "max": None,
                "percentiles": [], "bin_edges": [], "bin_proportions": []}
    edges = decile_edges(present)
    return {
        **out,
        "mean": _number(present.mean()),
        "std": _number(present.std(ddof=0)),
        "min": _number(present.min()),
        "max": _number(present.max()),
        "percentiles": [_number(v) for v in np.quantile(present, np.linspace(0, 1, 101))],
        "bin_edges": edges,
        "bin_proportions": bin_proportions(edges, present),
    }


def decile_edges(values: np.ndarray) -> list[float]:
    """The distinct deciles of the (non-null) values: the inner bin edges."""
    quantiles = np.quantile(np.asarray(values, dtype="float64"), DECILES)
    return [float(v) for v in np.unique(quantiles)]


def assign_bins(edges: list[float], values: np.ndarray) -> np.ndarray:
    """The bin index of each value (right-closed bins; see the module docstring)."""
    return np.searchsorted(np.asarray(edges, dtype="float64"),
                           np.asarray(values, dtype="float64"), side="left")


def bin_proportions(edges: list[float], values: np.ndarray) -> list[float]:
    """The share of the non-null `values` in each of the len(edges) + 1 bins."""
    array = np.asarray(values, dtype="float64")
    present = array[np.isfinite(array)]
    if len(present) == 0:
        return [0.0] * (len(edges) + 1)
    counts = np.bincount(assign_bins(edges, present), minlength=len(edges) + 1)
    return [float(c) / len(present) for c in counts]


def build_baseline(features: pd.DataFrame, scores: np.ndarray, *,
                   feature_columns: tuple[str, ...], label_dates: pd.Series,
                   feature_table: str, feature_table_version: int | None,
                   label_rate: float | None = None,
                   reference_weeks: Mapping[dt.date, tuple[pd.DataFrame, np.ndarray]]
                   | None = None) -> dict[str, Any]:
    """The baseline document of one training set (see the module docstring);
    `label_rate` is its churn rate, what monitor compares the day's mean score with;
    `reference_weeks` (snapshot day -> its rows' features and scores) adds the
    `by_weekday` section."""
    columns: dict[str, Any] = {
        name: describe_column(features[name], "feature") for name in feature_columns
    }
    columns[SCORE_COLUMN] = describe_column(scores, "score")
    dates = pd.to_datetime(label_dates).dt.date
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "population": "training_set",
        "rows": len(features),
        "label_rate": _number(label_rate) if label_rate is not None else None,
        "label_date_min": _iso(min(dates)) if len(dates) else None,
        "label_date_max": _iso(max(dates)) if len(dates) else None,
        "feature_table": feature_table,
        "feature_table_version": feature_table_version,
        "binning": "deciles",
        "bin_rule": "right_closed",
        "columns": columns,
        **({"by_weekday": describe_reference_weeks(reference_weeks,
                                                   feature_columns=feature_columns)}
           if reference_weeks else {}),
    }


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def weekday_name(day: dt.date) -> str:
    """The `by_weekday` key of a day."""
    return WEEKDAYS[day.weekday()]


def describe_reference_weeks(days: Mapping[dt.date, tuple[pd.DataFrame, np.ndarray]], *,
                             feature_columns: tuple[str, ...]) -> dict[str, Any]:
    """The `by_weekday` section: the snapshot days' rows (model features and their
    scores) pooled by weekday, each pool described like the training set."""
    pools: dict[str, list[dt.date]] = {}
    for day in sorted(days):
        pools.setdefault(weekday_name(day), []).append(day)
    out: dict[str, Any] = {"population": "reference_weeks"}
    for key in WEEKDAYS:
        if key not in pools:
            continue
        features = pd.concat([days[d][0] for d in pools[key]], ignore_index=True)
        scores = np.concatenate([days[d][1] for d in pools[key]])
        columns = {name: describe_column(features[name], "feature")
                   for name in feature_columns}
        columns[SCORE_COLUMN] = describe_column(scores, "score")
        out[key] = {"as_of_dates": [_iso(d) for d in pools[key]], "rows": len(features),
                    "columns": columns}
    return out


def dumps(baseline: Mapping[str, Any]) -> str:
    """Strict JSON (no NaN/Infinity), stable key order."""
    return json.dumps(baseline, indent=2, sort_keys=False, allow_nan=False) + "\n"


def _number(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _iso(value: dt.date) -> str:
    return value.isoformat()
