"""The "day published" event on a real Kafka broker (the session's local KRaft broker):
recorded in Snowflake's EVENT_OUTBOX in the publish's transaction, sent after COMMIT,
marked sent on the broker's acknowledgement, never lost when the broker is down or the
publish is killed between COMMIT and the send, and never sent twice by a rerun."""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import jsonschema
import pytest
from test_publish import (
    DAY1,
    DAY2,
    FEATURES_SCHEMA,
    feature_rows,
    publish,
    score_rows,
    write,
)

from memberscore.cli import main
from memberscore.config import Settings, load_settings
from memberscore.context import RunContext
from memberscore.errors import BrokerError
from memberscore.events import OUTBOX_TABLE, Outbox, read_topic, schema
from memberscore.events.delivery import lease_seconds
from memberscore.events.kafka import TopicEvent
from memberscore.runner import execute
from memberscore.tables import MEMBER_SCORES_SCHEMA
from memberscore.warehouse import open_warehouse


@pytest.fixture(autouse=True)
def topic(monkeypatch: pytest.MonkeyPatch) -> str:
    """A topic of this test's own on the session's broker (set before conf loads)."""
    name = f"test.day_published.{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("MEMBERSCORE__EVENTS__TOPIC", name)
    return name


def ready_day(ctx: RunContext, day: dt.date, *, members: int = 4, run: str = "r1") -> None:
    """Features and scores of `day` in the lake, both validated."""
    write(ctx, "member_features_daily", FEATURES_SCHEMA, feature_rows(day, run), day)
    write(ctx, "member_scores", MEMBER_SCORES_SCHEMA, score_rows(day, run, members), day)


def on_topic(settings: Settings, bootstrap: str) -> list[TopicEvent]:
    return list(read_topic(settings.events, bootstrap, idle_seconds=3.0))


def log_of(conn, day: dt.date) -> list[tuple]:  # type: ignore[no-untyped-def]
    return [tuple(r) for r in conn.execute(
        "SELECT TABLE_NAME, ROW_COUNT, CHECKSUM, RUN_ID FROM PUBLISH_LOG WHERE AS_OF_DATE = ? "
        "ORDER BY TABLE_NAME", [day], what="test read")]


def outbox_rows(conn) -> list[dict]:  # type: ignore[no-untyped-def]
    return conn.query(f"SELECT EVENT_ID, AS_OF_DATE, RUN_ID, SENT_AT, KAFKA_PARTITION, "
                      f"KAFKA_OFFSET, ATTEMPTS, LAST_ERROR FROM {OUTBOX_TABLE} "
                      "ORDER BY CREATED_AT, EVENT_ID", what="test read")


def check_schema(value: dict) -> None:
    jsonschema.validate(value, schema(), format_checker=jsonschema.FormatChecker())


def rerun(ctx: RunContext, run_id: str, settings: Settings | None = None) -> RunContext:
    return RunContext(settings or ctx.settings, run_id=run_id, spark=ctx.spark)


