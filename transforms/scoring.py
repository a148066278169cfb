"""Score rows: the model's churn probability, its named band, and the lineage every
row of `member_scores` carries (which model version, which run, when)."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from memberscore.config import ScoreBand
from memberscore.errors import ConfigError
from memberscore.schemas import quoted
from memberscore.tables import MEMBER_SCORES_SCHEMA


def check_bands(bands: Sequence[ScoreBand]) -> None:
    """Bands must tile [0, 1] without gaps or overlaps, so every probability gets
    exactly one band; ConfigError lists every problem found."""
    problems: list[str] = []
    ordered = sorted(bands, key=lambda b: b.lower)
    if not ordered:
        problems.append("no bands are configured")
    for band in ordered:
        if not band.lower < band.upper:
            problems.append(f"band {band.name!r} has lower {band.lower} >= upper {band.upper}")
    for previous, current in itertools.pairwise(ordered):
        if current.lower != previous.upper:
            problems.append(
                f"band {current.name!r} starts at {current.lower} but {previous.name!r} "
                f"ends at {previous.upper} (bands must meet exactly)"
            )
    if ordered and ordered[0].lower > 0.0:
        problems.append(f"the lowest band starts at {ordered[0].lower}, not at 0")
    if ordered and ordered[-1].upper <= 1.0:
        problems.append(f"the highest band ends at {ordered[-1].upper}; it must end above 1 "
                        "(upper bounds are exclusive) so a score of 1.0 has a band")
    names = [b.name for b in bands]
    if len(set(names)) != len(names):
        problems.append(f"band names repeat: {names}")
    if problems:
        raise ConfigError("models.score_bands is invalid: " + "; ".join(problems))


def score_band(score: Column, bands: Sequence[ScoreBand]) -> Column:
    """The name of the band with lower <= score < upper (null only outside every band)."""
    check_bands(bands)
    ordered = sorted(bands, key=lambda b: b.lower)
    result: Column | None = None
    for band in ordered:
        inside = (score >= F.lit(band.lower)) & (score < F.lit(band.upper))
        result = F.when(inside, F.lit(band.name)) if result is None \
            else result.when(inside, F.lit(band.name))
    assert result is not None  # check_bands refuses an empty list
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
