"""Faults of whole runs, on copies of one demo home (a bank ingested, trained,
scored and published for its last day D): `kill -9` then rerun, warehouse faults,
secrets, concurrency, data-quality refusals and bad arguments."""

from __future__ import annotations

import contextlib
import datetime as dt
import http.server
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow.compute as pc

from tests.faults.harness import (
    Outcome,
    copy_home,
    count,
    doubled,
    environment,
    files_containing,
    kill_group,
    lake_table,
    rows_where,
    run_here,
    spawn,
    wait_for_line,
    warehouse_query,
)

FEATURES, SCORES = "member_features_daily", "member_scores"
TABLES = ("MEMBER_FEATURES_DAILY", "MEMBER_SCORES", "DRIFT_METRICS")
PASSWORD = "Fault-Suite-Pw-7f3a91c2"
PASSPHRASE = "Fault-Suite-Passphrase-52be08"


class Base:
    """The demo home every case starts from, and what it holds for its last day."""

    def __init__(self, home: Path) -> None:
        self.home = home
        features = lake_table(home, FEATURES)
        assert features is not None, "the demo wrote no features"
        self.day: dt.date = pc.max(features["as_of_date"]).as_py()
        self.features = count(rows_where(features, "as_of_date", self.day))
        self.scores = count(rows_where(lake_table(home, SCORES), "as_of_date", self.day))
        self.bronze = count(rows_where(lake_table(home, "bronze_transactions"),
                                       "landing_date", self.day))

    @property
    def d(self) -> str:
        return self.day.isoformat()


def build_base(work: Path) -> tuple[Base | None, Outcome]:
    """The demo home the run cases copy; None (and a failed outcome saying why) when
    the demo itself fails, so the suite reports it instead of stopping."""
    home = work / "base"
    started = time.monotonic()
    run = run_here(home, "demo", "--members", "400")
    out = Outcome("setup: demo home (400 members)", exit=run.code)
    out.expect(run.code == 0, f"the demo failed: {run.errors()}")
    out.seconds = time.monotonic() - started
    if run.code != 0:
        return None, out
    base = Base(home)
    out.rows_in = out.kept = base.features
    out.seconds = time.monotonic() - started
    return base, out


# ------------------------------------------------------------------ kill -9, then rerun


def _counts(home: Path, day: dt.date) -> dict[str, int]:
    return {
        "bronze": count(rows_where(lake_table(home, "bronze_transactions"), "landing_date", day)),
        "features": count(rows_where(lake_table(home, FEATURES), "as_of_date", day)),
        "scores": count(rows_where(lake_table(home, SCORES), "as_of_date", day)),
    }


def _published(home: Path, day: dt.date) -> dict[str, int]:
    found = {}
    for table in TABLES:
        found[table] = int(warehouse_query(
            home, f"SELECT COUNT(*) FROM {table} WHERE AS_OF_DATE = ?", [day])[0][0])
    logged = warehouse_query(home, "SELECT TABLE_NAME, ROW_COUNT FROM PUBLISH_LOG "
                                   "WHERE AS_OF_DATE = ?", [day])
    found["log rows"] = len(logged)
    found["log mismatches"] = sum(1 for t, n in logged if found.get(str(t)) != int(n))
    found["staging tables"] = len(warehouse_query(
        home, "SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME LIKE "
              "'%STAGING%'"))
    return found


def kill_cases(base: Base, work: Path) -> list[Outcome]:
    day, d = base.day, base.d
    first = (day - dt.timedelta(days=3)).isoformat()
    jobs: list[tuple[str, list[str], str, str]] = [
        # (job, args, table whose day is checked, key columns)
        ("ingest", ["ingest", "--run-date", d], "bronze_transactions", "transaction_id"),
        ("features", ["features", "--run-date", d], FEATURES, "member_id"),
        ("backfill", ["backfill", "--start", first, "--end", d, "--force"], FEATURES,
         "member_id,as_of_date"),
        ("score", ["score", "--run-date", d], SCORES, "member_id,model_name"),
    ]
    outcomes = []
    for job, args, table, keys in jobs:
        # a clean run (in this process, warm) gives the rows every rerun must match
        reference = copy_home(base.home, work / f"kill-{job}-clean")
        started = time.monotonic()
        run = run_here(reference, *args)
        warm = time.monotonic() - started
        if run.code != 0:
            out = Outcome(f"kill -9: {job} (clean run)", exit=run.code)
            out.problems.append(f"the clean run failed: {run.errors()}")
            outcomes.append(out)
            continue
        for share in (0.2, 0.5, 0.8):
            outcomes.append(_kill_and_rerun(
                f"kill -9: {job} at {share:.0%} of its run", base, reference,
                work / f"kill-{job}-{share}", args, table, keys.split(","), warm, share))
    for point in ("after_copy", "between_tables", "after_commit"):
        outcomes.append(_kill_publish(base, work / f"kill-publish-{point}", point))
    return outcomes


