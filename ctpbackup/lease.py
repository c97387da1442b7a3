"""The apply lease: one apply at a time per bucket prefix (per shard, when sharded).

A lease object holds who took it and until when; it is taken with create-if-absent, renewed and
taken over with replace-if-unchanged, so two runs can never both believe they hold it. A crashed
run's lease expires and is taken over; a live run renews its lease in the background.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from ctpbackup.layout import BucketLayout
from ctpbackup.records import format_time, parse_time
from ctpbackup.storage.base import Bucket, ObjectNotFound, PreconditionFailed

log = logging.getLogger(__name__)


class LeaseHeld(Exception):
    """Another run holds the lease; the message says who and until when."""


class LeaseLost(Exception):
    """Our lease was taken over (we were too slow to renew it): stop writing."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Lease:
    def __init__(self, bucket: Bucket, layout: BucketLayout, *, holder: str, duration: timedelta,
                 clock: Callable[[], datetime] = _utcnow, name: str = "lease"):
        self.bucket = bucket
        self.key = layout.lease_key(name)
        self.holder = holder
        self.duration = duration
        self.clock = clock
        self.version: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False

    def _body(self) -> bytes:
        now = self.clock()
        return json.dumps({"holder": self.holder, "acquiredAt": format_time(now),
                           "expiresAt": format_time(now + self.duration)}).encode()

    def acquire(self, wait: float = 0.0, poll: float = 1.0) -> None:
        deadline = time.monotonic() + wait
        while True:
            try:
                self.version = self.bucket.put_if_absent(self.key, self._body())
                return
            except PreconditionFailed:
                pass
            try:
                data, version = self.bucket.read(self.key)
                current = json.loads(data)
                expires = parse_time(current.get("expiresAt"))
            except ObjectNotFound:
                continue  # released meanwhile: try to create it again
            except (ValueError, TypeError):
                current, expires, version = {"holder": "an unreadable lease"}, None, version
            if expires is None or expires <= self.clock():
                try:
                    self.version = self.bucket.put_if_match(self.key, self._body(), version)
                    log.warning("took over the expired lease of %s", current.get("holder"))
                    return
                except (PreconditionFailed, ObjectNotFound):
                    continue  # someone else took it over first: look again
            if time.monotonic() >= deadline:
                raise LeaseHeld(f"lease {self.key} is held by {current.get('holder')} until "
                                f"{format_time(expires)}; try again later (a crashed run's lease expires by itself)")
            time.sleep(min(poll, max(0.05, deadline - time.monotonic())))

    def renew(self) -> None:
        if self.version is None:
            raise LeaseLost("lease not held")
        try:
            self.version = self.bucket.put_if_match(self.key, self._body(), self.version)
        except (PreconditionFailed, ObjectNotFound):
            self.lost = True
            raise LeaseLost(f"lease {self.key} was taken over by another run") from None

    def release(self) -> None:
        self.stop_renewing()
        if self.version is None:
            return
        try:
            data, version = self.bucket.read(self.key)
            if version == self.version and json.loads(data).get("holder") == self.holder:
                self.bucket.delete(self.key)
        except (ObjectNotFound, ValueError):
            pass
        self.version = None

    def start_renewing(self) -> None:
        """Renew at a third of the duration until released."""
        interval = max(1.0, self.duration.total_seconds() / 3)

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.renew()
                except LeaseLost as err:
                    log.error("%s", err)
                    return
                except Exception as err:  # noqa: BLE001 - a transient bucket error: try again next time
                    log.warning("lease renewal failed: %s", err)

        self._thread = threading.Thread(target=loop, name="lease-renewer", daemon=True)
        self._thread.start()

    def stop_renewing(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
