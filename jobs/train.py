"""`memberscore train --run-date D`: a point-in-time training set from the labels up
to D, a model fitted and judged on a time split, logged and registered in MLflow.

1. Labels: `bronze_member_outcomes` rows with label_date <= D that had landed by D
   (so re-training an old day gives the same set), one per (member_id, label_date),
   the latest landing winning.
2. Snapshots: every label wants the snapshot of the day before its label_date, and
   the drift baseline the 28 days ending on the last of them (its reference weeks,
   memberscore.models.baseline; days ingest has not run for are left out); the days
   missing from `member_features_daily` are built first with `backfill` (logged), or,
   with `--no-backfill`, the job fails listing them.
3. Training set: each label joined to its latest snapshot no older than
   `models.feature_ttl_days` and strictly before its label_date (transforms.training);
   labels without one are dropped and counted.  The feature table is read at one
   Delta version, which is logged.
4. Model: holdout = the last `models.holdout_weeks` weeks of label dates; fitted on
   the rest; metrics, features, baseline, signature and input example logged.
5. Registry: a new version of every name in `models.names`, aliased `champion` when
   it beats the current champion on this holdout (or there is none), else
   `challenger`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from memberscore.args import iso_date
from memberscore.context import JobResult, RunContext
from memberscore.errors import MemberscoreError, ModelError
from memberscore.feature_registry import model_feature_names, required_history_days
from memberscore.ingest_log import ingested_days
from memberscore.models.baseline import REFERENCE_MAX_ROWS, build_baseline
from memberscore.models.estimator import (
    LABEL,
    TimeSplit,
    TrainedModel,
    check_trainable,
    churn_probability,
    fit,
    time_split,
)
from memberscore.models.history import History
from memberscore.models.promotion import Decision, calibration, champion_auc, decide
from memberscore.models.registry import ModelRegistry, ResolvedModel
from memberscore.models.tracking import configure_mlflow
from memberscore.models.training_run import LoggedRun, log_training_run, run_name
from memberscore.schemas import bronze_table
from memberscore.snapshots import build_days
from memberscore.tables import MEMBER_FEATURES_DAILY
from memberscore.transforms.training import (
    HAS_SNAPSHOT,
    SNAPSHOT_DATE,
    SUPERSEDED,
    attach_snapshots,
    date_runs,
    format_runs,
    latest_labels,
    model_inputs,
    needed_snapshot_dates,
    reference_days,
)

log = logging.getLogger(__name__)

LABELS_TABLE = bronze_table("member_outcomes")
HISTORY = "history_days"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-date", type=iso_date, required=True,
                        help="the day to process, YYYY-MM-DD (UTC)")
    parser.add_argument("--no-backfill", action="store_true",
                        help="fail, listing the days, instead of backfilling feature "
                             "snapshots the labels need")


def run(ctx: RunContext, args: argparse.Namespace) -> JobResult:
    run_date: dt.date = args.run_date
    conf = ctx.settings.models
    features = tuple(model_feature_names())

    labels = _labels(ctx, run_date)
    label_dates = sorted(row[0] for row in labels.select("label_date").distinct().collect())
    if not label_dates:
        raise ModelError(f"{LABELS_TABLE} has no labels with label_date <= {run_date} "
                         f"that had landed by {run_date}; ingest the member_outcomes "
                         "feed, then run train again")
    required = required_history_days(features)
    history = _history(ctx, label_dates, required)
    if not history.complete_label_dates:
        raise ModelError(history.failure(labels.count()))
    # the labels' snapshots, and the weeks of snapshots the drift baseline describes
    needed = needed_snapshot_dates(history.complete_label_dates)
    reference = _buildable(ctx, [d for d in reference_days(needed[-1]) if history.complete(d)],
                           needed)
    backfilled = _ensure_snapshots(ctx, sorted(set(needed) | set(reference)),
                                   backfill=not args.no_backfill)

    table = MEMBER_FEATURES_DAILY.name
    table_version = ctx.lake.version(table)
    snapshots = ctx.lake.read(table, version=table_version)
    _require_columns(snapshots, (*features, HISTORY), table, table_version)
    attached = attach_snapshots(labels, snapshots, (*features, HISTORY),
                                conf.feature_ttl_days)
    frame = model_inputs(attached, features, keep=["member_id", "label_date", LABEL,
                                                   SNAPSHOT_DATE, HAS_SNAPSHOT, SUPERSEDED,
                                                   HISTORY]
                         ).toPandas()  # sklearn trains in this process
    counts, usable = _usable_rows(frame, required, set(history.complete_label_dates))
    log.info("training set: %s", " ".join(f"{k}={v}" for k, v in counts.items()))
    if usable.empty and counts["labels_dropped_incomplete_window"]:
        raise ModelError(history.failure(counts["labels_dropped_incomplete_window"]))

    split = time_split(usable, conf.holdout_weeks)
    check_trainable(split, conf.min_training_rows)
    trained = fit(split, features, conf)
    counts.update(train_rows=len(split.train), holdout_rows=len(split.holdout))
    reference_rows = {day: (rows, churn_probability(trained.pipeline, rows, features))
                      for day, rows in _reference_rows(snapshots, reference, features,
                                                       required).items()}
    baseline = build_baseline(usable, churn_probability(trained.pipeline, usable, features),
                              feature_columns=features, label_dates=usable["label_date"],
                              feature_table=table, feature_table_version=table_version,
                              label_rate=float(usable[LABEL].mean()),
                              reference_weeks=reference_rows)

    setup = configure_mlflow(ctx)
    logged = log_training_run(
        setup, trained=trained, example=split.holdout, baseline=baseline, counts=counts,
        params={"run_date": run_date, "feature_table": table,
                "feature_table_version": table_version,
                "feature_ttl_days": conf.feature_ttl_days, "holdout_weeks": conf.holdout_weeks,
                "holdout_start": split.holdout_start, "last_label_date": split.last_label_date,
                "backfilled_snapshot_days": format_runs(backfilled) or "none"},
        tags={"memberscore.run_id": ctx.run_id, "memberscore.env": ctx.env,
              "memberscore.run_date": run_date.isoformat()},
        run_name=run_name(run_date, ctx.run_id),
    )
    registry = ModelRegistry(setup)
    outcomes = [_register(registry, name, logged, trained, split, ctx) for name in conf.names]

    auc = trained.holdout_metrics["auc"]
    return JobResult(
        job="train",
        rows={"training_set": counts["training_set_rows"]},
        details={"mlflow_run_id": logged.run_id, "model_uri": logged.model_uri,
                 "holdout_auc": auc, "feature_table_version": table_version,
                 "counts": counts, "backfilled": [(a.isoformat(), b.isoformat())
                                                  for a, b in backfilled],
                 "versions": {m.name: {"version": m.version, "alias": d.alias,
                                       "reason": d.reason} for m, d in outcomes}},
        messages=[
            f"training set: {counts['training_set_rows']} rows from {counts['labels_total']} "
            f"labels up to {run_date} ({counts['labels_dropped_no_snapshot']} dropped: no "
            f"snapshot within {conf.feature_ttl_days} days before the label date; "
            f"{counts['labels_dropped_incomplete_window']} dropped: their snapshot saw "
            f"less than the {required} days of history the model's windows need), "
            f"{table} version {table_version}",
            f"holdout {split.holdout_start}..{split.last_label_date}: "
            f"{len(split.holdout)} rows, AUC {auc:.4f}, Brier "
            f"{trained.holdout_metrics['brier']:.4f}, mean prediction "
            f"{trained.holdout_metrics['mean_prediction']:.4f} against a churn rate of "
            f"{trained.holdout_metrics['churn_rate']:.4f} "
            f"({calibration(trained.holdout_metrics).note})",
            *[f"registered {m.name} version {m.version} as @{d.alias}: {d.reason}"
              for m, d in outcomes],
            f"MLflow run {logged.run_id} in {setup.experiment_name}"
            + (f" (local store under {ctx.paths.mlflow})" if setup.artifact_root else ""),
        ],
    )


def _labels(ctx: RunContext, run_date: dt.date) -> DataFrame:
    if not ctx.lake.exists(LABELS_TABLE):
        raise ModelError(f"there are no outcome labels: table {LABELS_TABLE} does not exist; "
                         "run `memberscore ingest` for the days whose member_outcomes "
                         "files have landed, then run train again")
    known_by_run_date = (F.col("label_date") <= run_date) & (F.col("landing_date") <= run_date)
    return latest_labels(ctx.lake.read(LABELS_TABLE), up_to=known_by_run_date)


def _buildable(ctx: RunContext, week: list[dt.date], needed: list[dt.date]
               ) -> list[dt.date]:
    """The reference days that have a snapshot or can have one (ingest has run for
    them); the others are left out of the baseline, not refused, as are days whose
    windows cannot be complete (never built for it)."""
    built = _built_days(ctx, week)
    ingested = ingested_days(ctx.lake, ctx.settings.ingest.log_table)
    return [day for day in week if day in built or day in ingested or day in needed]


def _built_days(ctx: RunContext, days: list[dt.date]) -> set[dt.date]:
    """The days between the first and last of `days` that have a snapshot."""
    table = MEMBER_FEATURES_DAILY.name
    if not ctx.lake.exists(table):
        return set()
    return {row[0] for row in (
        ctx.lake.read(table).filter(F.col("as_of_date").between(days[0], days[-1]))
        .select("as_of_date").distinct().collect())}


def _reference_rows(snapshots: DataFrame, days: list[dt.date], features: tuple[str, ...],
                    required: int) -> dict[dt.date, pd.DataFrame]:
    """Each reference day's members as the model sees them (its inputs), only rows
    whose windows were complete (history_days >= `required`, as for training), at most
    REFERENCE_MAX_ROWS in all (a seeded sample beyond); days without such rows are
    left out."""
    complete = snapshots.filter(F.col("as_of_date").isin(days) & (F.col(HISTORY) >= required))
    total = complete.count()
    if total > REFERENCE_MAX_ROWS:
        complete = complete.sample(fraction=REFERENCE_MAX_ROWS / total, seed=0)
    frame = model_inputs(complete, features, keep=["as_of_date"]).toPandas()
    return {day: rows.reset_index(drop=True)
            for day, rows in frame.groupby("as_of_date", sort=True) if len(rows)}


def _ensure_snapshots(ctx: RunContext, needed: list[dt.date],
                      backfill: bool) -> list[tuple[dt.date, dt.date]]:
    """Build (with backfill's `build_days`) the snapshots training needs (the day
    before each label_date, and the reference weeks) and lacks."""
    table = MEMBER_FEATURES_DAILY.name
    existing = _built_days(ctx, needed)
    runs = date_runs(d for d in needed if d not in existing)
    if not runs:
        return []
    missing = sum((b - a).days + 1 for a, b in runs)
    if not backfill:
        raise ModelError(
            f"{table} lacks the snapshots of {missing} day(s) that training needs (the "
            "day before each label_date, and the ingested days of the 28 ending on the "
            f"last of them, the drift baseline's reference weeks): {format_runs(runs)}; "
            f"run `memberscore backfill --start {runs[0][0]} --end {runs[-1][1]}`, or "
            "train without --no-backfill"
        )
    log.info("train: %d snapshot day(s) missing from %s, backfilling %s", missing, table,
             format_runs(runs))
    # one backfill of exactly the missing days: it reads the transactions once per
    # chunk of `features.backfill_chunk_days` instead of once per run of days
    try:
        result = build_days(ctx, [d for d in needed if d not in existing])
    except MemberscoreError as exc:
        raise ModelError(
            f"backfilling the feature snapshots that the labels need failed: {exc}; the "
            f"days still missing are {format_runs(runs)}"
        ) from exc
    log.info("train: %s", " ".join(result.messages[:2]))
    return runs


def _history(ctx: RunContext, label_dates: list[dt.date], required: int) -> History:
    """The labels' history: the first booked day of bronze_transactions (one
    aggregate, answered from Delta's file statistics)."""
    table = bronze_table("transactions")
    first: dt.date | None = None
    if ctx.lake.exists(table):
        row = ctx.lake.read(table).agg(F.min("booked_at").alias("first")).first()
        if row is not None and row["first"] is not None:
            first = row["first"].astimezone(dt.UTC).date()
    history = History(required, first, label_dates)
    skipped = len(label_dates) - len(history.complete_label_dates)
    if skipped:
        log.info("train: %d of %d label date(s) come before %d days of transaction "
                 "history (the lake's first booked day is %s); their snapshots are "
                 "not built and their labels are left out", skipped, len(label_dates),
                 required, first)
    return history


