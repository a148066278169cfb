"""One publish of a day at a time, and the spool leftovers of killed publishes.

`day_lock` takes an exclusive, non-blocking lock on `<warehouse>/locks/publish-<day>.lock`
(`flock`: the operating system releases it when the process ends, even on `kill -9`,
so a killed publish never leaves a stale lock).  The holder writes its run id, process
and start time into the file; a second publish of the day stops at once with
PublishRunningError naming them, before it exports or touches the warehouse.

The lock covers the publishes of one machine: the local warehouse, and one Databricks
driver.  Two Databricks runs of the nightly job cannot overlap (`max_concurrent_runs:
1` in the bundle), and Snowflake itself serializes the DELETE of a day by two
transactions (the second waits for the first to commit), so the published day stays
whole there too; the lock is what turns a collision into a clear message.

`remove_leftover_spools` deletes the spool folders of publishes that are no longer
running: every `<spool>/<day>/` whose day lock is free, and, before a day is
spooled, whatever an earlier run of that day left.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from memberscore.errors import PublishRunningError

log = logging.getLogger(__name__)


def _lock_path(lock_dir: Path, day: dt.date) -> Path:
    return lock_dir / f"publish-{day.isoformat()}.lock"


@contextlib.contextmanager
def day_lock(lock_dir: Path, day: dt.date, run_id: str) -> Iterator[None]:
    """Hold the publish lock of `day` for the block; PublishRunningError when another
    process holds it."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    path = _lock_path(lock_dir, day)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PublishRunningError(
                f"publish of {day} already running ({_holder(path)}); nothing was "
                "published by this run: wait for that one to finish (it publishes the "
                "same lake rows), then re-run if the day changed since"
            ) from None
        since = dt.datetime.now(dt.UTC)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"run_id": run_id, "pid": os.getpid(),
                                 "since": f"{since:%Y-%m-%dT%H:%M:%SZ}"}).encode())
        yield
    finally:
        os.close(fd)  # releases the lock


def _holder(path: Path) -> str:
    try:
        holder = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        holder = {}
    if not holder.get("run_id"):
        return "another run, starting"
    return f"run {holder['run_id']} since {holder.get('since')}, process {holder.get('pid')}"


@contextlib.contextmanager
def _if_free(lock_dir: Path, day: dt.date) -> Iterator[bool]:
    """Hold `day`'s lock for the block when nobody does (True), else False."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(_lock_path(lock_dir, day), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def remove_leftover_spools(spool_root: Path, lock_dir: Path, day: dt.date) -> int:
    """Delete spool folders no running publish owns: call while holding `day`'s lock,
    before spooling (another day's folder is removed while holding that day's lock);
    how many were removed."""
    if not spool_root.is_dir():
        return 0
    removed = 0
    for folder in sorted(spool_root.iterdir()):
        try:
            folder_day = dt.date.fromisoformat(folder.name)
        except ValueError:
            folder_day = None  # the layout of an older memberscore: nobody owns it now
        if folder_day == day:
            removed += _remove(list(folder.iterdir()))
        elif folder_day is None:
            removed += _remove([folder])
        else:
            with _if_free(lock_dir, folder_day) as free:
                if free:
                    removed += _remove([folder])
    if removed:
        log.info("removed %d spool folder(s) left by publishes that did not finish", removed)
    return removed


def _remove(paths: list[Path]) -> int:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return len(paths)