# A job in its own process runs cold: Spark starts after the log line below, and
# plans compile for the first time (measured here: about 1.5 times the warm run).
SPARK_START = "starting local Spark"
SPARK_START_SECONDS = 6.0
COLD_FACTOR = 1.5


def _kill_and_rerun(label: str, base: Base, reference: Path, home: Path, args: list[str],
                    table: str, keys: list[str], warm: float, share: float) -> Outcome:
    started = time.monotonic()
    still_running = started_spark = False
    for attempt in range(3):  # a process that finished first is tried again, sooner
        copy_home(base.home, home)
        log = home.parent / f"{home.name}.log"
        process = spawn(home, *args, log=log)
        started_spark = wait_for_line(log, SPARK_START, process, home=home)
        delay = (SPARK_START_SECONDS + share * COLD_FACTOR * warm) * 0.6 ** attempt
        time.sleep(delay)
        still_running = process.poll() is None
        kill_group(process)
        if still_running:
            break
    rerun = run_here(home, *args)
    out = Outcome(label, exit=rerun.code)
    out.expect(started_spark, f"no {SPARK_START!r} line in the run log: the kill was not "
                              "timed from Spark's start")
    out.expect(still_running, "the job ended before every kill (the case proved nothing)")
    out.expect(rerun.code == 0, f"the rerun failed: {rerun.errors()}")
    column = "landing_date" if table.startswith("bronze") else "as_of_date"
    lake = lake_table(home, table)  # opening it replays the Delta log
    clean = lake_table(reference, table)
    days = [base.day] if "backfill" not in label else [
        base.day - dt.timedelta(days=i) for i in range(4)]
    expected = {day: count(rows_where(clean, column, day)) for day in days}
    found = {day: count(rows_where(lake, column, day)) for day in days}
    out.rows_in = sum(expected.values())
    out.kept = sum(found.values())
    out.lost = max(0, out.rows_in - out.kept)
    out.doubled = sum(doubled(rows_where(lake, column, day), keys) for day in days)
    out.expect(found == expected, f"rows per day {found}, expected {expected}")
    out.seconds = time.monotonic() - started
    return out


def _kill_publish(base: Base, home: Path, point: str) -> Outcome:
    copy_home(base.home, home)
    started = time.monotonic()
    before = _published(home, base.day)
    log = home.parent / f"{home.name}.log"
    process = spawn(home, "publish", "--run-date", base.d,
                    env={"MEMBERSCORE_FAULT": f"publish:{point}:hang"}, log=log)
    reached = wait_for_line(log, f"hanging at publish:{point}", process, home=home)
    kill_group(process)
    mid = _published(home, base.day)
    rerun = run_here(home, "publish", "--run-date", base.d)
    after = _published(home, base.day)
    out = Outcome(f"kill -9: publish at {point}", exit=rerun.code)
    out.expect(reached, f"the publish never reached {point}: {log.read_text()[-400:]}")
    out.expect(rerun.code == 0, f"the rerun failed: {rerun.errors()}")
    # killed before COMMIT: the old day, whole; after: the new day, whole
    out.expect(mid["log rows"] == before["log rows"] and mid["log mismatches"] == 0,
               f"after the kill the day is not whole: {mid}")
    expected = {"MEMBER_FEATURES_DAILY": base.features, "MEMBER_SCORES": base.scores}
    out.rows_in = sum(expected.values())
    out.kept = after["MEMBER_FEATURES_DAILY"] + after["MEMBER_SCORES"]
    out.lost = max(0, out.rows_in - out.kept)
    out.doubled = max(0, out.kept - out.rows_in)
    out.expect(after["log mismatches"] == 0 and after["staging tables"] == 0,
               f"after the rerun: {after}")
    spool = home / "warehouse" / "spool"
    out.expect(not spool.exists() or not any(spool.rglob("*")), "spool folders left behind")
    out.seconds = time.monotonic() - started
    return out


# ------------------------------------------------------------------ warehouse faults


@contextlib.contextmanager
def _silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


