"""Sizes as people read them, one style everywhere (status, describe, apply's summary, progress):
binary units as `kubectl` and `du -h` use them, `512B`, `1.5KiB`, `20.0MiB`, `3.2GiB`."""

from __future__ import annotations


def human_size(size: float) -> str:
    """`size` in bytes -> `512B` (whole bytes below 1 KiB), else one decimal in KiB, MiB, GiB or TiB."""
    value = float(size)
    if value < 1024:
        return f"{value:.0f}B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return f"{value:.1f}{unit}"
    raise AssertionError("unreachable")
