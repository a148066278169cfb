"""The one registry of member features: every column of `member_features_daily`
declared once, with its Spark type, window, owner, definition and whether a model
uses it.

Everything else derives from here: the table schema (`feature_table_schema`), the
model's input list (`model_feature_names`), the generated docs (docs/features.md via
`memberscore.feature_docs`) and the tests that hold the transform to its declared
schema.  `history_days` (role `coverage`) says how much transaction history a snapshot could
see, so a reader (and `train`) can tell a complete 90-day window from one that saw
only 30 days of data.  Adding a feature means adding one `Feature` here, its expression in
`transforms/features.py` (and, when it is windowed, in `transforms/tiles.py`), and
regenerating the docs; a test fails until all of them agree.

Types:
- money: decimal(18,2), exact; sums are computed in Spark's wider decimal and cast
  back, so an overflow fails loudly instead of rounding;
- counts: long (bigint), what Spark's `count` and integer `sum` produce;
- shares: double in [0, 1];
- day counts: int.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pyspark.sql import types as T

from memberscore.schemas import MONEY
from memberscore.tables import MEMBER_FEATURES_DAILY

Role = Literal["key", "feature", "coverage", "lineage"]

OWNER = "member-analytics"
COUNT = T.LongType()
SHARE = T.DoubleType()
DAYS = T.IntegerType()


@dataclass(frozen=True)
class Feature:
    """One column of the feature table.

    `window_days` is the length of the trailing window of booked days ending on the
    snapshot day (None for point-in-time values and for keys/lineage).  `nullable`
    says whether a null is a legitimate value (documented in `definition`); counts
    and sums are never null.
    """

    name: str
    dtype: T.DataType
    role: Role
    definition: str
    window_days: int | None = None
    owner: str = OWNER
    nullable: bool = False
    model_input: bool = False

    @property
    def type_name(self) -> str:
        """The Spark SQL type name, e.g. `decimal(18,2)`, `bigint`."""
        return self.dtype.simpleString()

    @property
    def unit(self) -> str | None:
        """What a value counts, from its type (the types above): `GBP` for money,
        `count`, `share` (0 to 1), `days`; None for keys and lineage."""
        if self.role not in ("feature", "coverage"):
            return None
        return _UNITS.get(type(self.dtype))


_UNITS: dict[type[T.DataType], str] = {
    T.DecimalType: "GBP", T.LongType: "count", T.DoubleType: "share", T.IntegerType: "days",
}


def _feature(name: str, dtype: T.DataType, definition: str, window_days: int | None,
             nullable: bool = False) -> Feature:
    return Feature(name, dtype, "feature", definition, window_days, nullable=nullable,
                   model_input=True)


FEATURES: tuple[Feature, ...] = (
    # ---------------------------------------------------------------- keys
    Feature("member_id", T.StringType(), "key", "The member (business account holder)."),
    Feature("as_of_date", T.DateType(), "key",
            "The snapshot day D: the features describe the member as known at the "
            "feature cutoff of D."),
    # ---------------------------------------------------------------- activity
    _feature("txn_count_7d", COUNT, "Number of settled transactions in the window.", 7),
    _feature("txn_count_30d", COUNT, "Number of settled transactions in the window.", 30),
    _feature("txn_count_90d", COUNT, "Number of settled transactions in the window.", 90),
    # ---------------------------------------------------------------- money
    _feature("inflow_sum_30d", MONEY,
             "Sum of the positive amounts of settled transactions in the window.", 30),
    _feature("inflow_sum_90d", MONEY,
             "Sum of the positive amounts of settled transactions in the window.", 90),
    _feature("outflow_sum_30d", MONEY,
             "Sum of the absolute values of the negative amounts of settled "
             "transactions in the window.", 30),
    _feature("outflow_sum_90d", MONEY,
             "Sum of the absolute values of the negative amounts of settled "
             "transactions in the window.", 90),
    _feature("net_flow_30d", MONEY, "inflow_sum_30d - outflow_sum_30d.", 30),
    _feature("max_outflow_30d", MONEY,
             "Largest single settled outflow in the window, as a positive number; "
             "0 when there is none.", 30),
    # ---------------------------------------------------------------- behaviour
    _feature("distinct_counterparties_30d", COUNT,
             "Number of distinct non-null counterparty_id values of settled "
             "transactions in the window.", 30),
    _feature("failed_payment_count_30d", COUNT,
             "Number of `failed` transactions with a negative amount (failed "
             "payments out) in the window.", 30),
    _feature("card_spend_share_30d", SHARE,
             "Settled card outflow / all settled outflow in the window; null when "
             "the outflow is 0.", 30, nullable=True),
    _feature("active_days_30d", DAYS,
             "Number of distinct booked days with at least one settled transaction "
             "in the window.", 30),
    _feature("days_since_last_txn", DAYS,
             "D - the date of the last settled booked_at on or before D (known by "
             "the cutoff, any age); null when there is none.", None, nullable=True),
    _feature("tenure_days", DAYS,
             "D - date(onboarded_at), from the member's latest record known by the "
             "cutoff.", None),
    # ---------------------------------------------------------------- coverage
    Feature("history_days", DAYS, "coverage",
            "Days of ingested transaction history the snapshot could see: min(D - the "
            "first booked day among the transactions known by the cutoff + 1, 90); 0 "
            "when none is known.  A window of N days is complete when history_days >= "
            "N: a shorter history undercounts every longer window."),
    # ---------------------------------------------------------------- lineage
    Feature("feature_cutoff_at", T.TimestampType(), "lineage",
            "D + 1 day 00:00 + allowed lateness (UTC): rows with a later ingested_at "
            "are not in this snapshot."),
    Feature("run_id", T.StringType(), "lineage", "The run that wrote this snapshot."),
    Feature("computed_at", T.TimestampType(), "lineage",
            "When the snapshot was written (UTC); changes on a re-run, the feature "
            "values do not."),
)

_BY_NAME = {f.name: f for f in FEATURES}
if len(_BY_NAME) != len(FEATURES):  # pragma: no cover - a declaration error
    raise RuntimeError("feature registry: duplicate feature names")

TABLE = MEMBER_FEATURES_DAILY


def feature(name: str) -> Feature:
    """The declaration of one column; KeyError names the known columns."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown feature {name!r}; known: {', '.join(_BY_NAME)}") from None


