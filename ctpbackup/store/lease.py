"""The apply lease: one apply at a time per bucket prefix (per shard, when sharded).

A lease object holds who took it, until when, and a fencing token: a number one higher than the
lease it replaced, with a random id of this acquisition. It is taken with create-if-absent, renewed
and taken over with replace-if-unchanged, so two runs can never both believe they hold it. A crashed
run's lease expires and is taken over; a live run renews its lease in the background (a third of
the lease period) and before it writes when the lease is near its end.

Fencing (Kleppmann's fencing tokens, as Kubernetes' leader election uses a Lease's holderIdentity):
every index write first calls `check()`, which reads the lease object and refuses to go on unless
it still carries this run's token and id. A run frozen past its lease (SIGSTOP, a VM pause) that
resumes after another run took over therefore writes nothing more and stops with `LeaseLost`.
What is left is the window between that read and the write, milliseconds against a lease period of
minutes; archives are written create-if-absent, so even a write in that window never replaces one.

A lease whose expiry is later than now plus a lease period was written by a clock that ran ahead
(a run with its clock in 2031): a clock error, warned about and taken over, never waited for.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ctpbackup.rules.times import format_time, utcnow
from ctpbackup.storage.base import Bucket, ObjectNotFound, PreconditionFailed
from ctpbackup.store.layout import BucketLayout
from ctpbackup.store.records import bounded, parse_time

log = logging.getLogger(__name__)


class LeaseHeld(Exception):
    """Another run holds the lease; the message says who and until when."""


class LeaseLost(Exception):
    """Our lease was taken over (we were too slow to renew it, or frozen past it): stop writing.
    Not a StorageError on purpose: nothing may catch it as a bucket fault and go on."""


@dataclass(frozen=True)
class LeaseState:
    """What a lease object says. `token` 0 and `id` '' for a lease written before fencing tokens."""

    holder: str
    expires_at: datetime
    token: int = 0
    id: str = ""


def read_state(data: bytes, key: str) -> LeaseState:
    """Decode a lease object; ValueError naming the field when it is not one (a hand-edited `[]`, an
    `expiresAt` without a zone, a token that is not a number)."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"{key}: not JSON") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{key}: not a JSON object")
    holder = doc.get("holder")
    if not isinstance(holder, str):
        raise ValueError(f"{key}: holder is not a string")
    try:
        expires = parse_time(doc.get("expiresAt"))
    except (ValueError, TypeError) as err:
        raise ValueError(f"{key}: expiresAt: {err}") from None
    if expires is None:
        raise ValueError(f"{key}: expiresAt is missing")
    token = doc.get("token", 0)
    if type(token) is not int or token < 0:
        raise ValueError(f"{key}: token is not a non-negative integer")
    lease_id = doc.get("id", "")
    if not isinstance(lease_id, str):
        raise ValueError(f"{key}: id is not a string")
    return LeaseState(bounded(holder, 200), expires, token, bounded(lease_id, 64))


