"""`memberscore monitor` end to end, against real local Delta and MLflow.

One model is fitted, described and logged by the training code (the `train` job
without its lake reads, which tests/test_train.py covers) on a small hand-made
training set and registered as champion.  A second ("legacy") registers the same
model files with a run of its own whose baseline, built by the training code, lacks
one current feature and has one the feature table no longer has.  Each test then
writes day D's feature snapshot, the scores (computed by the champion model itself,
so the same inputs give exactly the baseline's scores) and bronze rows into its own
lake.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from modeldata import MODEL_FEATURES, feature_frame, model_settings, write_features
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from reportpage import Page, parse

from memberscore.cli import main
from memberscore.config import Settings, load_settings
from memberscore.context import JobResult, RunContext
from memberscore.errors import DriftAlertError, InputError
from memberscore.jobs import monitor, publish
from memberscore.models.baseline import ARTIFACT_PATH, build_baseline, dumps
from memberscore.models.estimator import DATE, LABEL, churn_probability, fit, time_split
from memberscore.models.registry import ModelRegistry, ResolvedModel
from memberscore.models.tracking import configure_mlflow, local_uris
from memberscore.models.training_run import log_training_run
from memberscore.schemas import bronze_schema, bronze_table, quarantine_table
from memberscore.tables import DRIFT_METRICS_SCHEMA, MEMBER_SCORES
from memberscore.transforms.ingest import QUARANTINE_SCHEMA
from memberscore.transforms.scoring import shape_scores
from memberscore.warehouse import open_warehouse

MODEL, LEGACY = "churn_monitor", "churn_legacy"
LEGACY_FEATURES = [*[f for f in MODEL_FEATURES if f != "txn_count_7d"], "legacy_ratio"]
LABEL_DATES = [dt.date(2026, 2, 2) + dt.timedelta(days=7 * k) for k in range(6)]
D = dt.date(2026, 3, 20)
UTC = dt.UTC
NULLABLE = ("card_spend_share_30d", "days_since_last_txn")  # null for everyone here


@dataclass(frozen=True)
class Store:
    """The shared MLflow store with the two registered champions."""

    tracking_uri: str
    champion: ResolvedModel
    legacy: ResolvedModel
    values: list[tuple[int, int]]  # (txn_count_30d, active_days_30d) of the training set
    legacy_scores: np.ndarray


def training_values() -> list[tuple[int, int]]:
    rng = np.random.default_rng(0)
    return [(int(rng.integers(0, 100)), int(rng.integers(0, 30))) for _ in range(80 * 6)]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """The champion: fitted, described and logged by the training code (everything
    `train` does after reading the lake, which test_train covers), then registered."""
    root = tmp_path_factory.mktemp("monitor-store")
    conf = model_settings(load_settings("local"), home=root, lake_root=root / "lake",
                          names=(MODEL,))
    values = training_values()
    frame = pd.DataFrame({f: 0.0 for f in MODEL_FEATURES}, index=range(len(values)))
    frame["txn_count_30d"] = [float(x) for x, _ in values]
    frame["active_days_30d"] = [float(y) for _, y in values]
    for column in NULLABLE:
        frame[column] = np.nan
    frame[LABEL] = frame["txn_count_30d"] < 40
    frame[DATE] = [LABEL_DATES[k // 80] for k in range(len(values))]
    split = time_split(frame, conf.models.holdout_weeks)
    trained = fit(split, MODEL_FEATURES, conf.models)
    baseline = build_baseline(frame, churn_probability(trained.pipeline, frame, MODEL_FEATURES),
                              feature_columns=MODEL_FEATURES, label_dates=frame[DATE],
                              feature_table="member_features_daily", feature_table_version=0,
                              label_rate=float(frame[LABEL].mean()))
    setup = configure_mlflow(RunContext(conf, run_id="test-monitor-train"))
    logged = log_training_run(setup, trained=trained, example=split.holdout, baseline=baseline,
                              params={"run_date": LABEL_DATES[-1]}, counts={"rows": len(frame)},
                              tags={"memberscore.run_id": "test-monitor-train"},
                              run_name="monitor-champion")
    registry = ModelRegistry(setup)
    champion = registry.set_alias(
        registry.register(logged.model_uri, MODEL, logged.run_id, tags={}), "champion")

    # The legacy model: the trained model's files registered under a second name with
    # its own run, whose baseline (the training format, built by the training code)
    # lacks txn_count_7d and has legacy_ratio, which the feature table does not.
    frame = pd.DataFrame({f: 0.0 for f in LEGACY_FEATURES}, index=range(len(values)))
    frame["txn_count_30d"] = [float(x) for x, _ in values]
    frame["active_days_30d"] = [float(y) for _, y in values]
    frame["legacy_ratio"] = np.linspace(0.0, 1.0, len(values))
    for column in NULLABLE:
        frame[column] = np.nan
    legacy_scores = np.linspace(0.05, 0.95, len(values))
    baseline = build_baseline(frame, legacy_scores, feature_columns=tuple(LEGACY_FEATURES),
                              label_dates=pd.Series([LABEL_DATES[0]] * len(values)),
                              feature_table="member_features_daily", feature_table_version=0)
    with mlflow.start_run(experiment_id=setup.experiment_id, run_name="legacy") as run:
        mlflow.log_text(dumps(baseline), ARTIFACT_PATH)
    registry.client.create_registered_model(LEGACY)
    source = registry.client.get_model_version(MODEL, champion.version).source
    created = registry.client.create_model_version(LEGACY, source, run_id=run.info.run_id)
    legacy = registry.set_alias(ResolvedModel(LEGACY, str(created.version), run.info.run_id),
                                "champion")
    while mlflow.active_run() is not None:
        mlflow.end_run()
    return Store(local_uris(root / "mlflow")[0], champion, legacy, values, legacy_scores)


def monitor_ctx(settings: Settings, spark: SparkSession, store: Store, run_id: str = "test-run",
                published: tuple[str, ...] = ("member_features_daily", "member_scores"),
                **monitor_conf: object) -> RunContext:
    conf = dataclasses.replace(
        settings,
        models=dataclasses.replace(settings.models, names=(MODEL, LEGACY),
                                   tracking_uri=store.tracking_uri,
                                   registry_uri=store.tracking_uri),
        monitor=dataclasses.replace(settings.monitor, **monitor_conf),
        snowflake=dataclasses.replace(settings.snowflake, published_tables=published),
    )
    return RunContext(conf, run_id=run_id, spark=spark)


def write_day(ctx: RunContext, store: Store, shift: int = 0,
              members_updated_at: dt.datetime = dt.datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
              ) -> None:
    """D's snapshot (the training values, txn_count_30d + shift), the scores of both
    models, and a few bronze rows (see the freshness and late-row assertions)."""
    spark = ctx.spark
    records = [{"member_id": f"d{k:04d}", "as_of_date": D, "txn_count_30d": x + shift,
                "active_days_30d": y} for k, (x, y) in enumerate(store.values)]
    snapshot = feature_frame(spark, records)
    write_features(ctx, snapshot)

    inputs = snapshot.select("member_id", *[F.col(c).cast("double") for c in MODEL_FEATURES])
    pdf = inputs.toPandas()
    model = mlflow.pyfunc.load_model(store.champion.uri)
    champion_scores = np.asarray(model.predict(pdf[list(MODEL_FEATURES)]))[:, -1]
    rows = [(m, D, float(s)) for m, s in zip(pdf["member_id"], champion_scores, strict=True)]
    legacy_rows = [(f"d{k:04d}", D, float(s)) for k, s in enumerate(store.legacy_scores)]
    conf = ctx.settings.models
    frames = [
        shape_scores(spark.createDataFrame(data, "member_id string, as_of_date date, "
                                                 "score double"),
                     model_name=resolved.name, model_version=resolved.version,
                     bands=conf.score_bands, run_id="test-score", scored_at=ctx.started_at)
        for resolved, data in ((store.champion, rows), (store.legacy, legacy_rows))
    ]
    ctx.lake.replace_where(MEMBER_SCORES.name, frames[0].unionByName(frames[1]),
                           {"as_of_date": D}, ["as_of_date"])

    def ts(day: int, hour: int, minute: int = 0) -> dt.datetime:
        return dt.datetime(2026, 3, day, hour, minute, tzinfo=UTC)

    transactions = [  # cutoff of D = 2026-03-21 06:00
        ("t1", "d0001", ts(19, 10), ts(19, 10, 1), dt.date(2026, 3, 19)),
        ("t2", "d0002", ts(20, 19, 50), ts(20, 20), D),        # latest known: 10 h old
        ("t3", "d0003", ts(20, 23, 30), ts(22, 8), dt.date(2026, 3, 22)),  # late for D
        ("t4", "d0004", ts(21, 9), ts(21, 9, 5), dt.date(2026, 3, 21)),    # after D
    ]
    ctx.lake.append(bronze_table("transactions"), spark.createDataFrame(
        [(t, m, booked, 1, "GBP", "card", None, "settled", ingested, landing, "t.csv", "r")
         for t, m, booked, ingested, landing in transactions],
        "transaction_id string, member_id string, booked_at timestamp, amount int, "
        "currency string, channel string, counterparty_id string, status string, "
        "ingested_at timestamp, landing_date date, source_file string, run_id string")
        .select(*[F.col(f.name).cast(f.dataType) for f in bronze_schema("transactions")]),
        ["landing_date"])
    ctx.lake.append(quarantine_table("transactions"), spark.createDataFrame(
        [('{"transaction_id": "t9"}', ["currency_not_gbp", "unknown_channel"], "t.csv", 7, D,
          "r", ts(21, 1))], QUARANTINE_SCHEMA), ["landing_date"])
    ctx.lake.append(bronze_table("members"), spark.createDataFrame(
        [("d0001", "ltd", "62020", "London", ts(1, 9), None, ts(1, 9), dt.date(2026, 3, 1),
          "m.csv", "r"),
         ("d0002", "llp", "62020", "Wales", ts(2, 9), None, members_updated_at,
          members_updated_at.date(), "m.csv", "r")],
        bronze_schema("members")), ["landing_date"])


def drift_rows(ctx: RunContext) -> dict[tuple[str, str, str], tuple]:
    rows = ctx.lake.read("drift_metrics").where(F.col("as_of_date") == D).collect()
    return {(r.model_name, r.column_name, r.metric): (r.value, r.threshold, r.status, r.run_id)
            for r in rows}


def worst_columns(page: Page, model: str) -> list[str]:
    """The column labels of a model's worst-drift chart, top (worst) first."""
    chart = page.charts[f"drift-worst-{model}"]
    return [chart.text(f"column-{i}").text for i in range(10) if chart.has(f"column-{i}")]


