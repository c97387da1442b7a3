"""`reconcile.py download backup NAME`: a backup's archive as a plain `.tar.gz` a person opens with `tar`.

The archive goes through the same door a restore uses (`apply.archives.fetch_trusted`): the record must be
one a restore trusts (its MAC, when the config has keys), the stored bytes must have the size and
sha256 the index recorded, an encrypted archive must decrypt and authenticate to the end, and the
result must be the archive format of this very backup. Only then is the file put in place (renamed
from a temporary folder beside it): a refused archive leaves no file behind, not even a partial one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ctpbackup.apply import archives
from ctpbackup.rules.reasons import RefusedError
from ctpbackup.store.locations import BackupLocation
from ctpbackup.store.records import BackupRecord, Phase


class DownloadRefused(RefusedError):
    """The archive was not written: `reason` (a restore's, such as IntegrityCheckFailed or
    DecryptionFailed, or NotCompleted / OutputUnwritable) and one line."""


def download(location: BackupLocation, record: BackupRecord, out: Path) -> int:
    """Write the plain (decrypted) archive of a Completed `record` to `out`; its size in bytes.
    Raises DownloadRefused (and leaves `out` as it was) when the record or the archive is refused or
    the bucket cannot be read."""
    if record.phase is not Phase.COMPLETED:
        raise DownloadRefused("NotCompleted", f"Backup {record.namespace}/{record.name} is {record.phase.value}; "
                                              "only a Completed backup has a whole archive")
    folder = out.resolve().parent
    if not folder.is_dir():
        raise DownloadRefused("OutputUnwritable", f"{out}: no such folder {folder}")
    work = Path(tempfile.mkdtemp(prefix=".ctpbackup-download-", dir=folder))
    try:
        path = archives.fetch_trusted(location, record, work)
        os.replace(path, out)
        return out.stat().st_size
    except archives.ArchiveRefused as err:
        raise DownloadRefused(err.reason, err.message) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