class _Always500(http.server.BaseHTTPRequestHandler):
    def _fail(self) -> None:
        self.send_response(500)
        self.end_headers()
        self.wfile.write(b"internal error")

    do_GET = do_POST = _fail  # noqa: N815 - http.server names its handlers so

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def _http_500() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Always500)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def _closed_port() -> Iterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    yield port


def warehouse_cases(base: Base, work: Path) -> list[Outcome]:
    bound = 10  # conf/local.yml: login_timeout_seconds and network_timeout_seconds
    outcomes = []
    faults: list[tuple[str, Callable[[], contextlib.AbstractContextManager[int]]]] = [
        ("closed port", _closed_port), ("port that never answers", _silent_port),
        ("HTTP 500 on every request", _http_500)]
    for label, fault in faults:
        home = copy_home(base.home, work / f"warehouse-{label.split()[0]}")
        with fault() as port:
            env = {"MEMBERSCORE__SNOWFLAKE__LOCAL_SERVER": "false",
                   "MEMBERSCORE__SNOWFLAKE__PORT": str(port),
                   "MEMBERSCORE__SNOWFLAKE__PASSWORD": "${FAULT_SUITE_PASSWORD}",
                   "FAULT_SUITE_PASSWORD": PASSWORD}
            started = time.monotonic()
            run = run_here(home, "publish", "--run-date", base.d, env=env)
            seconds = time.monotonic() - started
        out = Outcome(f"warehouse: {label}", exit=run.code, seconds=seconds)
        out.expect(run.code == 8, f"exit {run.code}, expected 8: {run.errors()}")
        out.expect(len(run.errors()) == 1 and "could not connect to Snowflake" in run.errors()[0],
                   f"not one clear line: {run.errors()}")
        out.expect(run.noise() == [], f"more than one line: {run.noise()[:3]}")
        # the spool comes first (a second or two), then the bound
        out.expect(seconds < bound + 15, f"took {seconds:.0f}s, bound {bound}s")
        leaked = [s for s in (PASSWORD, PASSPHRASE) if s in run.out + run.err]
        out.leaks = len(leaked)
        outcomes.append(out)
    return outcomes


def secrets_case(base: Base, work: Path) -> Outcome:
    """A whole pipeline day with the warehouse password and a key passphrase set in
    the environment: neither appears in any output, log, report, table or run."""
    home = copy_home(base.home, work / "secrets")
    started = time.monotonic()
    env = {"MEMBERSCORE__SNOWFLAKE__PASSWORD": "${FAULT_SUITE_PASSWORD}",
           "FAULT_SUITE_PASSWORD": PASSWORD, "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE": PASSPHRASE,
           # the copy is a day older than the wall clock: freshness would alert
           "MEMBERSCORE__MONITOR__WARN_ONLY": "true"}
    run = run_here(home, "pipeline", "--run-date", base.d, env=env)
    out = Outcome("secrets: a pipeline day with a password and passphrase set", exit=run.code)
    out.expect(run.code == 0, f"the pipeline failed: {run.errors()}")
    texts = run.out + run.err
    hits = [s for s in (PASSWORD, PASSPHRASE) if s in texts]
    for secret in (PASSWORD, PASSPHRASE):
        hits += [str(p) for p in files_containing(home, secret.encode())]
    out.leaks = len(hits)
    out.expect(not hits, f"found in {hits[:3]}")
    out.seconds = time.monotonic() - started
    return out


# ------------------------------------------------------------------ concurrency


def concurrency_cases(base: Base, work: Path) -> list[Outcome]:
    return [_two_publishes(base, work), _two_features(base, work), _reader(base, work)]


def _two_publishes(base: Base, work: Path) -> Outcome:
    home = copy_home(base.home, work / "two-publishes")
    started = time.monotonic()
    log = home.parent / "two-publishes.log"
    first = spawn(home, "publish", "--run-date", base.d,
                  env={"MEMBERSCORE_FAULT": "publish:before_commit:hang"}, log=log)
    reached = wait_for_line(log, "hanging at publish:before_commit", first, home=home)
    second = run_here(home, "publish", "--run-date", base.d)
    kill_group(first)
    third = run_here(home, "publish", "--run-date", base.d)
    after = _published(home, base.day)
    out = Outcome("concurrency: two publishes of one day", exit=second.code)
    out.expect(reached, "the first publish never reached its transaction")
    out.expect(second.code == 6 and len(second.errors()) == 1
               and f"publish of {base.d} already running (run " in second.errors()[0],
               f"the second publish said {second.code} {second.errors()}")
    out.expect(third.code == 0, f"the rerun failed: {third.errors()}")
    out.rows_in = base.features + base.scores
    out.kept = after["MEMBER_FEATURES_DAILY"] + after["MEMBER_SCORES"]
    out.doubled = max(0, out.kept - out.rows_in)
    out.lost = max(0, out.rows_in - out.kept)
    out.expect(after["log mismatches"] == 0 and after["staging tables"] == 0, str(after))
    out.seconds = time.monotonic() - started
    return out


