"""The scores API: a Flask app over the published Snowflake tables (docs/api.md).

Routes (all JSON, all under `/v1`):
- `GET /v1/members/<member_id>/score[?as_of_date=D&model_name=M]`
- `GET /v1/members/<member_id>/features[?as_of_date=D]`
- `GET /v1/days/<as_of_date>`
- `GET /v1/health` (no token)
- `GET /v1/openapi.json` (no token): the OpenAPI 3 document of these routes

Only days published completely are served (`memberscore.api.reads`).  Every other
route needs `Authorization: Bearer <token>`, one of conf `api.tokens`, compared in
constant time; a token is never logged or echoed.  Errors are JSON
`{"error": {"status", "code", "message"}}` with 400, 401, 404, 405, 503 or 500, never a
traceback.  Each answer carries `Server-Timing` (`db`: the warehouse's time, `app`:
the whole request) and an `X-Request-Id`.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import logging
import re
import time
import uuid
from collections.abc import Sequence
from decimal import Decimal
from importlib import resources
from typing import Any

import yaml
from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from memberscore.api.pool import WarehouseUnavailableError
from memberscore.api.reads import NothingToServeError, PublishedReads, Timings, iso_value
from memberscore.errors import WarehouseError
from memberscore.feature_registry import FEATURES

log = logging.getLogger(__name__)

# member ids and model names go to the warehouse as bound values; these shapes keep
# garbage (and very long strings) from reaching it at all
MEMBER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")
MODEL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,254}$")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
OPEN_ROUTES = frozenset({"health", "openapi"})


class BadRequestError(Exception):
    """A malformed path or query value (400); the message names it."""


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3 document shipped with the package (memberscore/api/openapi.yml)."""
    text = resources.files("memberscore.api").joinpath("openapi.yml").read_text("utf-8")
    document: dict[str, Any] = yaml.safe_load(text)
    return document


def create_app(reads: PublishedReads, tokens: Sequence[str], *,
               where: str = "") -> Flask:
    """The Flask app over `reads`; `tokens` are the revealed bearer tokens."""
    if not tokens:
        raise ValueError("the API needs at least one bearer token")
    accepted = [t.encode("utf-8") for t in tokens]
    app = Flask("memberscore.api")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    openapi = json.dumps(openapi_document())

    @app.before_request
    def _start() -> Response | None:
        g.started = time.perf_counter()
        g.timings = Timings()
        g.request_id = _request_id(request.headers.get("X-Request-Id"))
        if request.endpoint in OPEN_ROUTES or request.endpoint is None:
            return None
        if not _authorized(request.headers.get("Authorization", ""), accepted):
            response = _error(401, "unauthorized",
                              "missing or wrong bearer token: send 'Authorization: Bearer "
                              "<token>' with a token of this service")
            response.headers["WWW-Authenticate"] = 'Bearer realm="memberscore"'
            return response
        return None

    @app.after_request
    def _finish(response: Response) -> Response:
        timings: Timings = g.get("timings", Timings())
        total = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
        response.headers["Server-Timing"] = (
            f'db;dur={timings.query_seconds * 1000:.2f};desc="{timings.queries} queries", '
            f"app;dur={total:.2f}")
        response.headers["X-Request-Id"] = g.get("request_id", "")
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(BadRequestError)
    def _bad_request(exc: BadRequestError) -> Response:
        return _error(400, "bad_request", str(exc))

    @app.errorhandler(NothingToServeError)
    def _not_found(exc: NothingToServeError) -> Response:
        return _error(404, "not_found", str(exc), **exc.details)

    @app.errorhandler(WarehouseError)
    def _unavailable(exc: WarehouseError) -> Response:
        if isinstance(exc, WarehouseUnavailableError):
            log.warning("api: warehouse unavailable (request %s): %s", g.request_id, exc)
            return _error(503, "warehouse_unavailable",
                          f"the warehouse did not answer ({where or 'Snowflake'}); "
                          "try again shortly")
        log.error("api: warehouse query failed (request %s): %s", g.request_id, exc)
        return _error(500, "warehouse_error",
                      f"the warehouse refused the query (request {g.request_id})")

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        code = exc.code or 500
        message = {404: f"no such route: {request.method} {request.path}",
                   405: f"{request.method} is not allowed on {request.path}"}.get(
            code, exc.description or exc.name)
        return _error(code, exc.name.lower().replace(" ", "_"), message)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.error("api: request %s failed: %s: %s", g.get("request_id", "-"),
                  type(exc).__name__, exc, exc_info=log.isEnabledFor(logging.DEBUG))
        return _error(500, "internal_error",
                      f"the request failed unexpectedly (request {g.get('request_id', '-')})")

    @app.get("/v1/members/<member_id>/score")
    def score(member_id: str) -> Response:
        member = _member(member_id)
        day = _day_param(request.args.get("as_of_date"))
        model = request.args.get("model_name")
        if model is not None and not MODEL_NAME.match(model):
            raise BadRequestError(f"model_name {model[:80]!r} is not a model name")
        return _json(reads.score(g.timings, member, day, model))

    @app.get("/v1/members/<member_id>/features")
    def features(member_id: str) -> Response:
        member = _member(member_id)
        day = _day_param(request.args.get("as_of_date"))
        return _json(_features_body(reads.features(g.timings, member, day)))

    @app.get("/v1/days/<as_of_date>")
    def day(as_of_date: str) -> Response:
        parsed = _date(as_of_date, "as_of_date in the path")
        status = reads.day_status(g.timings, parsed)
        body = {"as_of_date": parsed.isoformat(), "status": status.status,
                "required_tables": list(status.required), "tables": status.tables,
                "models": status.models,
                "run_ids": sorted({t["run_id"] for t in status.tables})}
        if status.status == "absent":
            return _error(404, "not_found", f"day {parsed} has not been published",
                          as_of_date=parsed.isoformat(), publish_status="absent")
        return _json(body)

    @app.get("/v1/health")
    def health() -> Response:
        try:
            newest = reads.newest_complete_day(g.timings)
        except NothingToServeError:
            newest = None
        today = dt.datetime.now(dt.UTC).date()
        return _json({"status": "ok", "warehouse": "reachable",
                      "newest_complete_day": newest.isoformat() if newest else None,
                      "age_days": (today - newest).days if newest else None})

    @app.get("/v1/openapi.json", endpoint="openapi")
    def openapi_json() -> Response:
        return Response(openapi, mimetype="application/json")

    return app


