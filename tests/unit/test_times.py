"""One clock and one set of time formats (ctpbackup.rules.times)."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from ctpbackup.rules import times


@pytest.mark.parametrize("value, text", [
    (datetime(2026, 11, 30, 2, 0, 0, tzinfo=UTC), "2026-11-30T02:00:00Z"),
    (datetime(2026, 11, 30, 2, 0, 0, 999999, tzinfo=UTC), "2026-11-30T02:00:00Z"),  # whole seconds, as metav1.Time
    (datetime(2026, 11, 30, 3, 30, 0, tzinfo=timezone(timedelta(hours=1, minutes=30))), "2026-11-30T02:00:00Z"),
    (None, None),
])
def test_format_time_is_rfc3339_in_utc(value, text):
    assert times.format_time(value) == text


def test_readable_and_compact_forms():
    slot = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert times.readable(slot) == "2026-01-02 03:04:05 UTC"
    assert slot.strftime(times.COMPACT) == "20260102030405"
    assert slot.strftime(times.RFC3339_MICRO) == "2026-01-02T03:04:05.000000Z"


def test_utcnow_is_aware_utc():
    before = datetime.now(UTC)
    now = times.utcnow()
    assert now.tzinfo is UTC and before <= now <= datetime.now(UTC)
