"""When a schedule's slots fall: cron (5 fields), macros, and `@every <duration>`.

Slots are UTC. `@every D` slots are the multiples of D since the Unix epoch, so they are the same
on every run of a stateless job (no "started at" to remember).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from croniter import croniter
from croniter.croniter import CroniterBadCronError, CroniterBadDateError

from ctpbackup.rules.durations import parse_duration
from ctpbackup.rules.times import COMPACT

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Schedule:
    text: str
    cron: str = ""
    every: timedelta | None = None

    def latest_slot(self, now: datetime) -> datetime:
        """The most recent slot at or before `now`."""
        if self.every is not None:
            step = self.every.total_seconds()
            elapsed = (now - EPOCH).total_seconds()
            return EPOCH + timedelta(seconds=(elapsed // step) * step)
        return croniter(self.cron, now + timedelta(microseconds=1)).get_prev(datetime).astimezone(UTC)

    def next_slot(self, after: datetime) -> datetime:
        """The first slot strictly after `after`."""
        if self.every is not None:
            return self.latest_slot(after) + self.every
        return croniter(self.cron, after).get_next(datetime).astimezone(UTC)


def parse_schedule(text: str) -> Schedule:
    """Parse a schedule; raises ValueError with a message fit for the user."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("schedule must be a cron expression, a macro like '@daily', or '@every <duration>'")
    text = text.strip()
    if text.startswith("@every"):
        rest = text[len("@every"):].strip()
        try:
            every = parse_duration(rest)
        except ValueError:
            raise ValueError(f"{text!r}: '@every' needs a duration like '1h' or '1h30m10s'") from None
        if every < timedelta(minutes=1):
            raise ValueError(f"{text!r}: the interval must be at least 1m")
        return Schedule(text=text, every=every)
    if text.startswith("@"):
        if text not in MACROS:
            raise ValueError(f"{text!r} is not one of {', '.join(sorted(MACROS))} or '@every <duration>'")
        return Schedule(text=text, cron=MACROS[text])
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(f"{text!r}: a cron expression has 5 fields (minute hour day month weekday), not {len(fields)}")
    if not croniter.is_valid(text):
        raise ValueError(f"{text!r} is not a valid cron expression")
    _check_fires(text)
    return Schedule(text=text, cron=text)


def _check_fires(cron: str) -> None:
    """A cron expression whose day and month never meet (`0 0 31 2 *`, `0 0 30 2 *`, `0 0 31 4 *`)
    is valid syntax that never fires; croniter then fails at plan time, for every namespace. Refused
    here instead. A date that comes only in leap years (`0 0 29 2 *`) fires, so the search spans
    more than one leap cycle."""
    try:
        croniter(cron, EPOCH).get_next(datetime)
    except (CroniterBadDateError, CroniterBadCronError, ValueError, OverflowError):
        raise ValueError(f"{cron!r} never fires (no day matches its day-of-month and month fields)") from None


def slot_suffix(slot: datetime) -> str:
    """`yyyymmddhhmmss` of a slot in UTC, as used in scheduled backup names."""
    return slot.astimezone(UTC).strftime(COMPACT)