def dead_address() -> str:
    """A loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def events_args(**given: object) -> argparse.Namespace:
    return argparse.Namespace(**({"resend": False, "tail": False, "follow": False,
                                  "limit": 20} | given))


# ------------------------------------------------------------------ the event


def test_publish_sends_one_event_whose_tables_are_publish_log(
        ctx: RunContext, kafka_broker: str, topic: str) -> None:
    ready_day(ctx, DAY1)
    result = publish(ctx, DAY1)

    events = on_topic(ctx.settings, kafka_broker)
    assert len(events) == 1
    event = events[0]
    check_schema(event.value)
    value = event.value
    assert (event.topic, event.key) == (topic, "2026-11-19")
    assert event.headers["event_id"] == value["event_id"]
    assert event.headers["content-type"] == "application/json"
    with open_warehouse(ctx.settings, ctx.paths.warehouse, purpose="test") as conn:
        logged = log_of(conn, DAY1)
        outbox = outbox_rows(conn)
    # exactly the day's PUBLISH_LOG rows: names, counts, checksums, runs
    assert [(t["table_name"], t["row_count"], t["checksum"], t["run_id"])
            for t in value["tables"]] == logged
    assert [t[:2] for t in logged] == [("MEMBER_FEATURES_DAILY", 3), ("MEMBER_SCORES", 4)]
    assert value["run_id"] == "test-run" and value["as_of_date"] == "2026-11-19"
    assert (value["model_name"], value["model_version"]) == ("member_churn", "3")
    assert (value["republish_of"], value["data_changed"]) == (None, True)
    assert value["source"] == {"env": "local", "database": "ANALYTICS",
                               "schema": "MEMBER_SCORING"}
    # the outbox row is marked sent where the broker put the event
    assert len(outbox) == 1
    row = outbox[0]
    assert row["EVENT_ID"] == value["event_id"] and row["SENT_AT"] is not None
    assert (row["KAFKA_PARTITION"], row["KAFKA_OFFSET"]) == (event.partition, event.offset)
    assert (row["ATTEMPTS"], row["LAST_ERROR"]) == (1, None)
    assert result.details["event"]["status"] == "sent"
    assert any(m.startswith(f"event sent: {topic} partition 0 offset {event.offset}, key "
                            f"2026-11-19 (event_id {value['event_id']})")
               for m in result.messages), result.messages


def test_a_republish_is_a_new_event_that_says_whether_the_data_changed(
        ctx: RunContext, kafka_broker: str) -> None:
    ready_day(ctx, DAY1)
    publish(ctx, DAY1)
    publish(rerun(ctx, "run-2"), DAY1)  # the same rows again
    write(ctx, "member_scores", MEMBER_SCORES_SCHEMA, score_rows(DAY1, "r3", 2), DAY1)
    publish(rerun(ctx, "run-3"), DAY1, "member_scores")  # only the scores, changed

    first, same, changed = (e.value for e in on_topic(ctx.settings, kafka_broker))
    for value in (first, same, changed):
        check_schema(value)
    assert [v["run_id"] for v in (first, same, changed)] == ["test-run", "run-2", "run-3"]
    assert len({v["event_id"] for v in (first, same, changed)}) == 3
    assert (same["republish_of"], same["data_changed"]) == (first["event_id"], False)
    assert [(t["row_count"], t["checksum"]) for t in same["tables"]] == \
        [(t["row_count"], t["checksum"]) for t in first["tables"]]
    assert (changed["republish_of"], changed["data_changed"]) == (same["event_id"], True)
    # the features were left alone by run-3: their PUBLISH_LOG row is still run-2's
    assert [(t["table_name"], t["row_count"], t["run_id"]) for t in changed["tables"]] == [
        ("MEMBER_FEATURES_DAILY", 3, "run-2"), ("MEMBER_SCORES", 2, "run-3")]


def test_an_incomplete_day_has_no_event_until_a_publish_completes_it(
        ctx: RunContext, kafka_broker: str) -> None:
    ready_day(ctx, DAY1)
    result = publish(ctx, DAY1, "member_scores")
    assert result.details["event"]["status"] == "none"
    assert ("no event for 2026-11-19: 2026-11-19 is not complete in Snowflake "
            "(MEMBER_FEATURES_DAILY has no PUBLISH_LOG row for it); its event is recorded by "
            "the publish that completes it") in result.messages
    assert on_topic(ctx.settings, kafka_broker) == []
    publish(rerun(ctx, "run-2"), DAY1, "member_features_daily")
    (event,) = on_topic(ctx.settings, kafka_broker)
    assert [(t["table_name"], t["run_id"]) for t in event.value["tables"]] == [
        ("MEMBER_FEATURES_DAILY", "run-2"), ("MEMBER_SCORES", "test-run")]


def test_events_disabled_records_and_starts_nothing(
        ctx: RunContext, kafka_broker: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMBERSCORE__EVENTS__ENABLED", "false")
    quiet = rerun(ctx, "quiet", load_settings("local"))
    ready_day(quiet, DAY1)
    result = publish(quiet, DAY1)
    assert "event" not in result.details
    assert not any(m.startswith(("event ", "no event ")) for m in result.messages), \
        result.messages
    with open_warehouse(quiet.settings, quiet.paths.warehouse, purpose="test") as conn:
        assert not Outbox.exists(conn)
    assert not quiet.paths.broker.exists()
    assert on_topic(quiet.settings, kafka_broker) == []


# ------------------------------------------------------------------ never lost


def test_broker_down_leaves_events_pending_and_resend_sends_exactly_those(
        ctx: RunContext, kafka_broker: str, monkeypatch: pytest.MonkeyPatch) -> None:
    ready_day(ctx, DAY1)
    publish(ctx, DAY1)  # sent while the broker is up
    ready_day(ctx, DAY2)

    down = dead_address()
    monkeypatch.setenv("MEMBERSCORE__EVENTS__BOOTSTRAP_SERVERS", down)
    monkeypatch.setenv("MEMBERSCORE__EVENTS__DELIVERY_TIMEOUT_SECONDS", "2")
    outage = rerun(ctx, "outage-1", load_settings("local"))
    started = time.monotonic()
    first = publish(outage, DAY2)  # the publish succeeds ...
    assert time.monotonic() - started < 60
    second = publish(rerun(outage, "outage-2"), DAY1)
    for result in (first, second):
        assert result.details["event"]["status"] == "pending"
        line = next(m for m in result.messages if m.startswith("event for "))
        assert f"no Kafka broker answered at {down}" in line, line
        assert line.endswith("`memberscore events --resend` sends it, and so does the next "
                             "publish")
    with open_warehouse(ctx.settings, ctx.paths.warehouse, purpose="test") as conn:
        rows = outbox_rows(conn)
        assert [(r["RUN_ID"], r["SENT_AT"] is None) for r in rows] == [
            ("test-run", False), ("outage-1", True), ("outage-2", True)]
        assert all(down in r["LAST_ERROR"] for r in rows[1:])
        pending_ids = [r["EVENT_ID"] for r in rows[1:]]
        # a claim keeps a second sender off the same events until its lease runs out
        claimed = Outbox.claim(conn, "sender-a", lease_seconds=lease_seconds(ctx.settings))
        assert [e.event_id for e in claimed] == pending_ids
        assert Outbox.claim(conn, "sender-b", lease_seconds=lease_seconds(ctx.settings)) == []
        later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=lease_seconds(ctx.settings) + 1)
        assert [e.event_id for e in Outbox.claim(
            conn, "sender-c", lease_seconds=lease_seconds(ctx.settings), now=later)] == \
            pending_ids
        Outbox.release(conn, "sender-a", claimed, "not ours any more")  # c holds them
        assert [r["LAST_ERROR"] for r in outbox_rows(conn)][1:] != ["not ours any more"] * 2
        Outbox.release(conn, "sender-c", claimed, "test released")
    assert len(on_topic(ctx.settings, kafka_broker)) == 1

    # the broker is back: --resend sends the two pending ones, in the order recorded
    monkeypatch.setenv("MEMBERSCORE__EVENTS__BOOTSTRAP_SERVERS", kafka_broker)
    back = rerun(ctx, "resend", load_settings("local"))
    result = execute(back, "events", events_args(resend=True))
    assert result.rows == {"sent": 2}
    assert result.details["sent"] == pending_ids
    events = on_topic(ctx.settings, kafka_broker)
    assert [(e.value["run_id"], e.key) for e in events] == [
        ("test-run", "2026-11-19"), ("outage-1", "2026-11-20"), ("outage-2", "2026-11-19")]
    assert [e.offset for e in events] == [0, 1, 2]
    assert [e.value["event_id"] for e in events[1:]] == pending_ids
    for event in events:
        check_schema(event.value)
    # nothing is pending any more: a second --resend sends nothing
    again = execute(back, "events", events_args(resend=True))
    assert again.messages[0] == "no pending events: every recorded event was sent"
    assert len(on_topic(ctx.settings, kafka_broker)) == 3
    listing = execute(back, "events", events_args())
    assert listing.rows == {"pending": 0}
    assert listing.messages[-1].startswith("0 pending (topic test.day_published.")


def test_resend_while_the_broker_is_down_fails_in_one_line_and_keeps_them(
        ctx: RunContext, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    down = dead_address()
    monkeypatch.setenv("MEMBERSCORE__EVENTS__BOOTSTRAP_SERVERS", down)
    monkeypatch.setenv("MEMBERSCORE__EVENTS__DELIVERY_TIMEOUT_SECONDS", "2")
    outage = rerun(ctx, "outage", load_settings("local"))
    ready_day(outage, DAY1)
    publish(outage, DAY1)
    with pytest.raises(BrokerError) as failed:
        execute(outage, "events", events_args(resend=True))
    assert str(failed.value).startswith(f"1 event(s) still pending: no Kafka broker "
                                        f"answered at {down} within 2s")
    assert BrokerError.exit_code == 11
    with open_warehouse(ctx.settings, ctx.paths.warehouse, purpose="test") as conn:
        assert [(r["SENT_AT"], r["ATTEMPTS"]) for r in outbox_rows(conn)] == [(None, 2)]


def _subprocess_env(home: Path, **extra: str) -> dict[str, str]:
    """This session's environment (its broker and this test's topic) for a job run in
    a child process."""
    env = dict(os.environ)
    env.update(MEMBERSCORE_HOME=str(home), PYSPARK_PYTHON=sys.executable,
               MEMBERSCORE__SPARK__DRIVER_MEMORY="1g", **extra)
    return env


def test_kill_between_commit_and_send_then_rerun_delivers_each_publish_once(
        ctx: RunContext, kafka_broker: str) -> None:
    ready_day(ctx, DAY1)
    process = subprocess.Popen(
        [sys.executable, "-m", "memberscore.cli", "--run-id", "killed-run", "publish",
         "--run-date", DAY1.isoformat()],
        env=_subprocess_env(ctx.paths.home, MEMBERSCORE_FAULT="publish:after_commit:hang"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert process.stderr is not None
        seen = []
        for line in process.stderr:
            seen.append(line)
            if "hanging at publish:after_commit" in line:
                break
        else:
            pytest.fail("publish ended without reaching the fault:\n" + "".join(seen[-20:]))
        os.killpg(process.pid, signal.SIGKILL)  # committed, not yet sent
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=60)

    with open_warehouse(ctx.settings, ctx.paths.warehouse, purpose="test") as conn:
        assert {r[3] for r in log_of(conn, DAY1)} == {"killed-run"}  # it committed
        assert [(r["RUN_ID"], r["SENT_AT"]) for r in outbox_rows(conn)] == [
            ("killed-run", None)]
    assert on_topic(ctx.settings, kafka_broker) == []

    publish(rerun(ctx, "rerun"), DAY1)
    events = on_topic(ctx.settings, kafka_broker)
    assert [e.value["run_id"] for e in events] == ["killed-run", "rerun"]
    assert len({e.value["event_id"] for e in events}) == 2
    assert events[1].value["republish_of"] == events[0].value["event_id"]
    assert events[1].value["data_changed"] is False
    with open_warehouse(ctx.settings, ctx.paths.warehouse, purpose="test") as conn:
        assert [r["SENT_AT"] is not None for r in outbox_rows(conn)] == [True, True]
    publish(rerun(ctx, "third"), DAY1)  # nothing of before is sent again
    assert [e.value["run_id"] for e in on_topic(ctx.settings, kafka_broker)] == [
        "killed-run", "rerun", "third"]


# ------------------------------------------------------------------ bad addresses, secrets


def test_a_malformed_broker_address_fails_at_start_in_one_line(
        home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MEMBERSCORE__EVENTS__BOOTSTRAP_SERVERS", "kafka.bank:notaport")
    assert main(["events", "--tail"]) == 3
    err = capsys.readouterr().err
    assert err == ("memberscore: events failed: environment variable "
                   "MEMBERSCORE__EVENTS__BOOTSTRAP_SERVERS: conf key 'events.bootstrap_servers': "
                   "expected host:port[,host:port...], found 'kafka.bank:notaport'\n")


def test_an_unreachable_broker_fails_fast_in_one_line_without_the_secret(
        home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    down = dead_address()
    password = "kafka-pa55word-never-shown"
    for key, value in {"BOOTSTRAP_SERVERS": down, "SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                       "SASL_MECHANISM": "PLAIN", "SASL_USERNAME": "${TEST_KAFKA_USER}",
                       "SASL_PASSWORD": "${TEST_KAFKA_PASSWORD}"}.items():
        monkeypatch.setenv(f"MEMBERSCORE__EVENTS__{key}", value)
    monkeypatch.setenv("TEST_KAFKA_USER", "svc-memberscore")
    monkeypatch.setenv("TEST_KAFKA_PASSWORD", password)
    started = time.monotonic()
    assert main(["events", "--tail"]) == 11
    assert time.monotonic() - started < 15
    out = capsys.readouterr()
    lines = out.err.splitlines()
    assert len(lines) == 1, out.err
    assert lines[0].startswith(f"memberscore: events failed: no Kafka broker answered at "
                               f"{down} within 5s (events.bootstrap_servers; ")
    logs = "".join(p.read_text() for p in (home / "logs").glob("*.log"))
    assert password not in out.err + out.out + logs
    assert "svc-memberscore" not in out.err


def test_sasl_without_credentials_is_refused_at_start(
        home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MEMBERSCORE__EVENTS__SECURITY_PROTOCOL", "SASL_SSL")
    assert main(["events"]) == 3
    assert "events.security_protocol SASL_SSL needs sasl_mechanism, sasl_username and " \
        "sasl_password" in capsys.readouterr().err


# ------------------------------------------------------------------ the local broker


def _cli_env(home: Path) -> dict[str, str]:
    """No broker configured: the jobs find or start the home's own local broker."""
    env = {k: v for k, v in os.environ.items()
           if k != "MEMBERSCORE__EVENTS__BOOTSTRAP_SERVERS"}
    env.update(MEMBERSCORE_HOME=str(home), PYSPARK_PYTHON=sys.executable)
    return env


