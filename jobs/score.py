"""`memberscore score --run-date D`: D's feature snapshot scored by the champion of
every registered model in `models.names` -> D's partition of `member_scores`.

1. The snapshot of D must exist in `member_features_daily` and have passed its
   critical expectations (the quality gate).
2. For each model name, `models:/<name>@champion` is resolved to a concrete version;
   every later step uses that version, and each output row records it.
3. Each version's signature is checked against the snapshot's schema before any row
   is scored: every missing column and every incompatible type, for every model, in
   one error.
4. The rows are scored on the executors by `mlflow.pyfunc.spark_udf`; each model
   gets its own rows (model_name, model_version, score, score_band, run_id,
   scored_at), and D's partition is replaced in one commit, so a re-run leaves the
   same rows, never duplicates.
5. The rows written are validated (the member_scores suite): warnings are shown with
   the job's output; a critical failure fails the job (QualityGateError) after the
   rows and the validation results are written, so they can be inspected, and
   `publish` refuses the day until it passes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from functools import reduce

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from memberscore.args import iso_date
from memberscore.context import JobResult, RunContext
from memberscore.errors import InputError, ModelError
from memberscore.models.registry import ModelRegistry, ResolvedModel
from memberscore.models.scorer import churn_score
from memberscore.models.signature import input_columns, input_spark_types, signature_problems
from memberscore.models.tracking import configure_mlflow
from memberscore.quality import require_passed, validate_table
from memberscore.tables import MEMBER_FEATURES_DAILY, MEMBER_SCORES
from memberscore.transforms.scoring import shape_scores
from memberscore.transforms.training import model_inputs

log = logging.getLogger(__name__)

KEYS = ["member_id", "as_of_date"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-date", type=iso_date, required=True,
                        help="the day to process, YYYY-MM-DD (UTC)")


def run(ctx: RunContext, args: argparse.Namespace) -> JobResult:
    run_date: dt.date = args.run_date
    snapshot = require_snapshot(ctx, run_date)
    # the quality gate: D's snapshot passed its critical expectations, and that
    # validation still describes the rows now in the lake
    warnings = require_passed(ctx, MEMBER_FEATURES_DAILY.name, run_date)
    result = score_snapshot(ctx, run_date, snapshot)
    result.messages.extend(warnings)
    validation = validate_table(ctx, MEMBER_SCORES.name, run_date, raise_on_critical=False)
    result.messages.append(validation.summary_line())
    result.messages.extend(validation.warning_lines())
    result.details["validation"] = {"passed": validation.passed,
                                    "warnings": len(validation.warnings),
                                    "result_path": str(validation.result_path)}
    result.details["validation_warnings"] = validation.warning_lines()
    # Raised only now: the scores and the validation results are kept for inspection.
    validation.raise_for_critical()
    return result


def score_day(ctx: RunContext, run_date: dt.date) -> JobResult:
    """Score D WITHOUT the quality gate (for tests and the benchmark); `run` is the job."""
    return score_snapshot(ctx, run_date, require_snapshot(ctx, run_date))


def require_snapshot(ctx: RunContext, run_date: dt.date) -> DataFrame:
    """D's rows of the feature table (lazy); InputError saying what to run when absent."""
    table = MEMBER_FEATURES_DAILY.name
    advice = (f"run `memberscore features --run-date {run_date}` (or `memberscore backfill "
              f"--start {run_date} --end {run_date}`) first")
    if not ctx.lake.exists(table):
        raise InputError(f"there is no feature snapshot to score: table {table} does not "
                         f"exist; {advice}")
    if ctx.lake.count_rows(table, {"as_of_date": run_date}) == 0:
        raise InputError(f"{table} has no snapshot for {run_date} (no rows with as_of_date "
                         f"= {run_date}); {advice}")
    return ctx.lake.read(table).filter(F.col("as_of_date") == F.lit(run_date))


def score_snapshot(ctx: RunContext, run_date: dt.date, snapshot: DataFrame) -> JobResult:
    """Resolve, check, score and write D's rows for every configured model."""
    conf = ctx.settings.models
    registry = ModelRegistry(configure_mlflow(ctx))
    champions = [registry.resolve(name, conf.champion_alias) for name in conf.names]
    signatures = {model: registry.signature(model) for model in champions}
    problems = {model: signature_problems(sig, snapshot.schema)
                for model, sig in signatures.items()}
    if any(problems.values()):
        listed = "; ".join(f"{model}: {', '.join(found)}"
                           for model, found in problems.items() if found)
        raise ModelError(
            f"the feature snapshot of {run_date} in {MEMBER_FEATURES_DAILY.name} does not "
            f"fit the model signature ({listed}); nothing was scored: rebuild the snapshot "
            "with the current feature code (`memberscore backfill --force`) or train a "
            "model on the current features (`memberscore train`)"
        )

    frames = []
    for model in champions:
        signature = signatures[model]
        columns = input_columns(signature)
        inputs = model_inputs(snapshot, columns, keep=KEYS, types=input_spark_types(signature))
        scored = inputs.select(*KEYS, churn_score(ctx.spark, model, columns).alias("score"))
        frames.append(shape_scores(scored, model_name=model.name, model_version=model.version,
                                   bands=conf.score_bands, run_id=ctx.run_id,
                                   scored_at=ctx.started_at))
    scores = reduce(DataFrame.unionByName, frames)
    commit = ctx.lake.replace_where(MEMBER_SCORES.name, scores, {"as_of_date": run_date},
                                    list(MEMBER_SCORES.partition_by))
    return JobResult(
        job="score",
        rows={MEMBER_SCORES.name: commit.rows_written},
        details={"table_version": commit.version,
                 "models": {m.name: m.version for m in champions}},
        messages=[
            f"scored {run_date} with {_describe(champions)}: {commit.rows_written} rows "
            f"-> {MEMBER_SCORES.name} (version {commit.version})",
        ],
    )


def _describe(models: list[ResolvedModel]) -> str:
    return ", ".join(str(m) for m in models)
