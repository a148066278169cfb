"""A synthetic business bank: members, their transactions and churn labels, as the
landing files a real bank would deliver, generated with numpy and Arrow (no Python
loop per member or per transaction).

Why it looks the way it does (each point is something the features or the churn
model can pick up, or something ingest must cope with):

- Members have a legal form and an industry (a 5-digit SIC code).  Both set how
  active the account is, how big its tickets are, its weekend trading, its cash use,
  whether it runs a payroll and pays VAT, and how likely it is to leave.
- Money moves in a weekly and monthly rhythm: fewer transactions at weekends for
  trades and professions, more for shops and restaurants; payroll by BACS on the last
  working day of the month, rent on the first, quarterly VAT to HMRC by direct debit,
  monthly utilities and software direct debits, monthly retainers from B2B clients.
- Channels differ by segment (card, faster_payment, bacs, direct_debit, transfer,
  cash) and counterparties recur: each member has its own network of payers and
  payees, a card acquirer, a landlord, a payroll bureau.
- Members are onboarded over time (with a ramp-up) and some close.  A churner's
  activity fades over the weeks before it closes: fewer transactions, inflows fading
  faster than outflows, fewer distinct payers, retainers stopping, payroll stopping,
  more failed payments.  A fifth of churners leave abruptly, without a visible decline,
  and some members who stay have a temporary dip, so the signal is learnable but not
  trivial.
- `member_outcomes` holds weekly labels: for every member in the snapshot of label
  date L, `churned` is whether the member closed within the LABEL_HORIZON_DAYS days
  after L.  The label only becomes known after the horizon, so it lands on day
  L + LABEL_HORIZON_DAYS + 1.
- A configurable share of dirty rows exercises ingest: resent duplicates, late rows,
  foreign currency, null keys, unknown status or channel, unparseable amounts and
  timestamps, booked_at after ingested_at; and a few broken member and label rows.
  Dirty rows are extra copies of clean rows (or, for late rows, clean rows delivered
  late), so the clean data is complete and ingest must recover exactly it.

Files per landing day (the UTC date the rows were delivered):
`members/<D>/members_<D>.csv`, `transactions/<D>/card_<D>.parquet` (typed),
`transactions/<D>/payments_<D>.jsonl`, and on label days
`member_outcomes/<D>/outcomes_<D>.csv`.  Text formats carry ISO-8601 UTC strings.

The output is a pure function of GenerateParams: the same parameters give the same
rows in the same order (and `memberscore.landing` writes them as the same bytes).
`BankStream` produces it one landing day at a time, so memory grows with the members,
never with the days; `generate` collects the stream for the small banks of tests.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from memberscore.args import iso_date, positive_int
from memberscore.config import GenerateSettings
from memberscore.errors import InputError
from memberscore.schemas import CHANNELS, LEGAL_FORMS, STATUSES

# ----------------------------------------------------------------------------- knobs

LABEL_HORIZON_DAYS = 30
"""A label at date L says whether the member closed within this many days after L."""

LABEL_EVERY_DAYS = 7
"""Labels are issued weekly."""

LABEL_MIN_HISTORY_DAYS = 28
"""The first label date is this many days after the first generated day, so every
labelled snapshot has some transaction history behind it."""

MIN_DAYS_FOR_LABELS = LABEL_MIN_HISTORY_DAYS + LABEL_HORIZON_DAYS + 2
"""A window shorter than this has no label whose outcome is known by its end."""

BASE_MONTHLY_CHURN = 0.035
"""Average monthly probability that an active member closes (about 12% over 120 days)."""

SOURCE_FILES = {
    "members": ("members",),
    "transactions": ("card", "payments"),
    "member_outcomes": ("outcomes",),
}
"""The file prefixes each source is delivered in (see `file_name`)."""

_EPOCH = dt.date(1970, 1, 1)
_DAY = 86_400


@dataclass(frozen=True)
class Industry:
    """How an industry banks: activity, tickets, weekend trading, cash, churn."""

    code: str
    name: str
    segment: str  # "b2c" sells to consumers, "b2b" to businesses
    activity: float  # variable transactions per weekday for an average member
    ticket: float  # typical ticket in GBP
    weekend: float  # weekend activity relative to a weekday
    cash: float  # weight of cash among channels
    churn: float  # churn hazard multiplier
    share: float  # share of members


INDUSTRIES: tuple[Industry, ...] = (
    Industry("47110", "convenience retail", "b2c", 3.2, 28.0, 1.0, 0.25, 1.2, 0.08),
    Industry("47710", "clothing retail", "b2c", 2.4, 45.0, 1.1, 0.10, 1.3, 0.06),
    Industry("47910", "online retail", "b2c", 2.8, 40.0, 0.9, 0.00, 1.3, 0.07),
    Industry("56101", "licensed restaurants", "b2c", 3.0, 55.0, 1.3, 0.12, 1.4, 0.08),
    Industry("55100", "hotels", "b2c", 2.2, 140.0, 1.3, 0.05, 1.1, 0.03),
    Industry("96020", "hairdressing", "b2c", 2.0, 35.0, 1.1, 0.20, 1.2, 0.06),
    Industry("86900", "health practice", "b2c", 1.6, 110.0, 0.3, 0.05, 0.7, 0.05),
    Industry("43210", "electrical installation", "b2b", 1.2, 320.0, 0.25, 0.05, 1.0, 0.09),
    Industry("41202", "house building", "b2b", 1.0, 950.0, 0.2, 0.02, 1.1, 0.07),
    Industry("49410", "road freight", "b2b", 1.4, 420.0, 0.4, 0.02, 1.0, 0.06),
    Industry("62020", "IT consultancy", "b2b", 0.8, 1400.0, 0.1, 0.00, 0.8, 0.12),
    Industry("69201", "accounting", "b2b", 0.9, 600.0, 0.1, 0.00, 0.6, 0.07),
    Industry("70229", "management consultancy", "b2b", 0.7, 1700.0, 0.1, 0.00, 0.9, 0.10),
    Industry("01410", "dairy farming", "b2b", 0.9, 650.0, 0.8, 0.03, 0.6, 0.06),
)

# per legal form (order of schemas.LEGAL_FORMS: ltd, sole_trader, llp, partnership)
_LF_SHARE = np.array([0.55, 0.28, 0.07, 0.10])
_LF_ACTIVITY = np.array([1.2, 0.7, 1.3, 1.0])
_LF_TICKET = np.array([1.2, 0.6, 1.5, 1.0])
_LF_CHURN = np.array([0.9, 1.5, 0.6, 1.0])
_LF_PAYROLL = np.array([0.85, 0.25, 0.90, 0.60])
_LF_VAT = np.array([0.80, 0.35, 0.90, 0.60])

REGIONS = (
    "London", "South East", "North West", "East of England", "West Midlands",
    "South West", "Scotland", "Yorkshire and The Humber", "East Midlands", "Wales",
    "North East", "Northern Ireland",
)
_REGION_SHARE = np.array([18, 15, 10, 10, 8, 9, 7, 8, 7, 4, 2, 2], dtype=float)

# Channel weights (order of schemas.CHANNELS) by segment and direction; the cash weight
# is replaced per industry.
_MIX = {
    ("b2c", "in"): [0.02, 0.28, 0.40, 0.00, 0.08, 0.22],
    ("b2c", "out"): [0.52, 0.20, 0.04, 0.12, 0.06, 0.06],
    ("b2b", "in"): [0.01, 0.58, 0.28, 0.00, 0.12, 0.01],
    ("b2b", "out"): [0.45, 0.28, 0.06, 0.12, 0.08, 0.01],
}
_CASH_WEIGHT = {"in": 1.0, "out": 0.25}
# Ticket multipliers by direction and channel.
_TICKET_IN = np.array([0.5, 2.2, 3.0, 1.0, 2.5, 1.5])
_TICKET_OUT = np.array([0.45, 1.4, 2.0, 0.8, 1.6, 1.2])

CARD, FASTER_PAYMENT, BACS, DIRECT_DEBIT, TRANSFER, CASH = range(6)
assert CHANNELS == ("card", "faster_payment", "bacs", "direct_debit", "transfer", "cash")
assert LEGAL_FORMS == ("ltd", "sole_trader", "llp", "partnership")
assert STATUSES == ("settled", "failed", "reversed")

# Vocabularies including the invalid values dirty rows use.
_CHANNEL_VOCAB = (*CHANNELS, "cheque", "chaps")
_STATUS_VOCAB = (*STATUSES, "pending", "SETTLED", "cancelled")
_CURRENCY_VOCAB = ("GBP", "EUR", "USD")
_BAD_AMOUNTS = ("1,234.50", "£12.00", "12.5O", "N/A", "12.345")
_BAD_TIMESTAMPS = ("05/01/2026 10:23", "yesterday", "2026-13-01T10:00:00Z")
_BAD_DATES = ("last week", "31/12/2019", "2026-02-30")
_BAD_BOOLEANS = ("unknown", "churned?", "2")

# Counterparty kinds: prefix + 7 digits.
_CP_PREFIXES = ("", "CP", "MCH", "ACQ", "PAY", "LL", "UT", "HMRC")
CP_NONE, CP_NETWORK, CP_MERCHANT, CP_ACQUIRER, CP_PAYROLL, CP_LANDLORD, CP_UTILITY, CP_HMRC = \
    range(8)

# Dirty transaction kinds and their weights.
_TXN_DIRTY = (
    ("duplicate", 0.25), ("late", 0.15), ("foreign_currency", 0.12),
    ("null_member_id", 0.07), ("null_transaction_id", 0.05), ("unknown_status", 0.07),
    ("unknown_channel", 0.06), ("unparseable_amount", 0.10),
    ("unparseable_booked_at", 0.05), ("booked_after_ingested", 0.08),
)
_TEXT_ONLY_KINDS = {"unparseable_amount", "unparseable_booked_at"}
_DIRT = {name: i for i, (name, _) in enumerate(_TXN_DIRTY)}


# ----------------------------------------------------------------------------- API


@dataclass(frozen=True)
class GenerateParams:
    """What to generate: `members` members over `days` days ending on `end_date`,
    from `seed`, with `dirty_share` of extra dirty transaction rows (0 = clean).

    `shift_from` and `shift_factor` change the bank's behaviour on purpose: from that
    day on, every member's rate of card spends, payments and cash transactions is
    multiplied by the factor (recurring payments keep their schedule).  Drift tests
    use it; the default bank is stationary."""

    members: int
    days: int
    seed: int
    end_date: dt.date
    dirty_share: float = 0.0
    shift_from: dt.date | None = None
    shift_factor: float = 1.0

    def __post_init__(self) -> None:
        if self.members < 1:
            raise ValueError(f"members must be at least 1, found {self.members}")
        if self.days < 1:
            raise ValueError(f"days must be at least 1, found {self.days}")
        if self.seed < 0:
            raise ValueError(f"seed must be 0 or more, found {self.seed}")
        if not 0.0 <= self.dirty_share <= 0.5:
            raise ValueError(f"dirty_share must be in [0, 0.5], found {self.dirty_share}")
        if not 0.0 < self.shift_factor <= 10.0:
            raise ValueError(f"shift_factor must be in (0, 10], found {self.shift_factor}")

    @property
    def start_date(self) -> dt.date:
        """The first generated (landing) day."""
        return self.end_date - dt.timedelta(days=self.days - 1)

    @classmethod
    def from_settings(cls, conf: GenerateSettings, end_date: dt.date | None = None, *,
                      members: int | None = None, days: int | None = None,
                      seed: int | None = None, clean: bool = False,
                      shift_from: dt.date | None = None,
                      shift_factor: float = 1.0) -> GenerateParams:
        """Parameters from conf `generate`, with any value given here taking precedence;
        `end_date` defaults to yesterday (UTC), `clean` sets the dirty share to 0."""
        return cls(
            members=conf.members if members is None else members,
            days=conf.days if days is None else days,
            seed=conf.seed if seed is None else seed,
            end_date=end_date or dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1),
            dirty_share=0.0 if clean else conf.dirty_share,
            shift_from=shift_from,
            shift_factor=shift_factor,
        )


@dataclass(frozen=True)
class LandingFile:
    """One file to deliver: its source, landing day, file name and rows.

    Parquet files carry typed columns; CSV and JSONL files carry strings exactly as
    they are written (null = an empty CSV field or a JSON null)."""

    source: str
    landing_date: dt.date
    name: str
    table: pa.Table

    @property
    def format(self) -> str:
        return self.name.rsplit(".", 1)[1]

    @property
    def relative_path(self) -> str:
        """Path under the landing root: `<source>/<YYYY-MM-DD>/<name>`."""
        return f"{self.source}/{self.landing_date.isoformat()}/{self.name}"


@dataclass(frozen=True)
class SyntheticBank:
    """Generated landing files plus the ground truth behind them.

    `truth` has one row per member: member_id, legal_form, industry_code, segment,
    onboarded_at, churn_date (the day the member closes, also when that lies after
    the generated window; null when it does not churn within 60 days of the end),
    closed_at (null unless closed on or before the end date), decline_start_date,
    is_abrupt_churn, has_dip.  `dirty` counts the dirty rows by source and kind.
    """

    params: GenerateParams
    files: tuple[LandingFile, ...]
    truth: pa.Table
    dirty: dict[str, dict[str, int]] = field(default_factory=dict)

    def files_of(self, source: str, day: dt.date | None = None) -> list[LandingFile]:
        """The files of one source (optionally of one landing day), in delivery order."""
        return [f for f in self.files
                if f.source == source and (day is None or f.landing_date == day)]

    def rows(self, source: str) -> int:
        """Rows delivered for a source over all days."""
        return sum(f.table.num_rows for f in self.files_of(source))

    @cached_property
    def landing_days(self) -> list[dt.date]:
        return sorted({f.landing_date for f in self.files})


def file_name(prefix: str, day: dt.date, fmt: str) -> str:
    """`card_2026-01-05.parquet`."""
    return f"{prefix}_{day.isoformat()}.{fmt}"


@dataclass(frozen=True)
class LandingDay:
    """The files of one landing day, every source."""

    date: dt.date
    files: tuple[LandingFile, ...]

    @property
    def rows(self) -> int:
        return sum(f.table.num_rows for f in self.files)


def generate(params: GenerateParams) -> SyntheticBank:
    """Generate every source for `params` in memory (pure: no I/O, deterministic for a
    seed): the days of a `BankStream`, collected.  Right for the small banks of tests;
    a large bank is written day by day from the stream (`landing_files`)."""
    stream = BankStream(params)
    files = [f for day in stream.days() for f in day.files]
    files.sort(key=lambda f: (f.source, f.landing_date, f.name))
    return SyntheticBank(params, tuple(files), stream.truth, stream.dirty)


class BankStream:
    """The synthetic bank, one landing day at a time.

    Members and their standing arrangements (payroll, rent, VAT, direct debits,
    retainers, counterparty networks) are drawn once, per member.  Transactions are
    drawn per booking day, each day from random streams of its own (seed, component,
    day), so a day's rows do not depend on how many days follow it, and memory holds
    one day's rows plus the few still on their way to a later landing day (late and
    resent rows): it grows with the members, never with the days.

    `dirty` counts the dirty rows delivered so far (complete once `days()` is done)."""

    def __init__(self, params: GenerateParams) -> None:
        self.params = params
        self.cal = _Calendar(params.start_date, params.days)
        self.members = _members(params, self.cal)
        self.truth = _truth(self.cal, self.members)
        member_rows, member_dirt = _member_rows(params, self.cal, self.members)
        self._member_rows = member_rows.sorted()
        self.dirty: dict[str, dict[str, int]] = {
            "transactions": {}, "members": member_dirt, "member_outcomes": {}}
        first = int(min(self.members.onboard_sec.min() // _DAY, self.cal.start_day - 400))
        self._fmt = _Format(first, self.cal.start_day + params.days + 1)

    def days(self) -> Iterator[LandingDay]:
        """Every landing day of the window, oldest first."""
        params, cal, m, fmt = self.params, self.cal, self.members, self._fmt
        network = _Network.draw(params, m)
        standing = _standing_orders(params, cal, m)
        label_offsets = {(d - params.start_date).days
                         for d in label_dates(params.start_date, params.end_date)}
        member_bounds = np.searchsorted(self._member_rows.landing, np.arange(cal.days + 1))
        in_flight: dict[int, list[_Txns]] = {}
        txn_dirt = np.zeros(len(_TXN_DIRTY), np.int64)
        label_dirt: Counter[str] = Counter()
        seq = _Sequence()
        for day in range(cal.days):
            booked = _day_transactions(params, cal, m, network, standing, day, seq)
            landing = booked.ingested // _DAY - cal.start_day
            for landing_day in np.unique(landing[landing < cal.days]).tolist():
                in_flight.setdefault(landing_day, []).append(
                    booked.take(np.flatnonzero(landing == landing_day)))
            arrived = _Txns.concat(in_flight.pop(day)) if day in in_flight else _no_txns()
            arrived = arrived.take(np.lexsort((arrived.seq, arrived.ingested)))
            txn_dirt += np.bincount(arrived.dirt[arrived.dirt >= 0], minlength=len(_TXN_DIRTY))
            date = cal.date(day)
            lo, hi = int(member_bounds[day]), int(member_bounds[day + 1])
            files = [_member_file(fmt, m, self._member_rows.between(lo, hi), date),
                     *_transaction_files(fmt, m, arrived, date)]
            if day - LABEL_HORIZON_DAYS - 1 in label_offsets:
                labels, dirt = _labels_of(params, m, day - LABEL_HORIZON_DAYS - 1)
                label_dirt.update(dirt)
                files.append(_label_file(fmt, cal, m, labels, date))
            self.dirty["transactions"] = {name: int(count) for (name, _), count
                                          in sorted(zip(_TXN_DIRTY, txn_dirt, strict=True))
                                          if count}
            self.dirty["member_outcomes"] = dict(sorted(label_dirt.items()))
            yield LandingDay(date, tuple(files))
# ----------------------------------------------------------------------------- calendar


class _Calendar:
    """Day indexes 0..days-1 from the start date, with their weekday and month."""

    def __init__(self, start: dt.date, days: int) -> None:
        self.start = start
        self.days = days
        self.start_day = (start - _EPOCH).days  # days since the epoch
        self.start_sec = self.start_day * _DAY
        self.dates = np.datetime64(start.isoformat(), "D") + np.arange(days)
        self.dow = (self.start_day + np.arange(days) + 3) % 7  # Monday = 0
        months = self.dates.astype("datetime64[M]")
        self.dom = (self.dates - months.astype("datetime64[D]")).astype(np.int64) + 1
        month_len = ((months + 1).astype("datetime64[D]") - months.astype("datetime64[D]"))
        self.month_len = month_len.astype(np.int64)
        first, last = months[0], months[-1]
        self.months = np.arange(first, last + 1)  # datetime64[M] covering the window
        self.month_start = (self.months.astype("datetime64[D]")
                            - np.datetime64(start.isoformat(), "D")).astype(np.int64)
        self.month_len_m = ((self.months + 1).astype("datetime64[D]")
                            - self.months.astype("datetime64[D]")).astype(np.int64)
        self.month_no = self.months.astype(np.int64) % 12 + 1
        self.day_month = np.searchsorted(self.month_start, np.arange(days), side="right") - 1

    def date(self, day: int) -> dt.date:
        return self.start + dt.timedelta(days=int(day))

    def weekday(self, day: np.ndarray) -> np.ndarray:
        return (self.start_day + day + 3) % 7

    def previous_business_day(self, day: np.ndarray) -> np.ndarray:
        dow = self.weekday(day)
        return day - np.maximum(dow - 4, 0)

    def next_business_day(self, day: np.ndarray) -> np.ndarray:
        dow = self.weekday(day)
        return day + np.where(dow == 5, 2, np.where(dow == 6, 1, 0))


def _rng(params: GenerateParams, *stream: int) -> np.random.Generator:
    """An independent random stream per component (and per day or month where the
    component is drawn day by day), so components stay stable when another changes."""
    return np.random.default_rng([params.seed, *stream])
# ----------------------------------------------------------------------------- members

_NEVER = 1 << 30  # "does not churn within the horizon"


@dataclass
class _Members:
    n: int
    legal: np.ndarray
    industry: np.ndarray
    region_first: np.ndarray
    region_last: np.ndarray
    change_day: np.ndarray  # day of the region change, -1 when none
    group: np.ndarray  # 0 closed before the window, 1 onboarded in it, 2 existing
    onboard_day: np.ndarray  # relative to the start (negative = before)
    onboard_sec: np.ndarray  # absolute epoch seconds
    churn_day: np.ndarray  # relative day of closure, _NEVER when none
    closed_sec: np.ndarray  # absolute epoch seconds of closure (-1 when none)
    decline_days: np.ndarray
    floor: np.ndarray
    abrupt: np.ndarray
    dip_start: np.ndarray
    dip_len: np.ndarray
    dip_factor: np.ndarray
    activity: np.ndarray  # variable transactions per weekday
    ticket: np.ndarray
    p_in: np.ndarray
    segment_b2c: np.ndarray
    ids: pa.Array


def _members(params: GenerateParams, cal: _Calendar) -> _Members:
    rng = _rng(params, 1)
    n, days = params.members, params.days
    legal = rng.choice(len(LEGAL_FORMS), n, p=_LF_SHARE)
    ind_share = np.array([i.share for i in INDUSTRIES])
    industry = rng.choice(len(INDUSTRIES), n, p=ind_share / ind_share.sum())
    region = rng.choice(len(REGIONS), n, p=_REGION_SHARE / _REGION_SHARE.sum())
    p_new = min(0.3, 0.065 * days / 90)
    group = rng.choice(3, n, p=[0.03, p_new, 0.97 - p_new])

    tenure = np.minimum(30 + rng.exponential(1300, n), 9000).astype(np.int64)
    onboard_day = np.where(group == 2, -tenure, rng.integers(0, days, n))
    old_onboard = -(400 + rng.exponential(1200, n)).astype(np.int64)
    onboard_day = np.where(group == 0, old_onboard, onboard_day)
    onboard_sec = (cal.start_sec + onboard_day * _DAY
                   + rng.integers(8 * 3600, 18 * 3600, n))

    # churn: exponential time to closure from 30 days after onboarding (or the start)
    seg = np.array([i.segment == "b2c" for i in INDUSTRIES])[industry]
    ind_churn = np.array([i.churn for i in INDUSTRIES])[industry]
    tenure_at_start = -onboard_day
    tenure_mult = np.where(tenure_at_start < 365, 1.5, np.where(tenure_at_start > 1825, 0.7, 1.0))
    hazard = BASE_MONTHLY_CHURN / 30 * _LF_CHURN[legal] * ind_churn * tenure_mult
    t0 = np.maximum(onboard_day + 30, 0)
    churn_day = t0 + np.floor(rng.exponential(1.0, n) / hazard).astype(np.int64)
    churn_day = np.where(churn_day < days + 60, churn_day, _NEVER)
    closed_before = -rng.integers(1, 366, n)
    churn_day = np.where(group == 0, closed_before, churn_day)
    closed_sec_all = cal.start_sec + churn_day * _DAY + rng.integers(9 * 3600, 17 * 3600, n)
    closed_sec = np.where(churn_day < days, closed_sec_all, -1)

    abrupt = rng.random(n) < 0.2
    decline_days = np.where(abrupt, rng.integers(2, 9, n), rng.integers(40, 101, n))
    floor = rng.uniform(0.05, 0.35, n)

    has_dip = (rng.random(n) < 0.12) & (churn_day == _NEVER)
    dip_start = np.where(has_dip, rng.integers(-20, max(days, 1), n), _NEVER)
    dip_len = rng.integers(14, 36, n)
    dip_factor = rng.uniform(0.35, 0.7, n)

    # one region change for ~0.04% of members a day, inside the active window
    active_from = np.maximum(onboard_day + 1, 0)
    active_to = np.minimum(churn_day, days)  # exclusive
    span = active_to - active_from
    changes = (rng.random(n) < 1 - np.exp(-0.0004 * days)) & (span >= 2) & (group > 0)
    change_day = np.where(changes, active_from + (rng.random(n) * span).astype(np.int64), -1)
    region_last = np.where(changes, (region + 1 + rng.integers(0, len(REGIONS) - 1, n))
                           % len(REGIONS), region)

    activity_ind = np.array([i.activity for i in INDUSTRIES])[industry]
    ticket_ind = np.array([i.ticket for i in INDUSTRIES])[industry]
    activity = activity_ind * _LF_ACTIVITY[legal] * rng.lognormal(-0.1, 0.45, n)
    ticket = ticket_ind * _LF_TICKET[legal] * rng.lognormal(0.0, 0.5, n)
    p_in = np.where(seg, 0.42, 0.38) + rng.normal(0, 0.03, n)

    width = max(7, len(str(n)))
    ids = pc.binary_join_element_wise(
        "M", pc.utf8_lpad(pa.array(np.arange(1, n + 1)).cast(pa.string()), width, "0"), "")
    return _Members(
        n=n, legal=legal, industry=industry, region_first=region, region_last=region_last,
        change_day=change_day, group=group, onboard_day=onboard_day, onboard_sec=onboard_sec,
        churn_day=churn_day, closed_sec=closed_sec, decline_days=decline_days, floor=floor,
        abrupt=abrupt, dip_start=dip_start, dip_len=dip_len, dip_factor=dip_factor,
        activity=activity, ticket=ticket, p_in=np.clip(p_in, 0.2, 0.6), segment_b2c=seg,
        ids=ids,
    )


def _activity_on(m: _Members, day: int) -> tuple[np.ndarray, np.ndarray]:
    """Per member on `day`: active or not, and how far into its pre-churn decline
    (float32, 0 = no decline, 1 = closing)."""
    active = (day > m.onboard_day) & (day < m.churn_day) & (m.group > 0)
    start = m.churn_day - m.decline_days
    progress = np.clip((day - start) / m.decline_days, 0.0, 1.0).astype(np.float32)
    return active, np.where(m.churn_day == _NEVER, np.float32(0), progress)
# ----------------------------------------------------------------------------- transactions


@dataclass
class _Txns:
    """Transaction rows as columns of numbers; formatted into files per landing day."""

    member: np.ndarray
    booked: np.ndarray  # epoch seconds
    ingested: np.ndarray
    cents: np.ndarray
    channel: np.ndarray  # index into _CHANNEL_VOCAB
    status: np.ndarray  # index into _STATUS_VOCAB
    currency: np.ndarray  # index into _CURRENCY_VOCAB
    cp_kind: np.ndarray
    cp_num: np.ndarray
    seq: np.ndarray  # transaction number (transaction_id = T + 10 digits)
    null_member: np.ndarray
    null_txn: np.ndarray
    bad_amount: np.ndarray  # -1 or index into _BAD_AMOUNTS
    bad_booked: np.ndarray  # -1 or index into _BAD_TIMESTAMPS
    dirt: np.ndarray  # -1 (clean) or index into _TXN_DIRTY

    @property
    def n(self) -> int:
        return len(self.member)

    def take(self, index: np.ndarray) -> _Txns:
        return _Txns(**{k: v[index] for k, v in self.__dict__.items()})

    @staticmethod
    def concat(parts: Sequence[_Txns]) -> _Txns:
        keys = parts[0].__dict__.keys()
        return _Txns(**{k: np.concatenate([p.__dict__[k] for p in parts]) for k in keys})


def _new_txns(member: np.ndarray, booked: np.ndarray, cents: np.ndarray, channel: np.ndarray,
              status: np.ndarray, cp_kind: np.ndarray, cp_num: np.ndarray) -> _Txns:
    size = len(member)
    return _Txns(
        member=member.astype(np.int64), booked=booked.astype(np.int64),
        ingested=np.zeros(size, np.int64), cents=cents.astype(np.int64),
        channel=channel.astype(np.int8), status=status.astype(np.int8),
        currency=np.zeros(size, np.int8), cp_kind=cp_kind.astype(np.int8),
        cp_num=cp_num.astype(np.int64), seq=np.zeros(size, np.int64),
        null_member=np.zeros(size, bool), null_txn=np.zeros(size, bool),
        bad_amount=np.full(size, -1, np.int8), bad_booked=np.full(size, -1, np.int8),
        dirt=np.full(size, -1, np.int8),
    )


def _no_txns() -> _Txns:
    empty = np.zeros(0, np.int64)
    return _new_txns(empty, empty, empty, empty, empty, empty, empty)


@dataclass
class _Sequence:
    """Transaction numbers: clean rows from 1 in booking order; dirty copies (other
    than resent duplicates, which keep their number) from 5,000,000,000, so a clean
    row's id is the same whether or not dirt is generated."""

    clean: int = 1
    dirty: int = 5_000_000_000


