"""Names of the backups that SharedBackups and schedules create, as Spaces names them."""

from __future__ import annotations

from datetime import datetime

from ctpbackup.rules.schedules import slot_suffix

MAX_NAME = 253


def shared_backup_name(shared_backup: str, control_plane: str) -> str:
    return f"{shared_backup}-{control_plane}"


def scheduled_backup_name(schedule: str, control_plane: str, slot: datetime) -> str:
    return f"{schedule}-{control_plane}-{slot_suffix(slot)}"


def scheduled_name_prefix(schedule: str, control_plane: str) -> str:
    return f"{schedule}-{control_plane}-"
