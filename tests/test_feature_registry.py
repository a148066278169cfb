"""The feature registry: the one declaration of member_features_daily, which the
transform, the model input list and docs/features.md all follow."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import types as T

from memberscore import feature_docs
from memberscore.feature_registry import (
    FEATURES,
    coverage_names,
    feature,
    feature_names,
    feature_table_schema,
    key_names,
    lineage_names,
    model_feature_names,
    required_history_days,
    windows,
)
from memberscore.schemas import MONEY
from memberscore.tables import MEMBER_FEATURES_DAILY
from memberscore.transforms.features import AGGREGATE_COLUMNS, WINDOW_SUMS

DOCS = Path(__file__).resolve().parents[1] / "docs" / "features.md"

CONTRACT_COLUMNS = [
    "member_id", "as_of_date",
    "txn_count_7d", "txn_count_30d", "txn_count_90d",
    "inflow_sum_30d", "inflow_sum_90d", "outflow_sum_30d", "outflow_sum_90d",
    "net_flow_30d", "max_outflow_30d", "distinct_counterparties_30d",
    "failed_payment_count_30d", "card_spend_share_30d", "active_days_30d",
    "days_since_last_txn", "tenure_days", "history_days",
    "feature_cutoff_at", "run_id", "computed_at",
]


def test_schema_has_every_contract_column_in_order() -> None:
    schema = feature_table_schema()
    assert schema.names == CONTRACT_COLUMNS
    assert key_names() == list(MEMBER_FEATURES_DAILY.keys)
    assert lineage_names() == ["feature_cutoff_at", "run_id", "computed_at"]


def test_declared_types() -> None:
    types = {f.name: f.dataType for f in feature_table_schema()}
    for name in ("inflow_sum_30d", "inflow_sum_90d", "outflow_sum_30d", "outflow_sum_90d",
                 "net_flow_30d", "max_outflow_30d"):
        assert types[name] == MONEY == T.DecimalType(18, 2), name
    for name in ("txn_count_7d", "txn_count_30d", "txn_count_90d",
                 "distinct_counterparties_30d", "failed_payment_count_30d"):
        assert types[name] == T.LongType(), name
    for name in ("active_days_30d", "days_since_last_txn", "tenure_days", "history_days"):
        assert types[name] == T.IntegerType(), name
    assert types["card_spend_share_30d"] == T.DoubleType()
    assert types["as_of_date"] == T.DateType()
    assert types["feature_cutoff_at"] == types["computed_at"] == T.TimestampType()


def test_only_documented_nulls_are_nullable() -> None:
    nullable = {f.name for f in FEATURES if f.nullable}
    assert nullable == {"card_spend_share_30d", "days_since_last_txn"}


def test_model_features_are_the_numeric_features() -> None:
    names = model_feature_names()
    assert names == feature_names() == CONTRACT_COLUMNS[2:-4]
    numeric = (T.LongType, T.IntegerType, T.DoubleType, T.DecimalType)
    assert all(isinstance(feature(n).dtype, numeric) for n in names)


def test_every_feature_is_declared_completely() -> None:
    for f in FEATURES:
        assert f.owner and f.definition.endswith("."), f.name
        if f.role == "feature" and f.name.endswith("d") and f.name[-3:-1].isdigit():
            assert f.name.endswith(f"_{f.window_days}d"), f.name
    assert windows() == [7, 30, 90]


def test_transform_windows_come_from_the_registry() -> None:
    by_name = {s.name: s.window_days for s in WINDOW_SUMS}
    assert by_name["txn_count_7d"] == 7 and by_name["outflow_sum_90d"] == 90
    assert by_name["card_outflow_sum_30d"] == feature("card_spend_share_30d").window_days
    assert set(AGGREGATE_COLUMNS) >= set(by_name)


def test_history_needed_is_the_longest_window_of_the_features_used() -> None:
    assert coverage_names() == ["history_days"]
    assert feature("history_days").role == "coverage"
    assert not feature("history_days").model_input
    assert required_history_days(model_feature_names()) == 90
    assert required_history_days(["txn_count_7d", "txn_count_30d"]) == 30
    assert required_history_days(["tenure_days", "days_since_last_txn"]) == 0
    assert required_history_days([]) == 0


def test_unknown_feature_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="txn_count_7d"):
        feature("txn_count_8d")


def test_docs_are_generated_from_the_registry() -> None:
    """docs/features.md must be exactly what `python -m memberscore.feature_docs` writes."""
    assert DOCS.read_text(encoding="utf-8") == feature_docs.render(), (
        "docs/features.md is out of date: run `python -m memberscore.feature_docs`"
    )
    for f in FEATURES:
        assert f"`{f.name}`" in DOCS.read_text(encoding="utf-8")


def test_docs_check_mode(tmp_path: Path) -> None:
    out = tmp_path / "features.md"
    assert feature_docs.main(["--output", str(out), "--check"]) == 1
    assert feature_docs.main(["--output", str(out)]) == 0
    assert feature_docs.main(["--output", str(out), "--check"]) == 0
    out.write_text(out.read_text() + "edited by hand\n")
    assert feature_docs.main(["--output", str(out), "--check"]) == 1
