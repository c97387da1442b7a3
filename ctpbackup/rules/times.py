"""Times: the one clock and the one set of formats this job writes.

Every time stored or printed is UTC. Records, plans and archive metadata use RFC 3339 with a `Z` and
whole seconds, as Kubernetes' metav1.Time marshals (`2006-01-02T15:04:05Z07:00`, seconds only);
log lines add microseconds; plan reasons show a readable form; scheduled backup names a compact one.
"""

from __future__ import annotations

from datetime import UTC, datetime

#: RFC 3339 in UTC, whole seconds (metav1.Time): records, plans, archive metadata
RFC3339 = "%Y-%m-%dT%H:%M:%SZ"
#: RFC 3339 in UTC with microseconds: JSON log lines
RFC3339_MICRO = "%Y-%m-%dT%H:%M:%S.%fZ"
#: what a plan's reasons show a person
READABLE = "%Y-%m-%d %H:%M:%S UTC"
#: the slot suffix of a scheduled backup's name (`nightly-ctp1-20261130020000`)
COMPACT = "%Y%m%d%H%M%S"


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC. The one clock of the job: callers pass it (or a
    test's clock) in, and the planner never reads it."""
    return datetime.now(UTC)


def format_time(value: datetime | None) -> str | None:
    """`value` in RFC 3339 (UTC, whole seconds, `Z`), or None for None."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime(RFC3339)


def readable(value: datetime) -> str:
    """`value` as a plan's reasons show it: `2026-11-30 02:00:00 UTC` (the value is expected in UTC)."""
    return value.strftime(READABLE)