def _two_features(base: Base, work: Path) -> Outcome:
    home = copy_home(base.home, work / "two-features")
    started = time.monotonic()
    runs = [spawn(home, "features", "--run-date", base.d,
                  log=home.parent / f"two-features-{i}.log") for i in range(2)]
    codes = [p.wait(timeout=600) for p in runs]
    lake = rows_where(lake_table(home, FEATURES), "as_of_date", base.day)
    out = Outcome("concurrency: two features jobs of one day", exit=max(codes))
    out.expect(0 in codes and set(codes) <= {0, 6}, f"exits {codes} (expected 0, or 6: "
               "the loser of the race told to re-run)")
    out.rows_in, out.kept = base.features, count(lake)
    out.lost = max(0, out.rows_in - out.kept)
    out.doubled = doubled(lake, ["member_id"])
    out.expect(out.kept == base.features, f"{out.kept} rows, expected {base.features}")
    out.seconds = time.monotonic() - started
    return out


def _reader(base: Base, work: Path) -> Outcome:
    """A reader polls the day in the warehouse while it is published again: every
    answer is one whole day, never a mix of runs or a table without the other."""
    from memberscore.config import load_settings
    from memberscore.warehouse import open_warehouse

    home = copy_home(base.home, work / "reader")
    started = time.monotonic()
    seen: list[tuple] = []
    stop = threading.Event()
    query = ("SELECT (SELECT COUNT(*) FROM MEMBER_FEATURES_DAILY WHERE AS_OF_DATE = ?), "
             "(SELECT COUNT(*) FROM MEMBER_SCORES WHERE AS_OF_DATE = ?), "
             "(SELECT COUNT(DISTINCT RUN_ID) FROM PUBLISH_LOG WHERE AS_OF_DATE = ?), "
             "(SELECT MIN(RUN_ID) FROM PUBLISH_LOG WHERE AS_OF_DATE = ?)")
    with environment(home):
        settings = load_settings("local")
    with environment(home), open_warehouse(settings, home / "warehouse",
                                           purpose="reader") as conn:
        def poll() -> None:
            while not stop.is_set():
                seen.append(conn.execute(query, [base.day] * 4, what="poll")[0])

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        runs = [run_here(home, "--run-id", f"reader-{i}", "publish", "--run-date", base.d)
                for i in range(2)]
        stop.set()
        thread.join()
    out = Outcome("concurrency: a reader polling during two publishes", exit=max(
        r.code for r in runs))
    out.expect(all(r.code == 0 for r in runs), f"a publish failed: {[r.errors() for r in runs]}")
    mixed = [s for s in seen if (s[0], s[1], s[2]) != (base.features, base.scores, 1)]
    out.rows_in = len(seen)
    out.kept = len(seen) - len(mixed)
    out.expect(len({s[3] for s in seen}) >= 2, f"the reader saw only {set(s[3] for s in seen)}")
    out.expect(not mixed, f"{len(mixed)} of {len(seen)} answers were not one whole day: "
               f"{mixed[:2]}")
    out.seconds = time.monotonic() - started
    return out


# ------------------------------------------------------------------ data quality, arguments


def _update_features(home: Path, day: str, updates: dict[str, str],
                     where: str | None = None) -> None:
    from deltalake import DeltaTable

    table = DeltaTable(str(home / "lake" / FEATURES))
    predicate = f"as_of_date = '{day}'" + (f" AND {where}" if where else "")
    table.update(updates=updates, predicate=predicate)