def _authorized(header: str, accepted: Sequence[bytes]) -> bool:
    """Bearer token check, constant-time against every accepted token."""
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return False
    given = presented.strip().encode("utf-8")
    ok = False
    for token in accepted:  # no early exit: the time does not say which one matched
        ok |= hmac.compare_digest(given, token)
    return ok


def _request_id(given: str | None) -> str:
    if given and re.fullmatch(r"[A-Za-z0-9._\-]{1,64}", given):
        return given
    return uuid.uuid4().hex[:16]


def _member(member_id: str) -> str:
    if not MEMBER_ID.match(member_id):
        raise BadRequestError(f"member_id {member_id[:80]!r} is not a member id (letters, "
                         "digits, '_', '.', ':', '-'; at most 128)")
    return member_id


def _day_param(value: str | None) -> dt.date | None:
    return None if value is None else _date(value, "query parameter as_of_date")


def _date(value: str, where: str) -> dt.date:
    try:
        if not ISO_DATE.match(value):
            raise ValueError
        return dt.date.fromisoformat(value)
    except ValueError:
        raise BadRequestError(f"{where} {value[:40]!r} is not a date: expected YYYY-MM-DD") \
            from None


def _features_body(row: dict[str, Any]) -> dict[str, Any]:
    """One published features row, each feature with its registry definition and unit."""
    features = []
    for feature in FEATURES:
        if feature.role != "feature":
            continue
        features.append({
            "name": feature.name,
            "value": _value(row.get(feature.name.upper())),
            "unit": feature.unit,
            "type": feature.type_name,
            "window_days": feature.window_days,
            "definition": feature.definition,
        })
    history = row.get("HISTORY_DAYS")
    return {
        "member_id": row["MEMBER_ID"],
        "as_of_date": iso_value(row["AS_OF_DATE"]),
        "history_days": None if history is None else int(history),
        "features": features,
        "run_id": row.get("RUN_ID"),
        "feature_cutoff_at": iso_value(row.get("FEATURE_CUTOFF_AT")),
        "computed_at": iso_value(row.get("COMPUTED_AT")),
        "published_at": iso_value(row.get("PUBLISH_LOG_PUBLISHED_AT")),
    }


def _value(value: Any) -> Any:
    """JSON for a warehouse value: money (decimal) as an exact string, dates ISO."""
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent
        return str(value) if isinstance(exponent, int) and exponent < 0 else int(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return iso_value(value)
    return value


def _json(body: dict[str, Any], status: int = 200) -> Response:
    from flask import json as flask_json

    return Response(flask_json.dumps(body), status=status, mimetype="application/json")


def _error(http_status: int, code: str, message: str, **details: Any) -> Response:
    """The JSON error body: `details` (e.g. the day's publish `status`) beside the
    message."""
    return _json({"error": {**details, "status": http_status, "code": code,
                            "message": message}}, http_status)
