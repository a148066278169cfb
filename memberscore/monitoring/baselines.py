"""The training baseline each monitored model is compared against.

The baseline is the one logged by the training run of the model version that scored
the day (the `model_version` of the day's `member_scores` rows).  In a normal run
that is the version `@champion` points at; when the alias has moved since scoring
(a `train` in between), drift is still measured against the version that produced
the scores, and the move is logged and noted.

Within it, a day is compared with the reference weeks' snapshots of its own weekday
(`by_weekday`, memberscore.models.baseline), so the weekly rhythm of members'
activity is not read as drift; a baseline without that weekday (logged before the
reference weeks existed, or a weekday without complete rows) is compared as a whole.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyspark.sql import functions as F

from memberscore.errors import InputError, ModelError
from memberscore.models.baseline import ARTIFACT_PATH, FORMAT, FORMAT_VERSION, weekday_name
from memberscore.tables import MEMBER_SCORES
from memberscore.transforms.drift import BaselineColumn

if TYPE_CHECKING:
    from memberscore.context import RunContext
    from memberscore.models.registry import ModelRegistry, ResolvedModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelBaseline:
    """A model version, its training baseline, and what the registry says now."""

    model: ResolvedModel
    columns: dict[str, BaselineColumn]
    document: dict[str, Any]
    champion_version: str | None  # where @champion points now (None: no alias)
    reference: str = "training set"  # what `columns` describe, for people

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def label_rate(self) -> float | None:
        """The churn rate of the training set (None in baselines logged before it was)."""
        value = self.document.get("label_rate")
        return float(value) if isinstance(value, (int, float)) else None

    @property
    def feature_columns(self) -> list[str]:
        return [name for name, c in self.columns.items() if c.role == "feature"]

    @property
    def note(self) -> str:
        """A line for people when the champion is not the version that scored the day."""
        if self.champion_version in (None, self.model.version):
            return ""
        return (f"{self.name}: the day was scored by version {self.model.version}, "
                f"@champion now points at version {self.champion_version}; drift is "
                f"measured against version {self.model.version}'s baseline")


def scored_versions(ctx: RunContext, run_date: dt.date,
                    names: tuple[str, ...]) -> dict[str, str]:
    """model_name -> the model_version of its member_scores rows of the day.

    InputError (what to run) when a model has no rows that day; ModelError when one
    has rows of two versions (the score job never writes that).
    """
    table = MEMBER_SCORES.name
    advice = f"run `memberscore score --run-date {run_date}` first"
    if not ctx.lake.exists(table):
        raise InputError(f"there are no scores to monitor: table {table} does not exist; "
                         f"{advice}")
    rows = (
        ctx.lake.read(table)
        .where(F.col("as_of_date") == F.lit(run_date))
        .where(F.col("model_name").isin(list(names)))
        .select("model_name", "model_version").distinct()
        .collect()
    )
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(row["model_name"], set()).add(str(row["model_version"]))
    missing = [n for n in names if n not in found]
    if missing:
        raise InputError(f"{table} has no rows of {', '.join(missing)} for {run_date} "
                         f"(configured models: {', '.join(names)}); {advice}")
    mixed = {n: sorted(v) for n, v in found.items() if len(v) > 1}
    if mixed:
        raise ModelError(f"{table} rows of {run_date} mix model versions {mixed}; re-run "
                         f"`memberscore score --run-date {run_date}` to rescore the day "
                         "with one version per model")
    return {n: next(iter(found[n])) for n in names}


def load_baselines(ctx: RunContext, registry: ModelRegistry,
                   versions: dict[str, str], run_date: dt.date) -> list[ModelBaseline]:
    """The baseline of each (model name -> version) for `run_date`'s weekday, checked
    to be readable."""
    alias = ctx.settings.models.champion_alias
    out = []
    for name, version in versions.items():
        model = registry.version(name, version)
        champion = registry.find(name, alias)
        with _no_progress_bar():
            document = registry.baseline(model)
        where = f"{model} (run {model.run_id}, {ARTIFACT_PATH})"
        columns, reference = weekday_columns(document, run_date, where)
        baseline = ModelBaseline(model, columns, document,
                                 champion.version if champion else None, reference)
        if baseline.note:
            log.warning(baseline.note)
        out.append(baseline)
    return out


@contextlib.contextmanager
def _no_progress_bar() -> Iterator[None]:
    """MLflow draws a progress bar on stderr for every artifact download; a nightly
    job's stderr is for its one error line, so it is switched off for the download."""
    name = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(name)
    os.environ[name] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def weekday_columns(document: dict[str, Any], day: dt.date, where: str
                    ) -> tuple[dict[str, BaselineColumn], str]:
    """The columns `day` is compared with, and what they describe: the reference
    weeks' section of its weekday when the baseline has one, else the training
    set."""
    pooled = parse_baseline(document, where)
    week = document.get("by_weekday")
    section = week.get(weekday_name(day)) if isinstance(week, dict) else None
    if not isinstance(section, dict):
        return pooled, "training set"
    columns = parse_baseline({**document, "columns": section.get("columns")},
                             f"{where}, by_weekday.{weekday_name(day)}")
    dates = section.get("as_of_dates") or []
    span = f"{dates[0]}..{dates[-1]}" if dates else "?"
    return columns, (f"the {weekday_name(day).capitalize()}s of the reference weeks "
                     f"({len(dates)} days, {span})")


def parse_baseline(document: dict[str, Any], where: str) -> dict[str, BaselineColumn]:
    """The columns of a baseline document; ModelError naming `where` when the document
    is not a baseline this code reads."""
    kind, version = document.get("format"), document.get("format_version")
    if kind != FORMAT or version != FORMAT_VERSION:
        raise ModelError(
            f"{where}: expected a baseline of format {FORMAT} version {FORMAT_VERSION}, "
            f"found format {kind!r} version {version!r}; retrain the model with this "
            "release (`memberscore train`) so it logs a baseline monitor can read"
        )
    raw = document.get("columns")
    if not isinstance(raw, dict) or not raw:
        raise ModelError(f"{where}: the baseline describes no columns; retrain the model")
    columns = {}
    for name, doc in raw.items():
        try:
            columns[str(name)] = BaselineColumn.from_document(str(name), doc)
        except ValueError as exc:
            raise ModelError(f"{where}: the baseline is malformed: {exc}; retrain the "
                             "model") from None
    return columns
