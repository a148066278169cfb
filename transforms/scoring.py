"""Score rows: the model's churn probability, its named band, and the lineage every
row of `member_scores` carries (which model version, which run, when)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from memberscore.schemas import quoted
from memberscore.tables import MEMBER_SCORES_SCHEMA


class ScoreBand(Protocol):
    """A named score band: scores in [lower, upper) get its name (conf
    `models.score_bands`, checked when the conf is loaded: the bands tile [0, 1])."""

    @property
    def name(self) -> str: ...
    @property
    def lower(self) -> float: ...
    @property
    def upper(self) -> float: ...


def score_band(score: Column, bands: Sequence[ScoreBand]) -> Column:
    """The name of the band with lower <= score < upper (null only outside every band)."""
    ordered = sorted(bands, key=lambda b: b.lower)
    result: Column | None = None
    for band in ordered:
        inside = (score >= F.lit(band.lower)) & (score < F.lit(band.upper))
        result = F.when(inside, F.lit(band.name)) if result is None \
            else result.when(inside, F.lit(band.name))
    assert result is not None, "no score bands"  # conf refuses an empty list
    return result


def shape_scores(scored: DataFrame, *, model_name: str, model_version: str,
                 bands: Sequence[ScoreBand], run_id: str,
                 scored_at: dt.datetime) -> DataFrame:
    """`scored` (member_id, as_of_date, score) -> rows of member_scores, in its
    declared column order and types."""
    lineage = scored.withColumns({
        "model_name": F.lit(model_name),
        "model_version": F.lit(model_version),
        "score_band": score_band(F.col("score"), bands),
        "run_id": F.lit(run_id),
        "scored_at": F.lit(scored_at),
    })
    # the declared order and types in one SQL projection (Column objects cost ~20
    # py4j round trips a column)
    return lineage.selectExpr(*[
        f"CAST({quoted(field.name)} AS {field.dataType.simpleString()}) AS {quoted(field.name)}"
        for field in MEMBER_SCORES_SCHEMA.fields
    ])
