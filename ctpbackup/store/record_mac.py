"""Authenticated backup records: whoever can write to the bucket cannot make a restore trust an archive.

A record tells a restore where the archive is, its size and sha256, and whether it is encrypted; the
integrity check only proves the archive matches the record. So when a config has encryption keys,
every backup it completes carries an HMAC-SHA256 of those fields (`BackupRecord.mac`, under a key
derived with HKDF from the config's first key), and a restore refuses a record whose MAC does not
verify, an archive that is not encrypted, and a format-2 archive whose record has no MAC, unless
the config names that backup in `encryption.allowUnauthenticatedBackups`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection

from ctpbackup.engines.encryption import EncryptionError, Keyring, UnknownKey
from ctpbackup.rules.reasons import FailureReason, ReasonedError
from ctpbackup.store.records import BackupRecord

log = logging.getLogger(__name__)

class RecordRefused(ReasonedError):
    """A record a restore must not trust; `reason` is the failure reason recorded."""


def sign(record: BackupRecord, keyring: Keyring | None) -> BackupRecord:
    """The record with its `mac` (under the keyring's first key); unchanged without a keyring."""
    if keyring is None:
        return record
    return dataclasses.replace(record, mac=keyring.mac(record.authenticated_payload()))


def check_restorable(record: BackupRecord, keyring: Keyring | None, allowed: Collection[str] = ()) -> Keyring | None:
    """Raise RecordRefused unless a restore may trust `record`; return the keys to decrypt its archive
    with. Without a keyring nothing is checked (the config has no encryption). With one, unless the
    backup's name is in `allowed` (logged as a warning):

    - the record must say the archive is encrypted (`ArchiveNotEncrypted`);
    - its MAC must verify (`RecordNotAuthenticated`; `EncryptionKeyMissing` when it names a key the
      config no longer has);
    - a record without a MAC is one of an earlier release: its archive must then be stream format 1,
      whose AEAD binds it to this backup (the returned keyring decrypts nothing else), so a MAC
      stripped from a newer record does not help."""
    if keyring is None:
        return None
    where = f"Backup {record.namespace}/{record.name}"
    if record.name in allowed:
        log.warning("%s: restored without checking that its record is authenticated and its archive encrypted "
                    "(named in allowUnauthenticatedBackups)", where)
        return keyring
    hint = "; if you trust it, name it in spec.objectStorage.encryption.allowUnauthenticatedBackups"
    if not record.encrypted:
        raise RecordRefused(FailureReason.ARCHIVE_NOT_ENCRYPTED, f"the archive of {where} is not encrypted although its config has a key "
                                           f"(taken before encryption was turned on, or planted){hint}")
    if not record.mac:
        return keyring.format_1_only()
    try:
        keyring.verify_mac(record.authenticated_payload(), record.mac)
    except UnknownKey as err:
        raise RecordRefused(err.reason, f"the record of {where} was {err}") from None
    except EncryptionError as err:
        raise RecordRefused(FailureReason.RECORD_NOT_AUTHENTICATED, f"{where}: {err}{hint}") from None
    return keyring
