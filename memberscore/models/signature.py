"""Does a feature snapshot fit a model?  Checked before any row is scored.

A model's MLflow signature names each input column and its MLflow type.  A
snapshot column fits when it exists and its Spark type converts to the model's type
without changing meaning: any number (integers, decimals, floats) feeds a `double` or
`float` input, since scoring casts every feature to double exactly as training did;
only integers feed `long`/`integer`; booleans, strings, dates and binaries feed only
their own kind.  A string where a number is expected is refused, never coerced.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyspark.sql import types as T

if TYPE_CHECKING:
    from mlflow.models import ModelSignature

_INTEGRAL = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
_NUMERIC = (*_INTEGRAL, T.FloatType, T.DoubleType, T.DecimalType)

# MLflow column type -> the Spark types a snapshot column may have to feed it.
COMPATIBLE: dict[str, tuple[type[T.DataType], ...]] = {
    "double": _NUMERIC,
    "float": _NUMERIC,
    "long": _INTEGRAL,
    "integer": (T.ByteType, T.ShortType, T.IntegerType),
    "boolean": (T.BooleanType,),
    "string": (T.StringType,),
    "binary": (T.BinaryType,),
    "datetime": (T.DateType, T.TimestampType, T.TimestampNTZType),
}


def input_columns(signature: ModelSignature) -> list[str]:
    """The model's input column names, in signature order."""
    return list(signature.inputs.input_names())


def signature_problems(signature: ModelSignature, schema: T.StructType) -> list[str]:
    """Every way `schema` fails to feed the model (empty when it fits).

    Each problem names the column, what the model expects and what was found.
    """
    inputs = signature.inputs
    if inputs.is_tensor_spec():
        return ["the model takes a tensor, not named columns; only column-based models "
                "can score the feature table"]
    found = {field.name: field.dataType for field in schema.fields}
    problems: list[str] = []
    for spec in inputs.inputs:
        name = spec.name
        expected = getattr(spec.type, "name", str(spec.type))
        if name not in found:  # every input is needed: the model was trained on all
            problems.append(f"{name}: missing (model expects {expected})")
            continue
        allowed = COMPATIBLE.get(expected)
        actual = found[name]
        if allowed is None:
            problems.append(f"{name}: model expects {expected}, which scoring does not "
                            "support")
        elif not isinstance(actual, allowed):
            problems.append(f"{name}: model expects {expected}, snapshot has "
                            f"{actual.simpleString()}")
    return problems


def input_spark_types(signature: ModelSignature) -> dict[str, T.DataType]:
    """Input column -> the Spark type to cast it to before it reaches the model."""
    return {spec.name: spec.type.to_spark() for spec in signature.inputs.inputs}
