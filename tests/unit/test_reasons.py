"""One list of failure reasons (ctpbackup.rules.reasons), and the README's troubleshooting table lists each."""

import re
from pathlib import Path

import pytest

from ctpbackup.engines.backup import BackupFailed
from ctpbackup.engines.encryption import EncryptionError, UnauthenticatedRecord, UnknownKey
from ctpbackup.engines.restore import RestoreFailed
from ctpbackup.kube.connect import ConnectionSecretUnusable
from ctpbackup.rules.reasons import UNREACHABLE, FailureReason, ReasonedError
from ctpbackup.store.record_mac import RecordRefused

README = Path(__file__).resolve().parents[2] / "README.md"


def troubleshooting_reasons() -> set[str]:
    """Every `Name` in the first column of the README's "Troubleshooting: failure reasons" table."""
    text = README.read_text()
    section = text.split("## Troubleshooting: failure reasons", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| reason")]
    return {name for row in rows for name in re.findall(r"`([A-Za-z]+)`", row.split(" | ")[0])}


def test_the_readme_table_lists_every_failure_reason():
    listed = troubleshooting_reasons()
    assert sorted(r.value for r in FailureReason if r.value not in listed) == []
    # and it lists no reason the code does not know (the CamelCase names of the first column)
    assert sorted(name for name in listed if name not in set(FailureReason)) == []


def test_archive_unreadable_is_in_the_table():
    assert "ArchiveUnreadable" in troubleshooting_reasons()


@pytest.mark.parametrize("member, value", [
    (FailureReason.ARCHIVE_UNREADABLE, "ArchiveUnreadable"),
    (FailureReason.CONTROL_PLANE_UNREACHABLE, "ControlPlaneUnreachable"),
    (FailureReason.CRDS_NOT_ESTABLISHED, "CRDsNotEstablished"),
    (FailureReason.RECORD_UNREADABLE, "RecordUnreadable"),
    (FailureReason.INTERRUPTED, "Interrupted"),
    (FailureReason.INDEX_WRITE_FAILED, "IndexWriteFailed"),
])
def test_values_are_the_strings_stored_in_buckets(member, value):
    assert member == value
    assert f"{member}" == value and str(member) == value


def test_values_are_unique_camel_case():
    values = [r.value for r in FailureReason]
    assert len(FailureReason.__members__) == len(set(values)) == 34  # no alias: each name its own value
    assert [v for v in values if not re.fullmatch(r"[A-Z][A-Za-z]+", v)] == []


def test_unreachable_reasons():
    assert UNREACHABLE == ("ControlPlaneUnreachable", "ConnectionSecretMissing", "InvalidKubeconfig")


@pytest.mark.parametrize("cls", [BackupFailed, RestoreFailed, RecordRefused, ConnectionSecretUnusable])
def test_every_reasoned_error_shares_one_base(cls):
    err = cls(FailureReason.ARCHIVE_MISSING, "Backup b1 has no recorded archive")
    assert isinstance(err, ReasonedError)
    assert (err.reason, err.message, str(err)) == ("ArchiveMissing", "Backup b1 has no recorded archive",
                                                   "Backup b1 has no recorded archive")
    with pytest.raises(ReasonedError, match=r"^Backup b1 has no recorded archive$"):
        raise err


@pytest.mark.parametrize("cls, reason", [(EncryptionError, "DecryptionFailed"), (UnknownKey, "EncryptionKeyMissing"),
                                         (UnauthenticatedRecord, "RecordNotAuthenticated")])
def test_encryption_errors_carry_their_reason(cls, reason):
    assert cls("x").reason is FailureReason(reason)
