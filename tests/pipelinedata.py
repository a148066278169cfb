"""Pipeline test data: one day of hand-written landing files and a registered
champion model, for tests that run `memberscore pipeline` end to end."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from modeldata import MODEL_FEATURES

from memberscore.context import RunContext
from memberscore.local.landing_files import write_landing_file
from memberscore.local.synthetic import LandingFile
from memberscore.models.baseline import build_baseline
from memberscore.models.estimator import DATE, LABEL, churn_probability, fit, time_split
from memberscore.models.registry import ModelRegistry
from memberscore.models.tracking import configure_mlflow
from memberscore.models.training_run import log_training_run
from memberscore.schemas import SOURCES

D = dt.date(2026, 3, 20)


def land(home: Path, members: list[tuple[str, str]]) -> None:
    """Landing files of day D: `members` (member_id, onboarded_at) and one settled card
    payment of each of them on D."""
    member_rows = [{"member_id": m, "legal_form": "ltd", "industry_code": "62020",
                    "region": "london", "onboarded_at": onboarded, "closed_at": None,
                    "updated_at": onboarded} for m, onboarded in members]
    txn_rows = [{"transaction_id": f"T{i}", "member_id": m, "booked_at": "2026-03-20T09:00:00Z",
                 "amount": f"-{10 + i}.50", "currency": "GBP", "channel": "card",
                 "counterparty_id": f"C{i}", "status": "settled",
                 "ingested_at": "2026-03-20T09:05:00Z"} for i, (m, _) in enumerate(members)]
    for source, rows in (("members", member_rows), ("transactions", txn_rows)):
        names = SOURCES[source].names
        table = pa.table({n: pa.array([r[n] for r in rows], pa.string()) for n in names})
        write_landing_file(home / "landing", LandingFile(source, D, f"{source}.csv", table))


def register_champion(ctx: RunContext) -> None:
    """A small model of the current features, trained, described and logged by the
    training code, registered in this home's MLflow as `member_churn@champion`."""
    conf = dataclasses.replace(ctx.settings.models, max_iter=50, min_training_rows=50,
                               holdout_weeks=2)
    rng = np.random.default_rng(3)
    rows = 240
    frame = pd.DataFrame({f: rng.integers(0, 30, rows).astype("float64")
                          for f in MODEL_FEATURES})
    frame[LABEL] = frame["txn_count_30d"] < 12
    frame[DATE] = [dt.date(2026, 1, 5) + dt.timedelta(days=7 * (i % 6)) for i in range(rows)]
    split = time_split(frame, conf.holdout_weeks)
    trained = fit(split, MODEL_FEATURES, conf)
    baseline = build_baseline(frame, churn_probability(trained.pipeline, frame, MODEL_FEATURES),
                              feature_columns=MODEL_FEATURES, label_dates=frame[DATE],
                              feature_table="member_features_daily", feature_table_version=0)
    setup = configure_mlflow(ctx)
    logged = log_training_run(setup, trained=trained, example=split.holdout, baseline=baseline,
                              params={}, counts={"rows": rows}, tags={},
                              run_name="pipeline-gate-champion")
    registry = ModelRegistry(setup)
    version = registry.register(logged.model_uri, conf.names[0], logged.run_id, tags={})
    registry.set_alias(version, conf.champion_alias)