def key_names() -> list[str]:
    """The key columns, in table order (`member_id`, `as_of_date`)."""
    return [f.name for f in FEATURES if f.role == "key"]


def feature_names() -> list[str]:
    """Every feature column (not keys, not lineage), in table order."""
    return [f.name for f in FEATURES if f.role == "feature"]


# The longest feature window; the transforms read only the transactions it needs.
MAX_WINDOW_DAYS = max(f.window_days or 0 for f in FEATURES)


def model_feature_names() -> list[str]:
    """The numeric features a model uses, in table order: the exact input list."""
    return [f.name for f in FEATURES if f.role == "feature" and f.model_input]


def coverage_names() -> list[str]:
    """The coverage columns (`history_days`): how much history a snapshot saw."""
    return [f.name for f in FEATURES if f.role == "coverage"]


def required_history_days(names: Sequence[str]) -> int:
    """The history a snapshot needs for every window of these features to be complete:
    the longest window among them (0 for point-in-time features only)."""
    return max((feature(n).window_days or 0 for n in names), default=0)


def lineage_names() -> list[str]:
    """The lineage columns, in table order."""
    return [f.name for f in FEATURES if f.role == "lineage"]


def column_names() -> list[str]:
    """Every column of member_features_daily, in table order."""
    return [f.name for f in FEATURES]


def feature_table_schema() -> T.StructType:
    """The declared schema of member_features_daily: keys, features, lineage."""
    return T.StructType([T.StructField(f.name, f.dtype, f.nullable) for f in FEATURES])


def windows() -> list[int]:
    """The distinct window lengths in days, ascending."""
    return sorted({f.window_days for f in FEATURES if f.window_days is not None})