def _day_transactions(params: GenerateParams, cal: _Calendar, m: _Members,
                      network: _Network, standing: list[_Standing], day: int,
                      seq: _Sequence) -> _Txns:
    """Every row booked on `day` (clean, plus dirty copies when asked), numbered by
    `seq` in booking order."""
    active, progress = _activity_on(m, day)
    txns = _Txns.concat([
        _variable_transactions(params, cal, m, network, day, active, progress),
        _standing_transactions(params, cal, standing, day, active, progress),
    ])
    txns.ingested = txns.booked + _ingest_lag(_rng(params, 5, day), txns.channel)
    txns = txns.take(np.lexsort((txns.cents, txns.member, txns.booked)))
    txns.seq = np.arange(seq.clean, seq.clean + txns.n, dtype=np.int64)
    seq.clean += txns.n
    if params.dirty_share > 0 and txns.n:
        txns = _dirty_transactions(params, day, txns, seq)
    return txns


def _variable_transactions(params: GenerateParams, cal: _Calendar, m: _Members,
                           network: _Network, day: int, active: np.ndarray,
                           progress: np.ndarray) -> _Txns:
    """Card spends, payments in and out, cash: Poisson counts per member on `day`."""
    rng = _rng(params, 2, day)
    weekend = _INDUSTRY_WEEKEND[m.industry]
    dow = cal.dow[day]
    dow_factor = 0.8 * weekend if dow == 5 else 0.5 * weekend if dow == 6 else 1.0
    month_end = bool(cal.dom[day] >= cal.month_len[day] - 2 or cal.dom[day] <= 2)
    ramp = np.clip(0.3 + 0.7 * (day - m.onboard_day) / 30.0, 0.3, 1.0)
    decline = 1.0 - (1.0 - m.floor) * progress ** 0.7
    in_dip = (day >= m.dip_start) & (day < m.dip_start + m.dip_len)
    dip = np.where(in_dip, m.dip_factor, 1.0)
    shifted = (params.shift_factor
               if params.shift_from and day >= (params.shift_from - params.start_date).days
               else 1.0)
    intensity = (m.activity * dow_factor * (1.12 if month_end else 1.0)
                 * ramp * decline * dip * active * shifted)
    member = np.repeat(np.arange(m.n, dtype=np.int64), rng.poisson(intensity))
    size = len(member)
    progress = progress[member]
    b2c = m.segment_b2c[member]

    # direction: inflows fade faster than outflows in a decline; B2B invoices at month end
    p_in = m.p_in[member] * (1.0 - 0.55 * progress)
    if month_end:
        p_in = p_in + np.where(~b2c, 0.08, 0.0)
    inflow = rng.random(size) < p_in

    # channel from the segment's mix, with the industry's cash weight
    cum = _CHANNEL_MIX[m.industry[member], inflow.astype(np.int64)]
    channel = np.minimum((rng.random(size)[:, None] > cum).sum(axis=1), len(CHANNELS) - 1)

    # amount: member's ticket x channel factor x noise; cash in multiples of GBP 5
    factor = np.where(inflow, _TICKET_IN[channel], _TICKET_OUT[channel])
    size_decline = np.where(inflow, 1.0 - 0.3 * progress, 1.0)
    pounds = m.ticket[member] * factor * size_decline * rng.lognormal(-0.3, 0.8, size)
    cents = np.maximum(np.round(pounds * 100), 1)
    cents = np.where(channel == CASH, np.maximum(np.round(cents / 500) * 500, 500), cents)
    cents = np.minimum(cents, 500_000_000).astype(np.int64)
    cents = np.where(inflow, cents, -cents)

    seconds = _time_of_day(rng, channel, b2c)
    booked = (cal.start_sec + day * _DAY + seconds).astype(np.int64)

    # status: failed payments rise in a decline; a few reversals
    u = rng.random(size)
    p_failed = np.where(inflow, 0.0, 0.006 + 0.15 * progress ** 1.5)
    p_reversed = np.where(channel == CARD, 0.004, 0.001)
    status = np.where(u < p_failed, 1, np.where(u < p_failed + p_reversed, 2, 0))

    cp_kind, cp_num = network.counterparties(rng, member, inflow, channel, progress, b2c)
    return _new_txns(member, booked, cents, channel, status, cp_kind, cp_num)