def members_scored(page: Page, model: str) -> int:
    """The members of a model's score-bands table, all bands together."""
    rows = page.tables[f"score-bands-{model}"][1:]
    return sum(int(row[1].replace(",", "")) for row in rows)


# --------------------------------------------------------------------------- tests


def test_same_distribution_is_ok_and_every_column_is_reported(
        settings: Settings, spark: SparkSession, store: Store) -> None:
    ctx = monitor_ctx(settings, spark, store)
    write_day(ctx, store)
    result = monitor.run(ctx, argparse.Namespace(run_date=D))

    table = ctx.lake.read("drift_metrics")
    assert [(f.name, f.dataType) for f in table.schema.fields] == \
        [(f.name, f.dataType) for f in DRIFT_METRICS_SCHEMA.fields]
    rows = drift_rows(ctx)
    # psi+ks per feature and score, the mean score against the base rate, sources
    per_model = 2 * len(MODEL_FEATURES) + 2 + 1 + 3
    assert len([k for k in rows if k[0] == MODEL]) == per_model
    assert len([k for k in rows if k[0] == LEGACY]) == per_model + 2  # + legacy_ratio

    for feature in MODEL_FEATURES:
        value, threshold, status, run_id = rows[(MODEL, feature, "psi")]
        assert value == pytest.approx(0.0, abs=1e-12) and status == "ok", feature
        assert (threshold, run_id) == (0.1, "test-run")
        ks_value, _, ks_status, _ = rows[(MODEL, feature, "ks")]
        if feature in NULLABLE:  # null on both sides: no KS, nothing changed
            assert (ks_value, ks_status) == (None, "ok")
        else:
            assert ks_value <= 0.02 and ks_status == "ok", feature
    # the same inputs through the same model: exactly the baseline's scores
    assert rows[(MODEL, "score", "psi")][0] == pytest.approx(0.0, abs=1e-12)
    assert rows[(MODEL, "score", "ks")][2] == "ok"
    assert rows[(LEGACY, "score", "psi")][0] == pytest.approx(0.0, abs=1e-12)
    # prediction drift: the same members through the same model score on average what
    # the training set's churn rate was (a logistic fit matches it closely)
    ratio, threshold, status, _ = rows[(MODEL, "score", "mean_score_vs_base_rate")]
    assert (threshold, status) == (2.0, "ok") and 0.8 < ratio < 1.25
    # a baseline logged without a churn rate cannot tell: warn, value null
    assert rows[(LEGACY, "score", "mean_score_vs_base_rate")][:3] == (None, 2.0, "warn")

    # the legacy model: a current feature it never saw, and one the table lacks
    for metric in ("psi", "ks"):
        assert rows[(LEGACY, "txn_count_7d", metric)] == (None, None, "warn", "test-run")
        assert rows[(LEGACY, "legacy_ratio", metric)] == (None, None, "warn", "test-run")

    # sources, the same rows for each model: cutoff 2026-03-21 06:00
    for model in (MODEL, LEGACY):
        assert rows[(model, "transactions.ingested_at", "freshness_hours")][:3] == \
            (pytest.approx(10.0), 36.0, "ok")
        assert rows[(model, "members.updated_at", "freshness_hours")][:3] == \
            (pytest.approx(18.0), 36.0, "ok")
        assert rows[(model, "transactions.ingested_at", "late_rows")][:3] == (1.0, 0.0, "warn")

    assert result.rows == {"drift_metrics": len(rows)}
    assert result.details["statuses"]["alert"] == 0
    assert result.details["models"] == {MODEL: store.champion.version,
                                        LEGACY: store.legacy.version}
    report = Path(result.details["report"])
    assert report == ctx.paths.reports / "runs" / D.isoformat() / "report-test-run.html"
    assert result.messages[-1] == f"report: {report}"
    # a baseline logged without a reference week is compared as a whole
    assert any(m.startswith(f"drift {D} {MODEL} version {store.champion.version} against "
                            "training set: 0 alert")
               for m in result.messages)
    page = parse(report.read_text(encoding="utf-8"))
    assert f"score-histogram-{MODEL}" in page.charts
    assert members_scored(page, MODEL) == len(store.values)
    # the warn rows (value n/a) are charted first
    assert set(worst_columns(page, LEGACY)[:2]) == {"txn_count_7d", "legacy_ratio"}
    counts = {row[0]: row[2] for row in page.tables["row-counts"][1:]}
    assert counts["bronze_transactions"] == "1"  # t2 landed on D
    assert counts["quarantine_transactions"] == "1"
    assert counts["member_features_daily"] == "480"
    assert counts["member_scores"] == "960"
    assert counts["drift_metrics"] == f"{len(rows):,}"
    assert counts["bronze_member_outcomes"] == "no table"
    assert page.tables["quarantine-table"][1:] == [
        ["transactions", "currency_not_gbp", "1"], ["transactions", "unknown_channel", "1"]]

    # a re-run replaces the day's rows: same rows, the new run id
    again = monitor.run(monitor_ctx(settings, spark, store, run_id="test-rerun"),
                        argparse.Namespace(run_date=D))
    rerun_rows = drift_rows(ctx)
    assert again.rows == result.rows and set(rerun_rows) == set(rows)
    assert {r[3] for r in rerun_rows.values()} == {"test-rerun"}


