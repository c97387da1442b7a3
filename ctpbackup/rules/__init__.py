"""Spaces' rules every stage shares: label selectors, schedules, Go durations, generated names, sizes."""