def _lock_is_free(broker_dir: Path) -> bool:
    with open(broker_dir / "broker.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(lock, fcntl.LOCK_UN)
        return True


def test_memberscore_broker_serves_and_jobs_of_the_home_use_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cli = [sys.executable, "-m", "memberscore.cli"]
    # with nobody serving, a job starts the home's broker and stops it when it ends
    tail = subprocess.run([*cli, "events", "--tail"], env=_cli_env(home), text=True,
                          capture_output=True, timeout=120, check=False)
    assert tail.returncode == 0, tail.stderr
    assert tail.stdout.startswith("no events on test.day_published.")
    broker_dir = home / "broker"
    assert (broker_dir / "data" / "meta.properties").is_file()
    assert not (broker_dir / "broker.json").exists() and _lock_is_free(broker_dir)

    server = subprocess.Popen([*cli, "broker"], env=_cli_env(home), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              start_new_session=True)
    try:
        assert server.stdout is not None
        lines = [server.stdout.readline() for _ in range(2)]
        assert lines[0].startswith(f"local Kafka broker (KRaft, one node) serving {broker_dir}")
        bootstrap = lines[1].split("bootstrap servers:")[1].strip()
        state = json.loads((broker_dir / "broker.json").read_text())
        assert f"{state['host']}:{state['port']}" == bootstrap
        assert state["owner_pid"] == server.pid and not _lock_is_free(broker_dir)
        # a job of the same home uses it (no second broker: the lock is the server's)
        again = subprocess.run([*cli, "--verbose", "events", "--tail"], env=_cli_env(home),
                               text=True, capture_output=True, timeout=120, check=False)
        assert again.returncode == 0, again.stderr
        assert f"using the local broker served by process {server.pid} on {bootstrap}" in \
            again.stderr
        # a second `memberscore broker` for the home refuses
        second = subprocess.run([*cli, "broker"], env=_cli_env(home), text=True,
                                capture_output=True, timeout=60, check=False)
        assert second.returncode == 11
        assert f"is already served by process {server.pid} on {bootstrap}" in second.stderr
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
    assert _lock_is_free(broker_dir) and not (broker_dir / "broker.json").exists()


def test_the_schema_ships_in_the_package_and_refuses_a_bad_event() -> None:
    good = {
        "schema_version": 1, "event_type": "memberscore.day_published",
        "event_id": str(uuid.uuid4()), "as_of_date": "2026-11-19", "run_id": "r",
        "published_at": "2026-11-20T04:31:07.123456Z", "model_name": "member_churn",
        "model_version": "3", "republish_of": None, "data_changed": True,
        "tables": [{"table_name": "MEMBER_SCORES", "row_count": 4, "checksum": "v1:1",
                    "run_id": "r", "published_at": "2026-11-20T04:31:07.123456Z"}],
        "source": {"env": "local", "database": "ANALYTICS", "schema": "MEMBER_SCORING"},
    }
    check_schema(good)
    for broken in ({**good, "as_of_date": "19/11/2026"}, {**good, "tables": []},
                   {**good, "schema_version": 2}, {**good, "extra": 1},
                   {k: v for k, v in good.items() if k != "run_id"}):
        with pytest.raises(jsonschema.ValidationError):
            check_schema(broken)