def test_alert_fails_after_writing_drift_and_report_unless_warn_only(
        settings: Settings, spark: SparkSession, store: Store, home: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    ctx = monitor_ctx(settings, spark, store)
    write_day(ctx, store, shift=150,
              members_updated_at=dt.datetime(2026, 3, 18, 0, 0, tzinfo=UTC))  # 78 h old
    for key, value in {"NAMES": f"[{MODEL}, {LEGACY}]", "TRACKING_URI": store.tracking_uri,
                       "REGISTRY_URI": store.tracking_uri}.items():
        monkeypatch.setenv(f"MEMBERSCORE__MODELS__{key}", value)
    monkeypatch.setenv("MEMBERSCORE__SNOWFLAKE__PUBLISHED_TABLES", "[member_scores]")

    code = main(["--run-id", "test-alert", "monitor", "--run-date", D.isoformat()])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == DriftAlertError.exit_code == 10
    assert not any("Downloading artifacts" in line for line in err)  # no progress bars
    err = [line for line in err if line.startswith("memberscore: ")]  # not the log lines
    assert len(err) == 1
    assert err[0].startswith(f"memberscore: monitor failed: monitor {D}: ")
    assert f"in alert: {MODEL}: txn_count_30d psi " in err[0]
    assert "(alert >= 0.25), txn_count_30d ks 1.000 (alert >= 0.2)" in err[0]
    assert "; sources: members.updated_at freshness_hours 78.000 (alert > 36). " in err[0]
    assert err[0].count("members.updated_at") == 1  # once, not once per model
    assert "monitor.warn_only: true" in err[0]

    # written before failing: the day's drift rows and the report
    rows = drift_rows(ctx)
    assert rows[(MODEL, "txn_count_30d", "psi")][2] == "alert"
    assert rows[(MODEL, "txn_count_30d", "ks")][:3] == (pytest.approx(1.0), 0.2, "alert")
    assert rows[(MODEL, "active_days_30d", "psi")][2] == "ok"
    assert {r[3] for r in rows.values()} == {"test-alert"}
    report = home / "reports" / "runs" / D.isoformat() / "report-test-alert.html"
    assert str(report) in err[0]
    assert worst_columns(parse(report.read_text(encoding="utf-8")), MODEL)[0] == "txn_count_30d"

    # warn-only: the same day succeeds and says why; monitor never talks to the
    # warehouse, it says how the day's drift rows get there, and publish sends them
    warn_only = monitor_ctx(settings, spark, store, run_id="test-warn-only", warn_only=True,
                            published=("drift_metrics",))
    result: JobResult = monitor.run(warn_only, argparse.Namespace(run_date=D))
    assert result.details["alerts"][0].startswith(f"{MODEL}: txn_count_30d psi")
    assert "monitor.warn_only is true" in result.messages[-1]
    assert f"to the warehouse: `memberscore publish --run-date {D} --table drift_metrics` " \
           "(pipeline runs it after monitor)" in result.messages
    assert not any(m.startswith("published") for m in result.messages)
    sent = publish.run(warn_only, argparse.Namespace(run_date=D, table=["drift_metrics"]))
    assert any(m.startswith(f"published DRIFT_METRICS {D}: {len(rows):,} rows")
               for m in sent.messages)
    with open_warehouse(warn_only.settings, warn_only.paths.warehouse, purpose="test") as conn:
        published = conn.execute(
            "SELECT STATUS, COUNT(*) FROM DRIFT_METRICS WHERE AS_OF_DATE = ? AND RUN_ID = ? "
            "GROUP BY STATUS ORDER BY STATUS", [D, "test-warn-only"], what="test read")
    lake = Counter(r[2] for r in drift_rows(ctx).values())
    assert [tuple(r) for r in published] == sorted(lake.items())


def test_a_day_without_scores_or_snapshot_is_a_clear_input_error(
        settings: Settings, spark: SparkSession, store: Store) -> None:
    ctx = monitor_ctx(settings, spark, store)
    with pytest.raises(InputError, match="table member_scores does not exist; run "
                                         "`memberscore score --run-date 2026-03-20`"):
        monitor.run(ctx, argparse.Namespace(run_date=D))
    assert not ctx.lake.exists("drift_metrics")