def quality_cases(base: Base, work: Path) -> list[Outcome]:
    outcomes = []
    published_run = str(warehouse_query(base.home, "SELECT MIN(RUN_ID) FROM PUBLISH_LOG "
                                                   "WHERE AS_OF_DATE = ?", [base.day])[0][0])

    # a critical failure refuses score and publish
    home = copy_home(base.home, work / "dq-critical")
    started = time.monotonic()
    _update_features(home, base.d, {"tenure_days": "-3"})
    runs = [run_here(home, cmd, "--run-date", base.d) for cmd in ("validate", "score", "publish")]
    out = Outcome("quality: a critical failure refuses score and publish",
                  exit=runs[-1].code, seconds=time.monotonic() - started)
    out.expect([r.code for r in runs] == [7, 7, 7], f"exits {[r.code for r in runs]}")
    out.expect(all(len(r.errors()) == 1 and r.noise() == [] for r in runs),
               f"not one line each: {[r.errors() for r in runs]}")
    log_run = warehouse_query(home, "SELECT MIN(RUN_ID) FROM PUBLISH_LOG WHERE AS_OF_DATE = ?",
                              [base.day])[0][0]
    out.expect(log_run == published_run, "the warehouse day changed")
    outcomes.append(out)

    # an edit after validation (a Delta UPDATE keeping lineage) is refused
    home = copy_home(base.home, work / "dq-edited")
    started = time.monotonic()
    _update_features(home, base.d, {"tenure_days": "tenure_days + 1"})
    runs = [run_here(home, cmd, "--run-date", base.d) for cmd in ("score", "publish")]
    out = Outcome("quality: values edited after validation are refused",
                  exit=runs[-1].code, seconds=time.monotonic() - started)
    out.expect([r.code for r in runs] == [7, 7], f"exits {[r.code for r in runs]}")
    out.expect(all("changed after it was validated" in " ".join(r.errors()) for r in runs),
               f"{[r.errors() for r in runs]}")
    outcomes.append(out)

    # a warning (the day's row count far below the previous day's) blocks nothing
    home = copy_home(base.home, work / "dq-warning")
    started = time.monotonic()
    from deltalake import DeltaTable

    DeltaTable(str(home / "lake" / FEATURES)).delete(
        f"as_of_date = '{base.d}' AND member_id > 'M0000280'")
    remaining = count(rows_where(lake_table(home, FEATURES), "as_of_date", base.day))
    runs = [run_here(home, cmd, "--run-date", base.d) for cmd in ("validate", "score", "publish")]
    out = Outcome("quality: a warning refuses nothing", exit=runs[-1].code,
                  seconds=time.monotonic() - started, rows_in=remaining)
    out.expect([r.code for r in runs] == [0, 0, 0],
               f"exits {[r.code for r in runs]} {[r.errors() for r in runs]}")
    out.expect("warning" in runs[0].out, f"no warning shown: {runs[0].out[-300:]}")
    published = _published(home, base.day)
    out.kept = published["MEMBER_FEATURES_DAILY"]
    out.expect(out.kept == remaining, f"published {out.kept}, the lake has {remaining}")
    outcomes.append(out)

    # names that reach SQL are checked at load
    for variable, value in (("MEMBERSCORE__SNOWFLAKE__SCHEMA", "SCORES; DROP TABLE X"),
                            ("MEMBERSCORE__FEATURES__TABLE", "features'x")):
        started = time.monotonic()
        run = run_here(base.home, "publish", "--run-date", base.d, env={variable: value})
        out = Outcome(f"conf: {variable.split('__')[-1].lower()} with a quote or ';'",
                      exit=run.code, seconds=time.monotonic() - started)
        out.expect(run.code == 3 and len(run.errors()) == 1, f"{run.code} {run.errors()}")
        outcomes.append(out)
    return outcomes


def argument_cases(base: Base, work: Path) -> list[Outcome]:
    outcomes = []
    cases = [
        ("arguments: an impossible date", ["features", "--run-date", "2026-02-30"], 2),
        ("arguments: an unknown command", ["featurez"], 2),
        ("arguments: a day never ingested",
         ["features", "--run-date", (base.day + dt.timedelta(days=17)).isoformat()], 4),
        ("arguments: a backfill ending after the newest ingested day",
         ["backfill", "--start", base.d, "--end", (base.day + dt.timedelta(days=2)).isoformat()],
         4),
    ]
    for label, args, code in cases:
        started = time.monotonic()
        run = run_here(base.home, *args)
        out = Outcome(label, exit=run.code, seconds=time.monotonic() - started)
        lines = [x for x in run.err.splitlines() if x.strip() and not x.startswith("20")]
        out.expect(run.code == code, f"exit {run.code}, expected {code}")
        out.expect(len(lines) <= 2, f"{len(lines)} lines: {lines[:3]}")
        outcomes.append(out)
    return outcomes
