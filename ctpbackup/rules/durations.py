"""Go-style durations (`720h`, `1h30m`, `1.5h`, `90s`), as Kubernetes and Spaces write them."""

from __future__ import annotations

import re
from datetime import timedelta

_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_WHOLE = re.compile(r"^(?:[0-9]+(?:\.[0-9]+)?(?:ns|us|µs|ms|s|m|h))+$")
#: Go's time.Duration is an int64 of nanoseconds: ParseDuration refuses anything longer ("invalid
#: duration"), about 292 years (2562047h47m16.854775807s)
MAX_SECONDS = (2**63 - 1) / 1e9
MAX_TEXT = "2562047h"


def parse_duration(text: str) -> timedelta:
    """Parse a Go duration into a timedelta; raises ValueError with a message fit for the user, also
    for a duration Go's time.ParseDuration refuses as too long (more than int64 nanoseconds)."""
    if not isinstance(text, str) or len(text) > 64 or not _WHOLE.match(text):
        shown = text if not isinstance(text, str) or len(text) <= 64 else text[:64] + "..."
        raise ValueError(f"{shown!r} is not a duration like '720h', '1h30m' or '90s'")
    seconds = sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(text))
    if not seconds <= MAX_SECONDS:  # also catches inf from an absurd number of digits
        raise ValueError(f"{text!r} is longer than the longest duration Kubernetes accepts (about {MAX_TEXT}, 292 years)")
    return timedelta(seconds=seconds)
