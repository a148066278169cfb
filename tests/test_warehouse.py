"""The local warehouse: one fakesnow server per home, found instead of fought over,
serving analysts in the foreground, cleaning up after dead clients."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from memberscore.cli import main
from memberscore.config import load_settings
from memberscore.errors import ConfigError, WarehouseError
from memberscore.local.warehouse_server import (
    STATE_FILE,
    local_warehouse,
    read_state,
    serving_here,
)
from memberscore.warehouse import LOG_TABLE, open_warehouse
from memberscore.warehouse.connection import ConnectionSpec, connect
from memberscore.warehouse.publisher import LOG_TABLE_DDL


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMBERSCORE__")}
    env["MEMBERSCORE_HOME"] = str(home)
    return env


def _eventually(action, seconds: float = 60.0):  # type: ignore[no-untyped-def]
    """`action()` once the server's watchdog has caught up (it sweeps every second)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return action()
        except WarehouseError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def _session(address, settings):  # type: ignore[no-untyped-def]
    import dataclasses

    spec = dataclasses.replace(ConnectionSpec.from_settings(settings.snowflake),
                               endpoint=address.endpoint)
    return connect(spec, purpose="test")


def test_publish_side_uses_the_server_started_by_memberscore_warehouse(home: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "memberscore.cli", "warehouse", "--idle-transaction-seconds", "2"],
        env=_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        assert process.stdout is not None
        printed: list[str] = []
        for line in process.stdout:
            printed.append(line.rstrip("\n"))
            if line.startswith("publish from another terminal"):
                break
        text = "\n".join(printed)
        state = read_state(home / "warehouse")
        assert state is not None and state.pid == process.pid
        assert f"on http://127.0.0.1:{state.port}" in printed[0]
        assert f"host=127.0.0.1 port={state.port} protocol=http" in text
        assert "SELECT TABLE_NAME, AS_OF_DATE, ROW_COUNT" in text

        settings = load_settings("local")
        with open_warehouse(settings, home / "warehouse", purpose="test") as conn:
            assert serving_here(home / "warehouse") is None  # not started here
            conn.execute(LOG_TABLE_DDL, what="t")
            conn.execute(f"INSERT INTO {LOG_TABLE} VALUES ('r1', 'MEMBER_SCORES', "
                         "'2026-11-19', 4, 'v1:1', CURRENT_TIMESTAMP())", what="t")

        # The printed snippet works as printed.
        start = printed.index("python:") + 1
        snippet = textwrap.dedent("\n".join(printed[start:printed.index("SQL to try:") - 1]))
        output = subprocess.run([sys.executable, "-c", snippet], capture_output=True,
                                text=True, timeout=120, env=_env(home))
        assert output.returncode == 0, output.stderr[-2000:]
        assert "'MEMBER_SCORES'" in output.stdout

        # A client that dies inside a transaction: after 2 silent seconds the server
        # rolls it back and closes the session, so nothing blocks the next writer.
        dead = _session(state, settings)
        dead.execute("BEGIN", what="t")
        dead.execute(f"DELETE FROM {LOG_TABLE}", what="t")
        live = _session(state, settings)
        assert live.execute(f"SELECT COUNT(*) FROM {LOG_TABLE}", what="t") == [(1,)]
        time.sleep(3)
        assert _eventually(lambda: live.execute(f"UPDATE {LOG_TABLE} SET ROW_COUNT = 5",
                                                what="t")) == [(1, 0)]
        with pytest.raises(WarehouseError):
            dead.execute("COMMIT", what="commit after the session was ended")
        live.close()
        dead.close()

        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err[-2000:]
        assert "local warehouse stopped" in out
        assert not (home / "warehouse" / STATE_FILE).exists()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=60)

    # The data outlives the server: a new one (in this process) reads it back.
    with open_warehouse(load_settings("local"), home / "warehouse", purpose="test") as conn:
        assert conn.execute(f"SELECT RUN_ID, ROW_COUNT FROM {LOG_TABLE}", what="t") == [
            ("r1", 5)]


