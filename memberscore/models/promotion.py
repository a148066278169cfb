"""Which alias a newly trained version gets.

The rule (the contract): the new version becomes `champion` when there is no
champion, or when it beats the current champion on the time-based holdout; otherwise
it becomes `challenger`.  "Beats" is judged on the same rows: the current champion
scores the NEW training run's holdout, so both AUCs describe the same members and
days, and the new version must be strictly better (a tie keeps the champion).  A
champion that cannot score the new holdout (its inputs are no longer in the feature
table) cannot be used for scoring either, so the new version replaces it; the reason
is recorded.

And a version is made champion only when it is calibrated: its mean predicted
probability on the holdout over the holdout's observed churn rate lies within
CALIBRATION_RANGE.  The check needs CALIBRATION_MIN_POSITIVES churned members in the
holdout to tell a miscalibrated model from noise; with fewer it is skipped, and the
ratio is still logged with a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from memberscore.models.registry import ModelRegistry, ResolvedModel
from memberscore.models.signature import input_columns

log = logging.getLogger(__name__)


CALIBRATION_RANGE = (0.8, 1.25)
CALIBRATION_MIN_POSITIVES = 100


@dataclass(frozen=True)
class Calibration:
    """The holdout's calibration and what the alias rule makes of it."""

    ratio: float
    positives: int
    checked: bool
    ok: bool

    @property
    def note(self) -> str:
        low, high = CALIBRATION_RANGE
        text = f"calibration ratio {self.ratio:.3f} (mean prediction / churn rate)"
        if not self.checked:
            return (f"{text} not checked: the holdout has {self.positives} churned "
                    f"member(s), fewer than {CALIBRATION_MIN_POSITIVES}")
        return f"{text} {'within' if self.ok else 'outside'} [{low}, {high}]"


def calibration(holdout_metrics: dict[str, float]) -> Calibration:
    """The calibration check of a new version's holdout metrics (see the module doc)."""
    ratio = float(holdout_metrics.get("calibration_ratio", float("nan")))
    positives = int(holdout_metrics.get("positives", 0))
    checked = positives >= CALIBRATION_MIN_POSITIVES
    low, high = CALIBRATION_RANGE
    ok = (not checked) or (bool(np.isfinite(ratio)) and low <= ratio <= high)
    return Calibration(ratio, positives, checked, ok)


@dataclass(frozen=True)
class Decision:
    """The alias for the new version, and why."""

    alias: str
    champion: ResolvedModel | None
    champion_auc: float | None
    reason: str


def decide(new_auc: float, champion: ResolvedModel | None, champion_auc: float | None,
           champion_alias: str, challenger_alias: str,
           unusable_reason: str | None = None,
           calibrated: Calibration | None = None) -> Decision:
    """The alias rule, without I/O (see the module docstring)."""
    if calibrated is not None and not calibrated.ok:
        return Decision(challenger_alias, champion, champion_auc,
                        f"not calibrated: {calibrated.note}, so it cannot be champion")
    if champion is None:
        return Decision(champion_alias, None, None, "there was no champion")
    if champion_auc is None:
        return Decision(champion_alias, champion, None,
                        f"the current champion ({champion}) cannot score the new holdout: "
                        f"{unusable_reason or 'unknown reason'}")
    if new_auc > champion_auc:
        return Decision(champion_alias, champion, champion_auc,
                        f"holdout AUC {new_auc:.4f} beats the champion ({champion}) at "
                        f"{champion_auc:.4f} on the same holdout")
    return Decision(challenger_alias, champion, champion_auc,
                    f"holdout AUC {new_auc:.4f} does not beat the champion ({champion}) at "
                    f"{champion_auc:.4f} on the same holdout")


def champion_auc(registry: ModelRegistry, champion: ResolvedModel,
                 holdout: pd.DataFrame, labels: pd.Series) -> tuple[float | None, str | None]:
    """(AUC of `champion` on these rows, None) or (None, why it cannot score them)."""
    try:
        columns = input_columns(registry.signature(champion))
        missing = [c for c in columns if c not in holdout.columns]
        if missing:
            return None, f"its inputs {missing} are not in the training set"
        model = registry.load(champion)
        output = np.asarray(model.predict(holdout[columns]), dtype="float64")
    except Exception as exc:  # noqa: BLE001 - any failure means "cannot be evaluated"
        log.warning("champion %s cannot be evaluated: %s", champion, exc)
        first = (str(exc).strip().splitlines() or [""])[0]
        return None, f"{type(exc).__name__}: {first[:200]}"
    probability = output[:, -1] if output.ndim == 2 else output
    return float(roc_auc_score(labels.astype(int).to_numpy(), probability)), None