def _channel_mix() -> np.ndarray:
    """Cumulative channel weights per industry and direction (0 out, 1 in)."""
    mix = np.zeros((len(INDUSTRIES), 2, len(CHANNELS)))
    for k, ind in enumerate(INDUSTRIES):
        for d, direction in enumerate(("out", "in")):
            w = np.array(_MIX[(ind.segment, direction)], dtype=float)
            w[CASH] = ind.cash * _CASH_WEIGHT[direction]
            mix[k, d] = np.cumsum(w / w.sum())
    return mix


_CHANNEL_MIX = _channel_mix()
_INDUSTRY_WEEKEND = np.array([i.weekend for i in INDUSTRIES])


def _time_of_day(rng: np.random.Generator, channel: np.ndarray, b2c: np.ndarray) -> np.ndarray:
    size = len(channel)
    card = rng.normal(np.where(b2c, 12.5, 11.0), np.where(b2c, 3.5, 3.0), size)
    payment = rng.normal(13.0, 3.0, size)
    batch = rng.uniform(3.0, 7.0, size)
    cash = rng.uniform(10.0, 16.5, size)
    hours = np.select(
        [channel == CARD, (channel == BACS) | (channel == DIRECT_DEBIT), channel == CASH],
        [card, batch, cash], payment)
    return (hours * 3600).astype(np.int64) % _DAY  # the tails wrap round midnight