def _require_columns(snapshots: DataFrame, features: tuple[str, ...], table: str,
                     version: int | None) -> None:
    missing = [c for c in features if c not in snapshots.columns]
    if missing:
        raise ModelError(f"{table} version {version} lacks the model features {missing}; "
                         "rebuild the snapshots with `memberscore backfill --force`")


def _usable_rows(frame: pd.DataFrame, required: int, complete_dates: set[dt.date]
                 ) -> tuple[dict[str, int], pd.DataFrame]:
    """Counts for the log and the run, and the rows a model can learn from: a
    snapshot whose windows are complete (`history_days >= required`) and an
    outcome.  Labels dated before the lake has enough history (`complete_dates`
    lacks their date; their snapshots are never built) count as incomplete, not as
    labels without a snapshot."""
    has_snapshot = frame[HAS_SNAPSHOT].astype(bool)
    too_early = ~pd.to_datetime(frame["label_date"]).dt.date.isin(complete_dates)
    complete = has_snapshot & ~too_early & (frame[HISTORY].fillna(-1) >= required)
    has_outcome = frame[LABEL].notna()
    usable = frame[complete & has_outcome].drop(columns=[HISTORY]).copy()
    usable[LABEL] = usable[LABEL].astype(bool)
    counts = {
        "labels_total": len(frame),
        "labels_dropped_no_snapshot": int((~has_snapshot & ~too_early).sum()),
        "labels_dropped_incomplete_window": int(((has_snapshot | too_early)
                                                 & ~complete).sum()),
        "labels_dropped_null_outcome": int((complete & ~has_outcome).sum()),
        "labels_superseded": int(frame[SUPERSEDED].sum()),
        "training_set_rows": len(usable),
    }
    return counts, usable


