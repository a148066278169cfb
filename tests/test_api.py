"""The scores API against a real HTTP server (waitress on a loopback port) and the
local warehouse, after real publishes: every endpoint, every error path, a score equal
to Snowflake's row, and a partial day never served."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pyspark.sql import SparkSession

from memberscore.api.app import create_app, openapi_document
from memberscore.api.server import ApiServer, api_server
from memberscore.cli import main
from memberscore.config import Settings, load_settings
from memberscore.context import RunContext
from memberscore.feature_registry import FEATURES, feature_table_schema
from memberscore.tables import MEMBER_SCORES_SCHEMA
from memberscore.warehouse import open_warehouse, publish_day

TOKEN = "api-test-token-7f3a9c1e5b2d4f60"
OTHER_TOKEN = "api-second-token-0a1b2c3d4e5f6a7b"
DAY1, DAY2, DAY3 = dt.date(2026, 11, 18), dt.date(2026, 11, 19), dt.date(2026, 11, 20)
BOTH = ["member_features_daily", "member_scores"]
AT = dt.datetime(2026, 11, 21, 4, 30, tzinfo=dt.UTC)


def feature_row(member: str, day: dt.date, run: str, n: int) -> dict[str, Any]:
    """A features row with distinct values per member and day (nulls for member m3)."""
    values: dict[str, Any] = {}
    for feature in FEATURES:
        name, kind = feature.name, feature.type_name
        if name == "member_id":
            values[name] = member
        elif name == "as_of_date":
            values[name] = day
        elif name == "run_id":
            values[name] = run
        elif name in ("feature_cutoff_at", "computed_at"):
            values[name] = AT
        elif name == "history_days":
            values[name] = 30 + n
        elif feature.nullable and member == "m3":
            values[name] = None
        elif kind.startswith("decimal"):
            values[name] = Decimal(f"{n * 1000 + 0.25:.2f}") * (-1 if "net" in name else 1)
        elif kind == "double":
            values[name] = round(0.1 * (n % 10), 4)
        else:
            values[name] = n + len(name)
    return values


def write_day(ctx: RunContext, day: dt.date, run: str, features: bool = True,
              members: tuple[str, ...] = ("m1", "m2", "m3")) -> None:
    spark = ctx.spark
    if features:
        rows = [feature_row(m, day, run, i + day.day) for i, m in enumerate(members)]
        frame = spark.createDataFrame([tuple(r[f.name] for f in FEATURES) for r in rows],
                                      feature_table_schema())
        ctx.lake.replace_where("member_features_daily", frame, {"as_of_date": day},
                               ["as_of_date"])
    scores = [(m, day, "member_churn", "4", round(0.05 + 0.3 * i + day.day / 1000, 6),
               "low" if i == 0 else "medium", run, AT) for i, m in enumerate(members)]
    ctx.lake.replace_where("member_scores", spark.createDataFrame(scores, MEMBER_SCORES_SCHEMA),
                           {"as_of_date": day}, ["as_of_date"])


@dataclasses.dataclass
class Published:
    settings: Settings
    ctx: RunContext
    server: ApiServer

    def get(self, path: str, token: str | None = TOKEN,
            headers: dict[str, str] | None = None,
            method: str = "GET") -> tuple[int, dict[str, Any], dict[str, str]]:
        request = urllib.request.Request(self.server.url + path, method=method)
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read()), dict(response.headers)
        except urllib.error.HTTPError as error:
            body = error.read().decode()
            assert "Traceback" not in body
            return error.code, json.loads(body), dict(error.headers)

    def snowflake(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with open_warehouse(self.settings, self.ctx.paths.warehouse, purpose="test") as conn:
            return conn.query(sql, params, what="test")


@pytest.fixture(scope="module")
def published(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Published]:
    """Two complete days (DAY1, DAY2) and a partial one (DAY3: scores only) published
    to the local warehouse, and the API serving them on a free loopback port."""
    home = tmp_path_factory.mktemp("api-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEMBERSCORE_HOME", str(home))
        mp.setenv("MEMBERSCORE_API_TOKEN", TOKEN)
        mp.setenv("MEMBERSCORE__API__TOKENS", '["${MEMBERSCORE_API_TOKEN}", "${API_TEST_OTHER}"]')
        mp.setenv("API_TEST_OTHER", OTHER_TOKEN)
        settings = load_settings("local")
        ctx = RunContext(settings, run_id="api-run-1", spark=spark)
        for day in (DAY1, DAY2):
            write_day(ctx, day, "api-run-1")
            publish_day(settings, ctx.lake, spark, warehouse_dir=ctx.paths.warehouse,
                        run_id="api-run-1", tables=BOTH, day=day)
        write_day(ctx, DAY3, "api-run-1")
        publish_day(settings, ctx.lake, spark, warehouse_dir=ctx.paths.warehouse,
                    run_id="api-run-1", tables=["member_scores"], day=DAY3)
        with api_server(settings, ctx.paths.warehouse, port=0) as server:
            yield Published(settings, ctx, server)


# --------------------------------------------------------------------------- score


def test_a_score_equals_snowflakes_row_with_its_lineage(published: Published) -> None:
    status, body, headers = published.get("/v1/members/m2/score")
    assert status == 200
    (row,) = published.snowflake(
        "SELECT s.*, l.PUBLISHED_AT AS LOGGED FROM MEMBER_SCORES s JOIN PUBLISH_LOG l ON "
        "l.AS_OF_DATE = s.AS_OF_DATE AND l.TABLE_NAME = 'MEMBER_SCORES' "
        "WHERE s.MEMBER_ID = ? AND s.AS_OF_DATE = ?", ("m2", DAY2))
    assert body == {
        "member_id": "m2", "as_of_date": "2026-11-19", "score": row["SCORE"],
        "score_band": "medium", "model_name": "member_churn", "model_version": "4",
        "run_id": "api-run-1", "scored_at": "2026-11-21T04:30:00Z",
        "published_at": row["LOGGED"].astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
    }
    assert body["score"] == pytest.approx(0.05 + 0.3 + 19 / 1000)
    timing = headers["Server-Timing"]
    assert timing.startswith("db;dur=") and 'desc="1 queries"' in timing and "app;dur=" in timing


def test_the_newest_complete_day_is_served_never_the_partial_one(published: Published) -> None:
    """DAY3 has scores in Snowflake but not its features: it is partial, never served,
    although it is newer than DAY2."""
    assert published.snowflake("SELECT COUNT(*) AS N FROM MEMBER_SCORES WHERE AS_OF_DATE = ?",
                               (DAY3,)) == [{"N": 3}]
    assert published.get("/v1/members/m1/score")[1]["as_of_date"] == "2026-11-19"
    status, body, _ = published.get("/v1/members/m1/score?as_of_date=2026-11-20")
    assert status == 404
    assert body["error"]["publish_status"] == "partial"
    assert body["error"]["newest_complete_day"] == "2026-11-19"
    assert "only days published completely are served" in body["error"]["message"]
    status, body, _ = published.get("/v1/members/m1/features?as_of_date=2026-11-20")
    assert (status, body["error"]["publish_status"]) == (404, "partial")


def test_an_older_complete_day_is_served_when_asked(published: Published) -> None:
    status, body, _ = published.get("/v1/members/m1/score?as_of_date=2026-11-18")
    assert status == 200
    assert (body["as_of_date"], body["score"]) == ("2026-11-18", pytest.approx(0.05 + 0.018))


def test_unknown_members_days_and_models_are_404(published: Published) -> None:
    status, body, _ = published.get("/v1/members/nobody/score")
    assert status == 404
    assert body["error"]["message"] == ("member nobody has no score from model member_churn "
                                        "on 2026-11-19")
    status, body, _ = published.get("/v1/members/m1/score?model_name=other_model")
    assert (status, body["error"]["code"]) == (404, "not_found")
    assert "from model other_model" in body["error"]["message"]
    status, body, _ = published.get("/v1/members/m1/score?as_of_date=2025-01-01")
    assert (status, body["error"]["publish_status"]) == (404, "absent")
    status, body, _ = published.get("/v1/members/nobody/features")
    assert status == 404 and "has no features on 2026-11-19" in body["error"]["message"]


def test_a_republished_day_is_served_with_its_new_run(published: Published) -> None:
    ctx = published.ctx
    write_day(ctx, DAY1, "api-run-2")
    publish_day(published.settings, ctx.lake, ctx.spark, warehouse_dir=ctx.paths.warehouse,
                run_id="api-run-2", tables=BOTH, day=DAY1)
    body = published.get("/v1/members/m3/score?as_of_date=2026-11-18")[1]
    assert body["run_id"] == "api-run-2"
    day = published.get("/v1/days/2026-11-18")[1]
    assert day["run_ids"] == ["api-run-2"] and day["status"] == "complete"


# --------------------------------------------------------------------------- features


def test_features_carry_values_definitions_and_units(published: Published) -> None:
    status, body, _ = published.get("/v1/members/m1/features")
    assert status == 200
    expected = feature_row("m1", DAY2, "api-run-1", DAY2.day)
    (row,) = published.snowflake("SELECT * FROM MEMBER_FEATURES_DAILY WHERE MEMBER_ID = ? "
                                 "AND AS_OF_DATE = ?", ("m1", DAY2))
    assert body["member_id"] == "m1" and body["as_of_date"] == "2026-11-19"
    assert body["history_days"] == expected["history_days"] == row["HISTORY_DAYS"]
    assert body["run_id"] == "api-run-1"
    assert body["feature_cutoff_at"] == "2026-11-21T04:30:00Z"
    by_name = {f["name"]: f for f in body["features"]}
    registry = [f for f in FEATURES if f.role == "feature"]
    assert list(by_name) == [f.name for f in registry]
    for feature in registry:
        served = by_name[feature.name]
        assert served["definition"] == feature.definition
        assert served["unit"] == feature.unit and served["window_days"] == feature.window_days
        value = expected[feature.name]
        if isinstance(value, Decimal):  # money: the exact decimal, as a string
            assert served["value"] == str(value) == str(row[feature.name.upper()])
        else:
            assert served["value"] == value == row[feature.name.upper()]
    assert by_name["net_flow_30d"]["value"].startswith("-")
    assert by_name["inflow_sum_30d"]["unit"] == "GBP"
    assert by_name["card_spend_share_30d"]["unit"] == "share"


def test_null_features_are_served_as_null(published: Published) -> None:
    body = published.get("/v1/members/m3/features")[1]
    nullable = {f.name for f in FEATURES if f.role == "feature" and f.nullable}
    assert nullable == {"card_spend_share_30d", "days_since_last_txn"}
    assert {f["name"]: f["value"] for f in body["features"] if f["name"] in nullable} == \
        dict.fromkeys(nullable)


# --------------------------------------------------------------------------- days, health


def test_a_day_reports_its_tables_counts_checksums_and_models(published: Published) -> None:
    status, body, _ = published.get("/v1/days/2026-11-19")
    assert status == 200
    log = published.snowflake("SELECT TABLE_NAME, ROW_COUNT, CHECKSUM, RUN_ID FROM PUBLISH_LOG "
                              "WHERE AS_OF_DATE = ? ORDER BY TABLE_NAME", (DAY2,))
    assert [(t["table_name"], t["row_count"], t["checksum"], t["run_id"])
            for t in body["tables"]] == [tuple(r.values()) for r in log]
    assert [t["row_count"] for t in body["tables"]] == [3, 3]
    assert body["status"] == "complete"
    assert body["required_tables"] == ["MEMBER_FEATURES_DAILY", "MEMBER_SCORES"]
    assert body["models"] == [{"model_name": "member_churn", "model_version": "4",
                               "run_id": "api-run-1", "rows": 3}]
    partial = published.get("/v1/days/2026-11-20")
    assert (partial[0], partial[1]["status"]) == (200, "partial")
    assert [t["table_name"] for t in partial[1]["tables"]] == ["MEMBER_SCORES"]
    absent = published.get("/v1/days/2026-11-21")
    assert (absent[0], absent[1]["error"]["publish_status"]) == (404, "absent")


def test_health_needs_no_token_and_names_the_newest_complete_day(published: Published) -> None:
    status, body, _ = published.get("/v1/health", token=None)
    assert status == 200
    age = (dt.datetime.now(dt.UTC).date() - DAY2).days
    assert body == {"status": "ok", "warehouse": "reachable",
                    "newest_complete_day": "2026-11-19", "age_days": age}


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("header", [None, "Bearer wrong-token-0000000000000", "Basic " + TOKEN,
                                    "Bearer", TOKEN, "Bearer " + TOKEN + "x"])
def test_a_missing_or_wrong_token_is_401(published: Published, header: str | None) -> None:
    request = urllib.request.Request(published.server.url + "/v1/members/m1/score")
    if header is not None:
        request.add_header("Authorization", header)
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    body = json.loads(caught.value.read())
    assert caught.value.code == 401 and body["error"]["code"] == "unauthorized"
    assert caught.value.headers["WWW-Authenticate"] == 'Bearer realm="memberscore"'
    assert TOKEN not in json.dumps(body)


def test_every_configured_token_is_accepted(published: Published) -> None:
    assert published.get("/v1/members/m1/score", token=OTHER_TOKEN)[0] == 200


@pytest.mark.parametrize(("path", "message"), [
    ("/v1/members/m1/score?as_of_date=2026-02-30", "query parameter as_of_date '2026-02-30'"),
    ("/v1/members/m1/score?as_of_date=20261119", "is not a date: expected YYYY-MM-DD"),
    ("/v1/members/m1%27%20OR%20%271%27=%271/score", "is not a member id"),
    ("/v1/members/" + "m" * 129 + "/score", "is not a member id"),
    ("/v1/members/m1/score?model_name=x%27;DROP%20TABLE%20MEMBER_SCORES", "is not a model name"),
    ("/v1/days/19-11-2026", "as_of_date in the path '19-11-2026' is not a date"),
])
def test_bad_ids_and_dates_are_400(published: Published, path: str, message: str) -> None:
    status, body, _ = published.get(path)
    assert status == 400 and body["error"]["code"] == "bad_request"
    assert message in body["error"]["message"]


def test_unknown_routes_and_methods_answer_json(published: Published) -> None:
    status, body, _ = published.get("/v1/members/m1/scores")
    assert (status, body["error"]["message"]) == (404, "no such route: GET /v1/members/m1/scores")
    status, body, _ = published.get("/v1/members/m1/score", method="POST")
    assert status == 405 and "POST is not allowed" in body["error"]["message"]


def test_a_query_the_warehouse_refuses_is_500_with_a_request_id(published: Published) -> None:
    """A published table whose columns drifted (a column renamed by hand): the
    warehouse refuses the statement; the client gets a 500 naming its request, never
    the SQL or a traceback, and the next request after the repair is served."""
    alter = "ALTER TABLE MEMBER_SCORES RENAME COLUMN {} TO {}"
    published.snowflake(alter.format("SCORE_BAND", "SCORE_BAND_RENAMED"))
    try:
        status, body, headers = published.get("/v1/members/m1/score",
                                               headers={"X-Request-Id": "drift-1"})
    finally:
        published.snowflake(alter.format("SCORE_BAND_RENAMED", "SCORE_BAND"))
    assert status == 500
    assert body["error"] == {"status": 500, "code": "warehouse_error",
                             "message": "the warehouse refused the query (request drift-1)"}
    assert headers["X-Request-Id"] == "drift-1"
    assert published.get("/v1/members/m1/score")[0] == 200


def test_the_token_is_never_logged(published: Published, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for path in ("/v1/members/m1/score", "/v1/members/nobody/score", "/v1/days/x"):
        published.get(path)
    published.get("/v1/members/m1/score", token=TOKEN[:-1] + "z")
    assert caplog.records  # the API and the connector did log
    assert TOKEN not in caplog.text and TOKEN[:-1] not in caplog.text


def test_a_request_id_is_echoed_or_made(published: Published) -> None:
    assert published.get("/v1/health", headers={"X-Request-Id": "abc-123"})[2][
        "X-Request-Id"] == "abc-123"
    assert len(published.get("/v1/health")[2]["X-Request-Id"]) == 16


def test_concurrent_clients_all_get_their_own_answers(published: Published) -> None:
    paths = [f"/v1/members/m{1 + i % 3}/score" for i in range(60)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(published.get, paths))
    assert [a[0] for a in answers] == [200] * 60
    assert [a[1]["member_id"] for a in answers] == [p.split("/")[3] for p in paths]


# --------------------------------------------------------------------------- the warehouse away


def _silent_listener() -> tuple[socket.socket, int]:
    """A socket that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock, sock.getsockname()[1]


