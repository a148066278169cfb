"""Scoring on the executors: the registered model as a Spark pandas UDF.

`mlflow.pyfunc.spark_udf` ships the model to the Python workers, which load it (on a
cluster once per worker, locally once per task) and score Arrow batches; nothing is
collected to the driver.  The pyfunc of our models returns `predict_proba` (two
columns: retained, churned), which the UDF hands back as an array; the score is its
last element, P(churned).  The UDF runs in the job's own Python environment
(`env_manager="local"`, no per-run virtualenv): jobs install the same pinned
scikit-learn that trained the model (requirements/constraints.txt locally, the wheel's
environment on a Databricks job cluster).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from memberscore.schemas import quoted

if TYPE_CHECKING:
    from memberscore.models.registry import ResolvedModel

log = logging.getLogger(__name__)

RESULT_TYPE = T.ArrayType(T.DoubleType())


def churn_score(spark: SparkSession, model: ResolvedModel, columns: Sequence[str]) -> Column:
    """A Column with P(churned) from `model` over the named input columns.

    `columns` must be the model's input columns (signature order), already cast as
    the model expects; the UDF receives them by name.
    """
    import mlflow

    pyfunc_log = logging.getLogger("mlflow.pyfunc")
    level = pyfunc_log.level
    pyfunc_log.setLevel(logging.ERROR)  # its env_manager="local" warning: chosen, see above
    try:
        predict = mlflow.pyfunc.spark_udf(spark, model_uri=model.uri,
                                          result_type=RESULT_TYPE, env_manager="local")
    finally:
        pyfunc_log.setLevel(level)
    # one SQL expression for the struct (Column objects cost ~16 py4j calls a column)
    probabilities = predict(F.expr(f"struct({', '.join(quoted(c) for c in columns)})"))
    return F.element_at(probabilities, -1)