def test_one_server_per_home_and_reuse_in_process(home: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    directory = home / "warehouse"
    with local_warehouse(directory, database="ANALYTICS", schema="MEMBER_SCORING") as outer:
        assert serving_here(directory) == outer
        assert json.loads((directory / STATE_FILE).read_text())["port"] == outer.port
        with local_warehouse(directory, database="ANALYTICS", schema="MEMBER_SCORING") as inner:
            assert inner == outer
        assert serving_here(directory) == outer  # still served: the outer user holds it
        with pytest.raises(WarehouseError, match="one local warehouse per process"), \
                local_warehouse(home / "other", database="A", schema="B"):
            pass
        assert main(["warehouse"]) == 8
        assert capsys.readouterr().err.strip().splitlines()[-1] == (
            f"memberscore: warehouse failed: the local warehouse {directory} is already "
            f"served by this process on http://127.0.0.1:{outer.port}")
    assert serving_here(directory) is None
    assert not (directory / STATE_FILE).exists()


def test_a_stale_state_file_is_replaced(home: Path) -> None:
    directory = home / "warehouse"
    directory.mkdir()
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    dead_pid = int(finished.stdout)
    (directory / STATE_FILE).write_text(json.dumps({
        "host": "127.0.0.1", "port": 9, "pid": dead_pid, "database": "ANALYTICS",
        "schema": "MEMBER_SCORING", "started_at": "2026-11-20T00:00:00+00:00",
        "directory": str(directory)}))
    with local_warehouse(directory, database="ANALYTICS", schema="MEMBER_SCORING",
                         wait_seconds=2) as address:
        assert address.pid == os.getpid()
        assert read_state(directory) == address


def test_a_database_file_held_by_another_program_is_a_clear_error(home: Path) -> None:
    directory = home / "warehouse"
    directory.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ready', flush=True);"
         " time.sleep(120)", str(directory / "ANALYTICS.db")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(WarehouseError, match=rf"is locked by another program \(PID "
                                                 rf"{holder.pid}\) that is not a memberscore "
                                                 "server"), \
                local_warehouse(directory, database="ANALYTICS", schema="MEMBER_SCORING"):
            pass
        assert not (directory / STATE_FILE).exists()
    finally:
        holder.kill()
        holder.wait(timeout=30)
    # Once the other program is gone, the warehouse opens.
    with local_warehouse(directory, database="ANALYTICS", schema="MEMBER_SCORING") as address:
        assert address.pid == os.getpid()


def test_a_session_closed_mid_transaction_is_rolled_back(home: Path) -> None:
    settings = load_settings("local")
    with local_warehouse(home / "warehouse", database="ANALYTICS", schema="MEMBER_SCORING",
                         idle_transaction_seconds=1) as address:
        first = _session(address, settings)
        first.execute("CREATE TABLE T (K VARCHAR)", what="t")
        first.execute("INSERT INTO T VALUES ('kept')", what="t")
        first.execute("BEGIN", what="t")
        first.execute("DELETE FROM T", what="t")
        first.close()  # no COMMIT, no ROLLBACK
        time.sleep(2)  # idle for 1 s, and the watchdog sweeps every second
        second = _session(address, settings)
        assert second.execute("SELECT K FROM T", what="t") == [("kept",)]
        assert _eventually(lambda: second.execute("DELETE FROM T", what="t")) == [(1,)]
        second.close()


def test_the_local_server_listens_on_loopback_only(home: Path) -> None:
    with pytest.raises(ConfigError, match="listens on loopback only"), \
            local_warehouse(home / "warehouse", database="A", schema="B", host="8.8.8.8"):
        pass


def test_warehouse_command_needs_the_local_env(home: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMBERSCORE__SNOWFLAKE__LOCAL_SERVER", "false")
    assert main(["warehouse"]) == 3
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "memberscore: warehouse failed: `warehouse` serves the local warehouse, but env local "
        "publishes to the Snowflake account memberscore_local (snowflake.local_server is "
        "false); use --env local")