def _register(registry: ModelRegistry, name: str, logged: LoggedRun, trained: TrainedModel,
              split: TimeSplit, ctx: RunContext) -> tuple[ResolvedModel, Decision]:
    """Register a version of `name` and give it the alias the contract says."""
    conf = ctx.settings.models
    new_auc = trained.holdout_metrics["auc"]
    current = registry.find(name, conf.champion_alias)
    current_auc, why = (champion_auc(registry, current, split.holdout, split.holdout[LABEL])
                        if current is not None else (None, None))
    calibrated = calibration(trained.holdout_metrics)
    if not calibrated.checked:
        log.warning("%s: %s", name, calibrated.note)
    decision = decide(new_auc, current, current_auc, conf.champion_alias,
                      conf.challenger_alias, why, calibrated)
    version = registry.register(logged.model_uri, name, logged.run_id, tags={
        "holdout_auc": f"{new_auc:.6f}",
        "holdout_start": split.holdout_start.isoformat(),
        "memberscore.run_id": ctx.run_id,
    })
    registry.set_alias(version, decision.alias)
    registry.tag(version, {"alias_decision": decision.reason, "alias_given": decision.alias,
                           "calibration": calibrated.note,
                           **({"champion_holdout_auc": f"{current_auc:.6f}"}
                              if current_auc is not None else {})})
    if current_auc is not None:
        registry.client.log_metric(logged.run_id, f"champion_holdout_auc/{name}", current_auc)
    log.info("%s version %s -> @%s: %s", name, version.version, decision.alias, decision.reason)
    return version, decision