@pytest.mark.parametrize("kind", ["closed port", "never answers"])
def test_an_unreachable_warehouse_is_503_within_the_bound(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    silent, port = _silent_listener()
    if kind == "closed port":
        silent.close()
    monkeypatch.setenv("MEMBERSCORE_HOME", str(tmp_path))
    monkeypatch.setenv("MEMBERSCORE_API_TOKEN", TOKEN)
    monkeypatch.setenv("API_TEST_PASSWORD", "not-a-real-password-123")
    for key, value in {"SNOWFLAKE__LOCAL_SERVER": "false", "SNOWFLAKE__PORT": str(port),
                       "SNOWFLAKE__PASSWORD": "${API_TEST_PASSWORD}",
                       "API__TIMEOUT_SECONDS": "2"}.items():
        monkeypatch.setenv(f"MEMBERSCORE__{key}", value)
    settings = load_settings("local")
    try:
        with api_server(settings, tmp_path / "warehouse", port=0) as server:
            served = Published(settings, None, server)  # type: ignore[arg-type]
            for path in ("/v1/members/m1/score", "/v1/health"):
                started = time.monotonic()
                status, body, _ = served.get(path)
                seconds = time.monotonic() - started
                assert status == 503, body
                assert body["error"]["code"] == "warehouse_unavailable"
                assert f"http://127.0.0.1:{port}" in body["error"]["message"]
                assert "not-a-real-password" not in json.dumps(body)
                assert seconds < 2 * 2 + 3, f"{path} took {seconds:.1f}s"
    finally:
        silent.close()


# --------------------------------------------------------------------------- OpenAPI


def _openapi_path(rule: str) -> str:
    return rule.replace("<", "{").replace(">", "}")


def test_the_openapi_document_matches_the_routes(published: Published) -> None:
    document = openapi_document()
    assert document["openapi"].startswith("3.")
    app = create_app(None, [TOKEN])  # type: ignore[arg-type]  # routes only, never called
    routes = {(_openapi_path(r.rule), m.lower()) for r in app.url_map.iter_rules()
              if r.rule.startswith("/v1/") for m in (r.methods or set()) - {"HEAD", "OPTIONS"}}
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert routes == documented
    for path, item in document["paths"].items():
        for operation in item.values():
            codes = set(operation["responses"])
            open_route = operation.get("security") == []
            assert "503" in codes or path == "/v1/openapi.json"
            assert ("401" in codes) is not open_route, path
            parameters = [_resolve(document, p) for p in operation.get("parameters", [])]
            path_params = {p["name"] for p in parameters if p["in"] == "path"}
            assert path_params == set(_placeholders(path)), path
    status, served, _ = published.get("/v1/openapi.json", token=None)
    assert status == 200 and served == document


def _resolve(document: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """`item`, or what its `$ref` (`#/components/...`) points to."""
    if "$ref" not in item:
        return item
    found: Any = document
    for part in item["$ref"].removeprefix("#/").split("/"):
        found = found[part]
    return dict(found)


def _placeholders(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def _schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}", "components": document["components"]}


@pytest.mark.parametrize(("path", "schema", "status"), [
    ("/v1/members/m1/score", "Score", 200), ("/v1/members/m3/features", "Features", 200),
    ("/v1/days/2026-11-19", "Day", 200), ("/v1/health", "Health", 200),
    ("/v1/members/nobody/score", "Error", 404), ("/v1/days/bad", "Error", 400),
])
def test_answers_validate_against_the_openapi_schemas(
        published: Published, path: str, schema: str, status: int) -> None:
    document = openapi_document()
    answer = published.get(path)
    assert answer[0] == status
    jsonschema.Draft202012Validator(_schema(document, schema)).validate(answer[1])


# --------------------------------------------------------------------------- the command


def test_memberscore_api_serves_in_the_foreground_and_stops_on_sigterm(
        published: Published) -> None:
    env = {**os.environ, "MEMBERSCORE_HOME": str(published.ctx.paths.home),
           "MEMBERSCORE_API_TOKEN": TOKEN}
    process = subprocess.Popen([sys.executable, "-m", "memberscore.cli", "api", "--port", "0"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        first = process.stdout.readline()  # type: ignore[union-attr]
        assert first.startswith("scores API serving on http://127.0.0.1:"), first
        url = first.split()[4]
        served = Published(published.settings, published.ctx, ApiServer("127.0.0.1",
                                                                        int(url.rsplit(":", 1)[1]),
                                                                        ""))
        status, body, _ = served.get("/v1/members/m2/score")
        assert status == 200 and body == published.get("/v1/members/m2/score")[1]
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert TOKEN not in out + err


def test_memberscore_api_without_a_token_fails_in_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MEMBERSCORE_HOME", str(tmp_path))
    monkeypatch.delenv("MEMBERSCORE_API_TOKEN", raising=False)
    assert main(["api", "--port", "0"]) == 3
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["memberscore: api failed: environment variable MEMBERSCORE_API_TOKEN is "
                     "not set (referenced as ${MEMBERSCORE_API_TOKEN} in conf); export it "
                     "before running"]
    monkeypatch.setenv("MEMBERSCORE_API_TOKEN", "short-secret")
    assert main(["api", "--port", "0"]) == 3
    err = capsys.readouterr().err
    assert "${MEMBERSCORE_API_TOKEN} is shorter than 16 characters" in err
    assert "short-secret" not in err
    assert not (tmp_path / "warehouse").exists()  # refused before anything started


def test_create_app_needs_a_token() -> None:
    with pytest.raises(ValueError, match="at least one bearer token"):
        create_app(None, [])  # type: ignore[arg-type]
