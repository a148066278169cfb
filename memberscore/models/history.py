"""How much transaction history the lake has behind the labels' snapshots: which
labels a model can learn from on complete windows, and the one-line error when none
is left (`train`, and `demo` before it generates a bank too short to train on)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class History:
    """How much transaction history the lake has for the labels' snapshots."""

    required_days: int
    first_booked: dt.date | None  # the lake's first booked day (any row)
    label_dates: list[dt.date]

    def complete(self, snapshot: dt.date) -> bool:
        """Whether a snapshot of this day can have complete windows (its history
        may still be shorter when early rows were ingested late, and without bronze
        transactions nothing is known: the training set checks each snapshot's own
        `history_days`)."""
        return (self.first_booked is None
                or (snapshot - self.first_booked).days + 1 >= self.required_days)

    @property
    def complete_label_dates(self) -> list[dt.date]:
        return [d for d in self.label_dates if self.complete(d - dt.timedelta(days=1))]

    def failure(self, dropped: int) -> str:
        """The one-line error when no label is left."""
        first_snapshot = self.label_dates[0] - dt.timedelta(days=1)
        last_snapshot = self.label_dates[-1] - dt.timedelta(days=1)
        if self.first_booked is None:
            has = "no transactions"
            fix_end = last_snapshot
        else:
            seen = (last_snapshot - self.first_booked).days + 1
            has = (f"transactions from {self.first_booked} on, {max(seen, 0)} day(s) "
                   f"before the last label's snapshot ({last_snapshot})")
            fix_end = self.first_booked - dt.timedelta(days=1)
        fix_start = first_snapshot - dt.timedelta(days=self.required_days - 1)
        first_ok = (self.first_booked + dt.timedelta(days=self.required_days)
                    if self.first_booked else None)
        return (
            f"no label can be trained on: all {dropped} label(s) have snapshots with "
            f"incomplete windows; the model's features need {self.required_days} days of "
            f"transaction history behind a snapshot and the lake has {has}. Ingest the "
            f"earlier history with `memberscore ingest --start {fix_start} --end "
            f"{fix_end}`"
            + (f", or train once labels dated after {first_ok} have landed"
               if first_ok else "")
        )
