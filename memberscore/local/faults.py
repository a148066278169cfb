"""Fault injection for publish: a documented way to fail (or hang) at a chosen step.

This exists to prove, in tests and in drills on a staging warehouse, that a publish
that dies between loading the staging table and committing leaves the target as it
was, and that a rerun repairs everything.  It is not a mock: the real publisher runs
against the real warehouse and stops at a real step.

Two ways to set it:
- `MEMBERSCORE_FAULT=publish:<point>[:<action>][,...]` in the environment, for a
  separate process (the killed-process test runs `memberscore publish` with it);
- a callable `hook(point, table, connection)` passed to the Publisher, for in-process
  tests that need to act at a step (e.g. tamper with the target after commit).

The points and the hook's type belong to the publisher
(`memberscore.warehouse.publisher.FaultPoint`); what is here turns the variable into
a hook, and the publish job loads it only when the variable is set.

Points, in publish order: `after_copy` (a table's staging loaded, targets
untouched), `between_tables` (inside the open transaction: one table's day swapped
and logged, the next not yet), `before_commit` (a table's rows deleted, inserted and
logged inside the open transaction; the last table's is the moment before COMMIT),
`after_commit` (committed, before reconciliation).
Actions: `raise` (default) raises WarehouseError; `hang` logs one line and blocks
until the process is killed.  In env `prod` the variable is refused, so a
forgotten drill setting cannot break the nightly job.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING

from memberscore.errors import ConfigError, WarehouseError
from memberscore.warehouse.publisher import FAULT_ENV_VAR as ENV_VAR
from memberscore.warehouse.publisher import FaultHook, FaultPoint

if TYPE_CHECKING:
    from memberscore.warehouse.connection import WarehouseConnection

log = logging.getLogger(__name__)


class InjectedFaultError(WarehouseError):
    """The failure raised by a `raise` fault; a test can tell it from a real one."""


def _parse(spec: str) -> dict[FaultPoint, str]:
    faults: dict[FaultPoint, str] = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        parts = item.split(":")
        if len(parts) not in (2, 3) or parts[0] != "publish":
            raise ConfigError(
                f"{ENV_VAR}={spec!r}: expected publish:<point>[:<action>], e.g. "
                "publish:before_commit or publish:before_commit:hang"
            )
        try:
            point = FaultPoint(parts[1])
        except ValueError:
            raise ConfigError(
                f"{ENV_VAR}: unknown point {parts[1]!r}; expected one of "
                f"{', '.join(p.value for p in FaultPoint)}"
            ) from None
        action = parts[2] if len(parts) == 3 else "raise"
        if action not in ("raise", "hang"):
            raise ConfigError(f"{ENV_VAR}: unknown action {action!r}; expected raise or hang")
        faults[point] = action
    return faults


def hook_from_environment(env: str) -> FaultHook | None:
    """The hook described by $MEMBERSCORE_FAULT, or None when it is not set."""
    spec = os.environ.get(ENV_VAR, "").strip()
    if not spec:
        return None
    if env == "prod":
        raise ConfigError(
            f"{ENV_VAR} is set ({spec!r}) in env prod; fault injection is for tests and "
            "drills only: unset it"
        )
    faults = _parse(spec)
    log.warning("fault injection active: %s=%s", ENV_VAR, spec)

    def hook(point: FaultPoint, table: str, connection: WarehouseConnection) -> None:
        action = faults.get(point)
        if action == "raise":
            raise InjectedFaultError(
                f"injected fault at publish:{point.value} for {table} ({ENV_VAR} is set); "
                f"unset {ENV_VAR} and re-run publish"
            )
        if action == "hang":
            log.warning("fault injection: hanging at publish:%s for %s (pid %d) until killed",
                        point.value, table, os.getpid())
            for handler in logging.getLogger().handlers:
                handler.flush()
            while True:  # pragma: no cover - ends only when the process is killed
                time.sleep(3600)

    return hook