class Lease:
    """The lease of one bucket location, or of one shard `(index, count)` of it (its key from the
    layout). `duration` is the lease period: how long a lease lasts without renewal, and the clock
    tolerance (an expiry further ahead is a clock error)."""

    def __init__(self, bucket: Bucket, layout: BucketLayout, *, holder: str, duration: timedelta,
                 clock: Callable[[], datetime] = utcnow, shard: tuple[int, int] = (0, 1)):
        self.bucket = bucket
        self.key = layout.lease_key(shard)
        self.holder = holder
        self.duration = duration
        self.clock = clock
        self.version: str | None = None
        #: the fencing token and id of this acquisition (set by acquire)
        self.token = 0
        self.id = ""
        self.expires_at: datetime | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.RLock()
        self.lost = False
        self.lost_message = ""

    def _body(self) -> bytes:
        now = self.clock()
        self.expires_at = now + self.duration
        return json.dumps({"holder": self.holder, "token": self.token, "id": self.id,
                           "acquiredAt": format_time(now), "expiresAt": format_time(self.expires_at)}).encode()

    def acquire(self, wait: float = 0.0, poll: float = 1.0) -> None:
        """Take the lease: create it (create-if-absent), or take over one that expired, is unreadable,
        or expires further ahead than a lease period (a clock error), replacing it only if unchanged
        since read; a takeover bumps the fencing token and is logged as a warning.

        `wait` and `poll` are seconds: while another run holds a valid lease, look again every `poll`
        seconds until `wait` has passed (0: look once). Retried at once: a lost race to create or take
        over, and a lease released between the create and the read. Raised: LeaseHeld (naming the
        holder and until when) once `wait` is over; StorageError from the bucket, not retried. Sets
        `id`, `token` and `version`; `start_renewing()` then keeps it."""
        deadline = time.monotonic() + wait
        while True:
            self.id = uuid.uuid4().hex
            self.token = 1
            try:
                self.version = self.bucket.put_if_absent(self.key, self._body())
                return
            except PreconditionFailed:
                pass
            try:
                data, version = self.bucket.read(self.key)
            except ObjectNotFound:
                continue  # released meanwhile: try to create it again
            now = self.clock()
            why = ""
            try:
                current = read_state(data, self.key)
            except ValueError as err:
                current = None
                why = f"unreadable ({err})"
            else:
                if current.expires_at <= now:
                    why = f"expired at {format_time(current.expires_at)}"
                elif current.expires_at > now + self.duration:
                    why = (f"held until {format_time(current.expires_at)}, later than now ({format_time(now)}) plus "
                           f"a lease period: a clock error on the run that wrote it")
            if why:
                self.token = (current.token if current else 0) + 1
                try:
                    self.version = self.bucket.put_if_match(self.key, self._body(), version)
                except (PreconditionFailed, ObjectNotFound):
                    continue  # someone else took it over first: look again
                log.warning("took over the lease %s of %s: %s", self.key,
                            current.holder if current else "an unknown run", why)
                return
            assert current is not None
            if time.monotonic() >= deadline:
                raise LeaseHeld(f"lease {self.key} is held by {current.holder} until "
                                f"{format_time(current.expires_at)}; try again later (a crashed run's lease expires by itself)")
            time.sleep(min(poll, max(0.05, deadline - time.monotonic())))

    def _lose(self, message: str) -> LeaseLost:
        self.lost = True
        self.lost_message = message
        return LeaseLost(message)

    def renew(self) -> None:
        """Extend the lease by a lease period (replace-if-unchanged); LeaseLost when another run has
        replaced it meanwhile."""
        with self._lock:
            if self.lost:
                raise LeaseLost(self.lost_message)
            if self.version is None:
                raise LeaseLost("lease not held")
            try:
                self.version = self.bucket.put_if_match(self.key, self._body(), self.version)
            except (PreconditionFailed, ObjectNotFound):
                raise self._lose(self._taken_over_message()) from None

    def _taken_over_message(self) -> str:
        try:
            data, _ = self.bucket.read(self.key)
            now = read_state(data, self.key)
            by = f"{now.holder} (fencing token {now.token})"
        except (ObjectNotFound, ValueError):
            by = "another run (the lease is gone or unreadable now)"
        except Exception:  # noqa: BLE001 - only to word the message
            by = "another run"
        return (f"lease {self.key} was taken over by {by} while this run (fencing token {self.token}) was "
                f"working; this run stopped and writes nothing more")

    def check(self) -> None:
        """The fence every index write passes first: the lease object must still carry this run's
        token and id, else LeaseLost (and `lost` stays set). A lease near or past its end (the run
        was frozen, or renewals failed) is renewed here first."""
        with self._lock:
            if self.lost:
                raise LeaseLost(self.lost_message)
            try:
                data, version = self.bucket.read(self.key)
                state = read_state(data, self.key)
            except (ObjectNotFound, ValueError):
                raise self._lose(self._taken_over_message()) from None
            if state.id != self.id or state.token != self.token:
                raise self._lose(self._taken_over_message())
            self.version = version
            if self.expires_at is None or self.expires_at - self.clock() < self.duration / 3:
                self.renew()

    def release(self) -> None:
        self.stop_renewing()
        if self.version is None:
            return
        try:
            data, version = self.bucket.read(self.key)
            if version == self.version and read_state(data, self.key).id == self.id:
                self.bucket.delete(self.key)
        except (ObjectNotFound, ValueError):
            pass
        self.version = None

    def start_renewing(self) -> None:
        """Renew at a third of the duration until released (at least every second)."""
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
