"""The churn classifier: a scikit-learn pipeline, a time-based split, and the metrics
it is judged by.  No MLflow and no Spark here: plain pandas in, fitted model out.

The pipeline is `SimpleImputer(median)` then either `HistGradientBoostingClassifier`
or (standardised) `LogisticRegression`, chosen by conf `models.algorithm`.  The
imputer's medians are learnt from the training rows only and travel inside the
pickled pipeline, so scoring fills gaps exactly as training did.

The split is by time, never at random: the holdout is every label whose
`label_date` lies in the last `holdout_weeks` weeks of the labelled period, the
training rows are everything before.  A model is judged on days it never saw, as it
will be used.  The model that is registered is the one fitted on the training rows
only, so the holdout metrics logged with it describe that very model.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from memberscore.config import ModelSettings
from memberscore.errors import ModelError

LABEL = "churned"
DATE = "label_date"


@dataclass(frozen=True)
class TimeSplit:
    """Training rows, holdout rows, and where the cut falls."""

    train: pd.DataFrame
    holdout: pd.DataFrame
    holdout_start: dt.date
    last_label_date: dt.date


@dataclass(frozen=True)
class TrainedModel:
    """A fitted pipeline with the exact feature list it takes and its metrics."""

    pipeline: Pipeline
    features: tuple[str, ...]
    params: dict[str, Any]
    train_metrics: dict[str, float]
    holdout_metrics: dict[str, float]


def time_split(frame: pd.DataFrame, holdout_weeks: int) -> TimeSplit:
    """Holdout = labels in the last `holdout_weeks` weeks (at least 1, conf
    `models.holdout_weeks`) up to the latest label_date."""
    if frame.empty:
        raise ModelError("the training set is empty: no label has a feature snapshot")
    dates = pd.to_datetime(frame[DATE]).dt.date
    last = max(dates)
    holdout_start = last - dt.timedelta(days=7 * holdout_weeks - 1)
    in_holdout = (dates >= holdout_start).to_numpy()
    return TimeSplit(frame[~in_holdout], frame[in_holdout], holdout_start, last)


def check_trainable(split: TimeSplit, min_rows: int) -> None:
    """Refuse to train on too few rows or a single class, saying what was found."""
    train, holdout = split.train, split.holdout
    total = len(train) + len(holdout)
    where = (f"training rows label_date < {split.holdout_start}, holdout rows "
             f"{split.holdout_start}..{split.last_label_date}")
    if total < min_rows:
        raise ModelError(
            f"only {total} labelled rows have a feature snapshot, fewer than "
            f"models.min_training_rows = {min_rows} ({where}); ingest more outcome "
            "labels or backfill the feature snapshots they need, then run train again"
        )
    problems = []
    for part, rows in (("training", train), ("holdout", holdout)):
        classes = sorted({bool(v) for v in rows[LABEL]})
        if len(classes) < 2:
            found = "no rows" if not classes else f"only churned={classes[0]}"
            problems.append(f"the {part} part has {found} ({len(rows)} rows)")
    if problems:
        raise ModelError(
            "cannot train and evaluate a churn model: " + "; ".join(problems)
            + f" ({where}); both churned and retained members are needed on each side "
            "of the time split: ingest more labels or change models.holdout_weeks"
        )


def build_pipeline(settings: ModelSettings) -> Pipeline:
    """Imputation, then the configured classifier (unfitted)."""
    imputer = SimpleImputer(strategy="median", keep_empty_features=True)
    if settings.algorithm == "hist_gradient_boosting":
        classifier: Any = HistGradientBoostingClassifier(
            max_iter=settings.max_iter, learning_rate=settings.learning_rate,
            early_stopping=False, random_state=settings.random_seed)
        return Pipeline([("impute", imputer), ("classify", classifier)])
    classifier = LogisticRegression(max_iter=settings.max_iter,
                                    random_state=settings.random_seed)
    return Pipeline([("impute", imputer), ("scale", StandardScaler()),
                     ("classify", classifier)])


def fit(split: TimeSplit, features: tuple[str, ...], settings: ModelSettings) -> TrainedModel:
    """Fit on the training rows and measure on both parts."""
    pipeline = build_pipeline(settings)
    pipeline.fit(split.train[list(features)], split.train[LABEL].astype(int))
    return TrainedModel(
        pipeline=pipeline,
        features=features,
        params=classifier_params(pipeline, settings),
        train_metrics=evaluate(split.train[LABEL], churn_probability(pipeline, split.train,
                                                                      features)),
        holdout_metrics=evaluate(split.holdout[LABEL],
                                 churn_probability(pipeline, split.holdout, features)),
    )


def churn_probability(model: Any, frame: pd.DataFrame, features: tuple[str, ...]) -> np.ndarray:
    """P(churned) for each row: column 1 of `predict_proba`."""
    return np.asarray(model.predict_proba(frame[list(features)])[:, 1], dtype="float64")


def evaluate(labels: pd.Series, probability: np.ndarray) -> dict[str, float]:
    """AUC, average precision, log loss, Brier score, row count, churn rate, the
    positives, the mean predicted probability and its ratio to the churn rate (the
    calibration ratio; nan when nobody churned)."""
    y = labels.astype(int).to_numpy()
    p = np.asarray(probability, dtype="float64")
    both = len(set(y.tolist())) == 2
    rate = float(y.mean()) if len(y) else float("nan")
    mean = float(p.mean()) if len(p) else float("nan")
    return {
        "positives": float(y.sum()),
        "mean_prediction": mean,
        "calibration_ratio": mean / rate if rate > 0 else float("nan"),
        "auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "average_precision": float(average_precision_score(y, p)) if both else float("nan"),
        "log_loss": float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "rows": float(len(y)),
        "churn_rate": rate,
    }


def classifier_params(pipeline: Pipeline, settings: ModelSettings) -> dict[str, Any]:
    """The parameters worth logging: the algorithm and its non-default settings."""
    classifier = pipeline.named_steps["classify"]
    chosen = ("max_iter", "learning_rate", "random_state", "early_stopping", "max_leaf_nodes",
              "l2_regularization", "C", "penalty", "solver")
    params = {k: v for k, v in classifier.get_params().items() if k in chosen}
    return {"algorithm": settings.algorithm, "imputer_strategy": "median", **params}