@dataclass(frozen=True)
class _Network:
    """Each member's counterparty layout: it pays and is paid by its own skewed network
    (a base and a stride into a shared pool); B2C card takings arrive from one
    acquirer."""

    pool: int
    base_in: np.ndarray
    base_out: np.ndarray
    stride: np.ndarray
    size_in: np.ndarray
    size_out: np.ndarray
    acquirer: np.ndarray

    @classmethod
    def draw(cls, params: GenerateParams, m: _Members) -> _Network:
        pool = max(50_000, 8 * m.n)
        rng = _rng(params, 8)
        return cls(
            pool=pool,
            base_in=rng.integers(0, pool, m.n),
            base_out=rng.integers(0, pool, m.n),
            stride=rng.integers(1, pool // 7, m.n) * 2 + 1,
            size_in=np.where(m.segment_b2c, rng.integers(30, 300, m.n),
                             rng.integers(5, 40, m.n)),
            size_out=rng.integers(10, 80, m.n),
            acquirer=rng.integers(1, 7, m.n),
        )

    def counterparties(self, rng: np.random.Generator, member: np.ndarray,
                       inflow: np.ndarray, channel: np.ndarray, progress: np.ndarray,
                       b2c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Counterparty kind and number per row: the member's network (fewer payers in
        a decline), popular merchants for card spends, the acquirer for B2C takings."""
        size = len(member)
        shrink = np.where(inflow, 1.0 - 0.7 * progress, 1.0)
        net_size = np.maximum(np.where(inflow, self.size_in[member], self.size_out[member])
                              * shrink, 1)
        k = np.floor(net_size * rng.random(size) ** 2.5).astype(np.int64)
        base = np.where(inflow, self.base_in[member], self.base_out[member])
        network = (base + self.stride[member] * k) % self.pool

        merchant = np.floor(20_000 * rng.random(size) ** 3).astype(np.int64)
        unknown_merchant = rng.random(size) < 0.15
        acquired = inflow & b2c & (channel == BACS)
        kind = np.select(
            [channel == CASH, (channel == CARD) & unknown_merchant, channel == CARD,
             acquired],
            [CP_NONE, CP_NONE, CP_MERCHANT, CP_ACQUIRER], CP_NETWORK)
        num = np.select([channel == CARD, acquired], [merchant, self.acquirer[member]],
                        network)
        return kind, np.where(kind == CP_NONE, 0, num)


@dataclass(frozen=True)
class _Standing:
    """A monthly standing arrangement: one row per arrangement and month it is due,
    paid on `due(month)` (a day index per arrangement, -1 when not due that month)."""

    owner: np.ndarray  # member index per arrangement
    due: Callable[[int], np.ndarray]
    cents: np.ndarray  # signed pence (float, before the month's noise)
    channel: np.ndarray
    cp_kind: int
    cp_num: np.ndarray
    hours: tuple[float, float]  # booking time window
    fail: tuple[float, float]  # failure probability: base + slope x decline
    stop_at: np.ndarray | None = None  # stops once the decline passes this point
    noise: float = 0.0  # sigma of a lognormal on the amount, drawn per month


def _standing_orders(params: GenerateParams, cal: _Calendar, m: _Members) -> list[_Standing]:
    """Payroll, rent, quarterly VAT, utilities and software direct debits, retainers."""
    rng = _rng(params, 3)
    n = m.n
    everyone = np.arange(n)
    ms, ml = cal.month_start, cal.month_len_m

    def month_end(month: int) -> np.ndarray:  # the last working day
        return np.full(len(payroll), cal.previous_business_day(ms[month] + ml[month] - 1))

    def on_day_of_month(dom: np.ndarray) -> Callable[[int], np.ndarray]:
        return lambda month: cal.next_business_day(ms[month] + np.minimum(dom, ml[month]) - 1)

    # payroll: BACS on the last working day; stops late in a decline (staff let go)
    payroll = everyone[rng.random(n) < _LF_PAYROLL[m.legal]]
    employees = 1 + rng.geometric(0.25, n)
    salary = rng.lognormal(np.log(2300), 0.25, n)
    bureau = rng.integers(1, 31, n)
    # rent: first working day, direct debit or standing order, to the member's landlord
    rent = everyone[rng.random(n) < 0.8]
    rent_cents = np.round((400 + 1800 * rng.lognormal(0, 0.6, n)
                           * np.where(m.segment_b2c, 1.5, 1.0)) * 100)
    rent_channel = np.where(rng.random(n) < 0.6, DIRECT_DEBIT, TRANSFER)
    landlord = rng.integers(1, 10 * n + 100, n)
    # quarterly VAT to HMRC by direct debit, on the member's stagger
    vat = everyone[rng.random(n) < _LF_VAT[m.legal]]
    stagger = rng.integers(0, 3, n)[vat]
    quarterly_in = 91 * m.activity * m.p_in * m.ticket * 2.0
    vat_cents = np.round(np.maximum(0.2 * 0.35 * quarterly_in, 50) * 100)

    def vat_due(month: int) -> np.ndarray:
        due = ((cal.month_no[month] - 1 - stagger) % 3) == 0
        return np.where(due, cal.next_business_day(ms[month] + 9), -1)

    # utilities and software: 1-4 monthly direct debits per member
    debits = np.repeat(everyone, rng.integers(1, 5, n))
    dd_dom = rng.integers(1, 29, len(debits))
    dd_cents = np.round(rng.lognormal(np.log(120), 0.8, len(debits)) * 100)
    utility = rng.integers(1, 201, len(debits))
    # retainers: B2B clients paying monthly; each stops at its own point in a decline
    retainers = np.repeat(everyone, np.where(m.segment_b2c, 0, rng.poisson(1.2, n)))
    k = len(retainers)
    ret_dom = rng.integers(1, 29, k)
    ret_cents = np.round(m.ticket[retainers] * 2.5 * rng.lognormal(0, 0.3, k) * 100)
    ret_channel = np.where(rng.random(k) < 0.7, FASTER_PAYMENT, BACS)
    client = rng.integers(0, max(50_000, 8 * n), k)
    ret_stop = rng.uniform(0.1, 0.8, k)
    return [
        _Standing(payroll, month_end, -np.round(employees * salary * 100)[payroll],
                  np.full(len(payroll), BACS), CP_PAYROLL, bureau[payroll], (4.0, 7.0),
                  (0.01, 0.15), np.full(len(payroll), 0.6), noise=0.05),
        _Standing(rent, lambda month: np.full(len(rent), cal.next_business_day(ms[month])),
                  -rent_cents[rent], rent_channel[rent], CP_LANDLORD, landlord[rent],
                  (1.0, 6.0), (0.005, 0.2)),
        _Standing(vat, vat_due, -vat_cents[vat], np.full(len(vat), DIRECT_DEBIT), CP_HMRC,
                  np.ones(len(vat), np.int64), (3.0, 7.0), (0.02, 0.3), noise=0.2),
        _Standing(debits, on_day_of_month(dd_dom), -dd_cents,
                  np.full(len(debits), DIRECT_DEBIT), CP_UTILITY, utility, (3.0, 7.0),
                  (0.005, 0.15)),
        _Standing(retainers, on_day_of_month(ret_dom), ret_cents, ret_channel, CP_NETWORK,
                  client, (8.0, 17.0), (0.0, 0.0), ret_stop),
    ]


def _standing_transactions(params: GenerateParams, cal: _Calendar, standing: list[_Standing],
                           day: int, active: np.ndarray, progress: np.ndarray) -> _Txns:
    """The standing arrangements due on `day` (of this month's schedule, or last
    month's when a working-day shift carried it over), for members active that day."""
    rng = _rng(params, 3, day)
    month = int(cal.day_month[day])
    parts = [_no_txns()]
    for plan_no, plan in enumerate(standing):
        for due_month in (month - 1, month):
            if due_month < 0:
                continue
            idx = np.flatnonzero(plan.due(due_month) == day)
            member = plan.owner[idx]
            keep = active[member]
            if plan.stop_at is not None:
                keep &= progress[member] <= plan.stop_at[idx]
            idx, member = idx[keep], member[keep]
            cents = plan.cents[idx]
            if plan.noise:
                month_rng = _rng(params, 3, 1000 + plan_no, due_month)
                cents = cents * month_rng.lognormal(0, plan.noise, len(plan.owner))[idx]
            size = len(idx)
            seconds = (rng.uniform(*plan.hours, size) * 3600).astype(np.int64)
            p_fail = np.where(cents < 0, plan.fail[0] + plan.fail[1] * progress[member], 0.0)
            status = np.where(rng.random(size) < p_fail, 1, 0)
            parts.append(_new_txns(member, cal.start_sec + day * _DAY + seconds,
                                   cents.astype(np.int64), plan.channel[idx], status,
                                   np.full(size, plan.cp_kind), plan.cp_num[idx]))
    return _Txns.concat(parts)


def _ingest_lag(rng: np.random.Generator, channel: np.ndarray) -> np.ndarray:
    """Seconds between booking and delivery: card minutes, faster payments seconds,
    BACS and direct debits in the morning posting batch."""
    size = len(channel)
    lag = np.select(
        [channel == CARD, channel == FASTER_PAYMENT,
         (channel == BACS) | (channel == DIRECT_DEBIT), channel == TRANSFER],
        [60 + rng.exponential(2400, size), 5 + rng.exponential(120, size),
         rng.uniform(3600, 3 * 3600, size), 10 + rng.exponential(600, size)],
        60 + rng.exponential(1800, size))
    return lag.astype(np.int64)


def _dirty_transactions(params: GenerateParams, day: int, txns: _Txns,
                        seq: _Sequence) -> _Txns:
    """Add dirty rows (copies of the day's clean rows with one defect) and deliver some
    clean rows late.  About `dirty_share` of every day's rows (stochastic rounding), so
    each day has a steady share of dirt: a small bank's day does not get several dirty
    rows by chance and trip the ingest bad-row gate.  Dirt is copied only from rows
    delivered on their booking day, and a resent duplicate arrives on its original's
    day, so a landing day's dirt is its own booking day's: never a busy Saturday's
    on a quiet Sunday."""
    rng = _rng(params, 6, day)
    same_day = np.flatnonzero(txns.ingested // _DAY == txns.booked // _DAY)
    total = min(int(np.floor(params.dirty_share * txns.n + rng.random())), len(same_day))
    source = rng.choice(same_day, total, replace=False)  # one defect per source row
    weights = np.array([w for _, w in _TXN_DIRTY])
    kind = rng.choice(len(_TXN_DIRTY), total, p=weights / weights.sum())
    text_only = np.isin(kind, [_DIRT[k] for k in _TEXT_ONLY_KINDS])
    kind = np.where((txns.channel[source] == CARD) & text_only, _DIRT["foreign_currency"], kind)

    late = source[kind == _DIRT["late"]]
    txns.ingested[late] += rng.integers(_DAY, 5 * _DAY, len(late))
    txns.dirt[late] = _DIRT["late"]

    pick = np.flatnonzero(kind != _DIRT["late"])
    extra = txns.take(source[pick])
    kind = kind[pick]
    size = extra.n
    is_dup = kind == _DIRT["duplicate"]
    extra.dirt = kind.astype(np.int8)
    extra.seq = np.where(is_dup, extra.seq, seq.dirty + np.arange(size))
    seq.dirty += size
    resent = np.minimum(extra.ingested + rng.integers(300, 30 * 3600, size),
                        (extra.ingested // _DAY + 1) * _DAY - 1)
    extra.ingested = np.where(is_dup, resent, extra.ingested)
    extra.currency = np.where(kind == _DIRT["foreign_currency"], rng.integers(1, 3, size),
                              extra.currency).astype(np.int8)
    extra.null_member = kind == _DIRT["null_member_id"]
    extra.null_txn = kind == _DIRT["null_transaction_id"]
    extra.status = np.where(kind == _DIRT["unknown_status"],
                            rng.integers(len(STATUSES), len(_STATUS_VOCAB), size),
                            extra.status).astype(np.int8)
    extra.channel = np.where(kind == _DIRT["unknown_channel"],
                             rng.integers(len(CHANNELS), len(_CHANNEL_VOCAB), size),
                             extra.channel).astype(np.int8)
    extra.bad_amount = np.where(kind == _DIRT["unparseable_amount"],
                                rng.integers(0, len(_BAD_AMOUNTS), size), -1).astype(np.int8)
    extra.bad_booked = np.where(kind == _DIRT["unparseable_booked_at"],
                                rng.integers(0, len(_BAD_TIMESTAMPS), size), -1).astype(np.int8)
    extra.booked = np.where(kind == _DIRT["booked_after_ingested"],
                            extra.ingested + rng.integers(3600, 20 * 3600, size), extra.booked)
    return _Txns.concat([txns, extra])
# ----------------------------------------------------------------------------- member rows


@dataclass
class _MemberRows:
    member: np.ndarray
    region: np.ndarray
    closed: np.ndarray  # epoch seconds, -1 = null
    updated: np.ndarray
    landing: np.ndarray  # landing day index
    null_member: np.ndarray
    bad_onboarded: np.ndarray  # -1 or index into _BAD_DATES
    null_region: np.ndarray

    def sorted(self) -> _MemberRows:
        """In delivery order: by landing day, updated_at, member."""
        return self.slice_by(np.lexsort((self.member, self.updated, self.landing)))

    def between(self, lo: int, hi: int) -> _MemberRows:
        return self.slice_by(slice(lo, hi))

    def slice_by(self, index: np.ndarray | slice) -> _MemberRows:
        return _MemberRows(**{k: v[index] for k, v in self.__dict__.items()})


def _member_rows(params: GenerateParams, cal: _Calendar,
                 m: _Members) -> tuple[_MemberRows, dict[str, int]]:
    """The snapshot feed: everyone known on the first day, then a row whenever a member
    is onboarded, changes region, or closes (updated_at = when it happened)."""
    rng = _rng(params, 4)
    days = params.days
    idx = np.arange(m.n)
    initial = np.flatnonzero((m.group != 1) | (m.onboard_day <= 0))
    start = cal.start_sec
    closed_before = m.group[initial] == 0
    updated_initial = np.where(
        closed_before,
        m.closed_sec[initial] + 3600,
        m.onboard_sec[initial]
        + (rng.random(len(initial)) * np.maximum(start - m.onboard_sec[initial], 0))
        .astype(np.int64))
    initial_region = m.region_first[initial]
    initial_closed = np.where(closed_before, m.closed_sec[initial], -1)

    new = idx[(m.group == 1) & (m.onboard_day > 0) & (m.onboard_day < days)]
    changed = idx[m.change_day >= 0]
    closing = idx[(m.churn_day >= 0) & (m.churn_day < days) & (m.group > 0)]
    closed_updated = m.closed_sec[closing] + rng.integers(0, 3600, len(closing))
    closing_day = m.churn_day[closing]
    change_updated = (start + m.change_day[changed] * _DAY
                      + rng.integers(10 * 3600, 17 * 3600, len(changed)))

    size = len(initial) + len(new) + len(changed) + len(closing)
    rows = _MemberRows(
        member=np.concatenate([initial, new, changed, closing]),
        region=np.concatenate([initial_region, m.region_first[new], m.region_last[changed],
                               m.region_last[closing]]),
        closed=np.concatenate([initial_closed, np.full(len(new) + len(changed), -1),
                               m.closed_sec[closing]]),
        updated=np.concatenate([updated_initial, m.onboard_sec[new], change_updated,
                                np.minimum(closed_updated,
                                           start + (closing_day + 1) * _DAY - 1)]),
        landing=np.concatenate([np.zeros(len(initial), np.int64), m.onboard_day[new],
                                m.change_day[changed], closing_day]),
        null_member=np.zeros(size, bool), bad_onboarded=np.full(size, -1, np.int8),
        null_region=np.zeros(size, bool),
    )
    counts: dict[str, int] = {}
    if params.dirty_share > 0 and size:
        total = int(rng.binomial(size, params.dirty_share))
        src = rng.integers(0, size, total)
        kind = rng.integers(0, 3, total)
        extra = _MemberRows(**{k: v[src] for k, v in rows.__dict__.items()})
        extra.null_member = kind == 0
        extra.bad_onboarded = np.where(kind == 1, rng.integers(0, len(_BAD_DATES), total),
                                       -1).astype(np.int8)
        extra.null_region = kind == 2
        rows = _MemberRows(**{k: np.concatenate([v, extra.__dict__[k]])
                              for k, v in rows.__dict__.items()})
        names = ("null_member_id", "unparseable_onboarded_at", "null_region")
        counts = {names[i]: int((kind == i).sum()) for i in range(3) if (kind == i).any()}
    return rows, counts


# ----------------------------------------------------------------------------- labels


@dataclass
class _Labels:
    member: np.ndarray
    label_day: np.ndarray
    churned: np.ndarray
    null_member: np.ndarray
    bad_date: np.ndarray
    bad_churned: np.ndarray

    @property
    def landing(self) -> np.ndarray:
        return self.label_day + LABEL_HORIZON_DAYS + 1


def label_dates(start: dt.date, end: dt.date) -> list[dt.date]:
    """The label dates whose outcome is known (landed) by `end`."""
    first = start + dt.timedelta(days=LABEL_MIN_HISTORY_DAYS)
    last = end - dt.timedelta(days=LABEL_HORIZON_DAYS + 1)
    out = []
    day = first
    while day <= last:
        out.append(day)
        day += dt.timedelta(days=LABEL_EVERY_DAYS)
    return out


def _labels_of(params: GenerateParams, m: _Members,
               label_day: int) -> tuple[_Labels, dict[str, int]]:
    """For label date L (a day index): every member in L's snapshot (onboarded on or
    before L, not closed before L), churned = closed on or before L + horizon; plus
    broken copies when dirty rows are asked for.  Sorted by member."""
    rng = _rng(params, 7, label_day)
    member = np.flatnonzero((m.onboard_day <= label_day) & (m.churn_day >= label_day)
                            & (m.group > 0))
    size = len(member)
    labels = _Labels(member, np.full(size, label_day, np.int64),
                     m.churn_day[member] <= label_day + LABEL_HORIZON_DAYS,
                     np.zeros(size, bool), np.full(size, -1, np.int8),
                     np.full(size, -1, np.int8))
    counts: dict[str, int] = {}
    if params.dirty_share > 0 and size:
        total = int(rng.binomial(size, params.dirty_share))
        src = rng.integers(0, size, total)
        kind = rng.integers(0, 3, total)
        extra = _Labels(labels.member[src], labels.label_day[src], labels.churned[src],
                        kind == 0,
                        np.where(kind == 1, rng.integers(0, len(_BAD_DATES), total), -1)
                        .astype(np.int8),
                        np.where(kind == 2, rng.integers(0, len(_BAD_BOOLEANS), total), -1)
                        .astype(np.int8))
        labels = _Labels(*(np.concatenate([getattr(labels, f), getattr(extra, f)])
                           for f in _LABEL_FIELDS))
        names = ("null_member_id", "unparseable_label_date", "unparseable_churned")
        counts = {names[i]: int((kind == i).sum()) for i in range(3) if (kind == i).any()}
    order = np.argsort(labels.member, kind="stable")
    return _Labels(*(getattr(labels, f)[order] for f in _LABEL_FIELDS)), counts


_LABEL_FIELDS = ("member", "label_day", "churned", "null_member", "bad_date", "bad_churned")
# ----------------------------------------------------------------------------- formatting


class _Format:
    """Vectorised text formatting (lookup tables, no per-row Python), for epoch days
    `first_day`..`last_day`."""

    def __init__(self, first_day: int, last_day: int) -> None:
        self.first_day = first_day
        days = np.arange(first_day, last_day + 1).astype("datetime64[D]")
        self.dates = pa.array(np.datetime_as_string(days))
        second = np.arange(_DAY)
        hh, mm, ss = second // 3600, second // 60 % 60, second % 60
        self.times = pc.binary_join_element_wise(
            "T", pc.utf8_lpad(pa.array(hh).cast(pa.string()), 2, "0"), ":",
            pc.utf8_lpad(pa.array(mm).cast(pa.string()), 2, "0"), ":",
            pc.utf8_lpad(pa.array(ss).cast(pa.string()), 2, "0"), "Z", "")

    def date(self, epoch_day: np.ndarray) -> pa.Array:
        return pc.take(self.dates, pa.array(epoch_day - self.first_day))

    def timestamp(self, seconds: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
        if null is not None:
            seconds = np.where(null, self.first_day * _DAY, seconds)
        day, tod = np.divmod(seconds, _DAY)
        text = pc.binary_join_element_wise(self.date(day), pc.take(self.times, pa.array(tod)),
                                           "")
        return _with_nulls(text, null)


def _with_nulls(values: pa.Array, null: np.ndarray | None) -> pa.Array:
    if null is None or not null.any():
        return values
    return pc.if_else(pa.array(null), pa.nulls(len(values), values.type), values)


def _override(values: pa.Array, index: np.ndarray, vocabulary: Sequence[str]) -> pa.Array:
    """Replace values where `index >= 0` by `vocabulary[index]` (dirty text)."""
    if not (index >= 0).any():
        return values
    bad = pc.take(pa.array(vocabulary), pa.array(np.maximum(index, 0)))
    return pc.if_else(pa.array(index >= 0), bad, values)


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    digits = pc.utf8_lpad(pa.array(numbers).cast(pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _decimal_cents(cents: np.ndarray) -> pa.Array:
    """An Arrow decimal128(18, 2) array from integer pence."""
    buf = np.empty(len(cents) * 2, dtype=np.int64)
    buf[0::2] = cents
    buf[1::2] = np.where(cents < 0, -1, 0)
    return pa.Array.from_buffers(pa.decimal128(18, 2), len(cents), [None, pa.py_buffer(buf)])


def _transaction_files(fmt: _Format, m: _Members, t: _Txns, date: dt.date) -> list[LandingFile]:
    """The day's card file (typed Parquet) and payments file (JSON lines of text)."""
    txn_id = _with_nulls(_ids("T", t.seq, 10), t.null_txn)
    member_id = _with_nulls(pc.take(m.ids, pa.array(t.member)), t.null_member)
    prefixes = pc.take(pa.array(_CP_PREFIXES), pa.array(t.cp_kind))
    counterparty = _with_nulls(
        pc.binary_join_element_wise(prefixes, pc.utf8_lpad(pa.array(t.cp_num).cast(pa.string()),
                                                           7, "0"), ""),
        t.cp_kind == CP_NONE)
    currency = pc.take(pa.array(_CURRENCY_VOCAB), pa.array(t.currency))
    channel = pc.take(pa.array(_CHANNEL_VOCAB), pa.array(t.channel))
    status = pc.take(pa.array(_STATUS_VOCAB), pa.array(t.status))
    amount = _decimal_cents(t.cents)
    files = []
    card = t.channel == CARD
    for prefix, rows, fmt_name in (("card", np.flatnonzero(card), "parquet"),
                                   ("payments", np.flatnonzero(~card), "jsonl")):
        take = pa.array(rows, pa.int64())
        if fmt_name == "parquet":
            booked = pa.array(t.booked[rows] * 1_000_000).cast(pa.timestamp("us", tz="UTC"))
            ingested = pa.array(t.ingested[rows] * 1_000_000).cast(
                pa.timestamp("us", tz="UTC"))
            amounts: pa.Array = pc.take(amount, take)
        else:
            booked = _override(fmt.timestamp(t.booked[rows]), t.bad_booked[rows],
                               _BAD_TIMESTAMPS)
            ingested = fmt.timestamp(t.ingested[rows])
            amounts = _override(pc.take(amount, take).cast(pa.string()), t.bad_amount[rows],
                                _BAD_AMOUNTS)
        table = pa.table({
            "transaction_id": pc.take(txn_id, take),
            "member_id": pc.take(member_id, take),
            "booked_at": booked,
            "amount": amounts,
            "currency": pc.take(currency, take),
            "channel": pc.take(channel, take),
            "counterparty_id": pc.take(counterparty, take),
            "status": pc.take(status, take),
            "ingested_at": ingested,
        })
        files.append(LandingFile("transactions", date, file_name(prefix, date, fmt_name), table))
    return files


def _member_file(fmt: _Format, m: _Members, r: _MemberRows, date: dt.date) -> LandingFile:
    """The members snapshot rows that land on `date`."""
    onboarded = _override(fmt.timestamp(m.onboard_sec[r.member]), r.bad_onboarded, _BAD_DATES)
    table = pa.table({
        "member_id": _with_nulls(pc.take(m.ids, pa.array(r.member, pa.int64())),
                                 r.null_member),
        "legal_form": pc.take(pa.array(LEGAL_FORMS), pa.array(m.legal[r.member], pa.int64())),
        "industry_code": pc.take(pa.array([i.code for i in INDUSTRIES]),
                                 pa.array(m.industry[r.member], pa.int64())),
        "region": _with_nulls(pc.take(pa.array(REGIONS), pa.array(r.region, pa.int64())),
                              r.null_region),
        "onboarded_at": onboarded,
        "closed_at": fmt.timestamp(r.closed, r.closed < 0),
        "updated_at": fmt.timestamp(r.updated),
    })
    return LandingFile("members", date, file_name("members", date, "csv"), table)


def _label_file(fmt: _Format, cal: _Calendar, m: _Members, labels: _Labels,
                date: dt.date) -> LandingFile:
    """The labels whose outcome became known on `date`."""
    table = pa.table({
        "member_id": _with_nulls(pc.take(m.ids, pa.array(labels.member, pa.int64())),
                                 labels.null_member),
        "label_date": _override(fmt.date(labels.label_day + cal.start_day),
                                labels.bad_date, _BAD_DATES),
        "churned": _override(pc.take(pa.array(["false", "true"]),
                                     pa.array(labels.churned.astype(np.int8))),
                             labels.bad_churned, _BAD_BOOLEANS),
    })
    return LandingFile("member_outcomes", date, file_name("outcomes", date, "csv"), table)


def _truth(cal: _Calendar, m: _Members) -> pa.Table:
    churns = m.churn_day != _NEVER
    churn_epoch_day = np.where(churns, cal.start_day + m.churn_day, 0)
    decline_epoch_day = np.where(churns, churn_epoch_day - m.decline_days, 0)
    return pa.table({
        "member_id": m.ids,
        "legal_form": pc.take(pa.array(LEGAL_FORMS), pa.array(m.legal)),
        "industry_code": pc.take(pa.array([i.code for i in INDUSTRIES]), pa.array(m.industry)),
        "segment": pc.take(pa.array(["b2b", "b2c"]), pa.array(m.segment_b2c.astype(np.int8))),
        "onboarded_at": pa.array(m.onboard_sec * 1_000_000).cast(pa.timestamp("us", tz="UTC")),
        "churn_date": pa.array(churn_epoch_day.astype("int32"), mask=~churns).cast(pa.date32()),
        "closed_at": pa.array(np.maximum(m.closed_sec, 0) * 1_000_000, mask=m.closed_sec < 0)
        .cast(pa.timestamp("us", tz="UTC")),
        "decline_start_date": pa.array(decline_epoch_day.astype("int32"), mask=~churns)
        .cast(pa.date32()),
        "is_abrupt_churn": pa.array(m.abrupt & churns),
        "has_dip": pa.array(m.dip_start != _NEVER),
    })


# ----------------------------------------------------------------------------- command line
# what `generate` and `demo` share


def add_size_arguments(parser: argparse.ArgumentParser) -> None:
    """--members, --days, --seed: what `generate` and `demo` share."""
    parser.add_argument("--members", type=positive_int, default=None,
                        help="members to generate (default: conf generate.members)")
    parser.add_argument("--days", type=positive_int, default=None,
                        help="days of history to generate (default: conf generate.days)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: conf)")
    parser.add_argument("--shift-from", type=iso_date, default=None,
                        help="from this day on, members transact --shift-factor times as "
                             "often (a deliberate behaviour change, to see drift); "
                             "default: none, the bank is stationary")
    parser.add_argument("--shift-factor", type=float, default=1.5,
                        help="the transaction rate multiplier of --shift-from (default 1.5)")


def params_from(conf: GenerateSettings, args: argparse.Namespace) -> GenerateParams:
    """The generator parameters: command-line values, else conf `generate`."""
    try:
        return GenerateParams.from_settings(
            conf, args.end_date, members=args.members, days=args.days,
            seed=args.seed, clean=args.clean, shift_from=getattr(args, "shift_from", None),
            shift_factor=getattr(args, "shift_factor", 1.5)
            if getattr(args, "shift_from", None) else 1.0)
    except ValueError as exc:
        raise InputError(f"cannot generate: {exc} (from the command line or conf "
                         "`generate`)") from None
