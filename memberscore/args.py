"""argparse value types shared by the commands."""

from __future__ import annotations

import argparse
import datetime as dt


def iso_date(text: str) -> dt.date:
    """argparse type for `YYYY-MM-DD` dates (UTC days); `yesterday` and `today` name
    the UTC days relative to now (the scheduled jobs' default run date)."""
    relative = {"today": 0, "yesterday": 1}
    if text in relative:
        return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=relative[text])
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, found {text!r}") \
            from None


def positive_int(text: str) -> int:
    """argparse type for a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, found {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, found {value}")
    return value


def port(text: str) -> int:
    """argparse type for a TCP port, 1-65535, or 0: a free port the system picks."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, found {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(
            f"expected a port between 1 and 65535 (0: a free one), found {value}")
    return value
