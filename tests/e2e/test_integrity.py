"""Damage in the bucket never leads to a wrong write: a tampered archive restores nothing, a damaged
index record stops the plan that needs it with one clear line."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

from ctpbackup.store.index import BucketIndex
from ctpbackup.store.layout import BucketLayout
from ctpbackup.store.records import BackupRecord, OwnerKind, Phase
from kubeemu import EmulatorServer
from kubeemu.fixtures import seed_crossplane
from tests.fixtures.story import BACKUP, CONTROL_PLANE, RESTORED


def test_one_changed_byte_and_the_restore_writes_nothing(story):
    source = EmulatorServer(establish_delay=0.05).start()
    target = EmulatorServer(establish_delay=0.05).start()
    try:
        seed_crossplane(source, 150)
        story.connect("src", source)
        story.repo.write("src.yaml", CONTROL_PLANE.format(name="src"))
        story.repo.write("b.yaml", BACKUP.format(name="b1", control_plane="src"))
        story.repo.commit("backup")
        story.reconcile("apply")
        key = story.backup("b1")["archiveKey"]
        data = bytearray(story.bucket.read(key)[0])
        data[len(data) // 2] ^= 0x01  # one bit of one byte
        story.bucket.put(key, bytes(data))
        before = target.store.rv

        story.connect("dst", target)
        story.repo.write("dst.yaml", RESTORED.format(name="dst", source="b1"))
        story.repo.commit("restore from the tampered archive")
        result = story.reconcile("apply", check=False)
        assert result.returncode == 1
        (restore,) = story.status()["restores"]
        assert restore["phase"] == "Failed"
        assert restore["conditions"][-1]["reason"] == "IntegrityCheckFailed"
        assert target.store.rv == before, "nothing may be written to the target"
    finally:
        source.stop()
        target.stop()


LAYOUT = BucketLayout("prod/cluster1")


def recorded_backup(story, name: str, control_plane: str = "ctp1", *, expired: bool = True, **fields) -> BackupRecord:
    """A Completed backup (deletionPolicy Delete) with a small archive, recorded in ctp1's index
    shard as a past run would have; `expired`: its 24h TTL passed a day ago."""
    past = datetime.now(UTC) - timedelta(days=2)
    ttl = {"ttl": "24h", "expires_at": past + timedelta(days=1)} if expired else {}
    record = BackupRecord("default", name, control_plane, "default", Phase.COMPLETED, created_at=past,
                          deletion_policy="Delete", sha256="ab" * 32, size=3,
                          archive_key=LAYOUT.archive_key("default", control_plane, name), **ttl, **fields)
    story.bucket.put(record.archive_key, b"tar")
    BucketIndex(story.bucket, LAYOUT).update_backup("default", "ctp1", name, lambda _: record)
    return record


def test_a_damaged_index_record_fails_what_needs_it_in_one_line_until_rebuilt(story):
    expired = recorded_backup(story, "old")
    recorded_backup(story, "other", expired=False, owner_kind=OwnerKind.SHARED_BACKUP,
                    owner_name="nightly")  # nothing a plan acts on
    key = LAYOUT.index_key("default", "ctp1")
    # version 4: header, names, offsets, expiry, then the lines, the soonest expiry ("old") first
    *head, old_line, other_line = story.bucket.read(key)[0].splitlines()
    head = b"\n".join(head) + b"\n"

    def broken(line: bytes) -> bytes:  # as long as the line it replaces: every offset still leads to a line
        return b'{"phase":"Compl'.ljust(len(line))

    story.repo.commit("the config only")

    # the plan needs only "old": it is planned, but deleting it rewrites the shard, which cannot be read
    story.bucket.put(key, head + old_line + b"\n" + broken(other_line) + b"\n")
    result = story.reconcile("apply", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "- delete default/old" in result.stdout and "0 done, 1 failed" in result.stdout
    assert "IndexWriteFailed" in result.stdout and "unreadable record of backup other" in result.stdout
    assert story.bucket.exists(expired.archive_key), "nothing is deleted on a damaged index"

    # now the record the plan needs is damaged: the plan itself stops, in one line
    story.bucket.put(key, head + broken(old_line) + b"\n" + broken(other_line) + b"\n")
    result = story.reconcile("apply", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    messages = [json.loads(text)["message"] for text in result.stderr.splitlines()]  # JSON lines off a terminal
    (line,) = [text for text in messages if text.startswith("error:")]
    assert "index.json: unreadable record of backup old" in line and "index rebuild" in line
    assert story.bucket.exists(expired.archive_key)

    story.reconcile("index", "rebuild")  # from the records written next to the archives
    assert "- delete default/old" in story.reconcile("plan").stdout


def test_a_deletion_the_index_cannot_record_fails_alone(story):
    """A record kept in another control plane's shard cannot be marked Deleted where its control
    plane's shard is: that deletion fails, with the way out; the others go on."""
    expired = [recorded_backup(story, "astray", "ctp2"), recorded_backup(story, "plain")]  # both in ctp1's shard
    story.repo.commit("the config only")

    result = story.reconcile("apply", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "1 done, 1 failed" in result.stdout and "not in the index shard of control plane ctp2" in result.stdout
    assert not story.bucket.exists(expired[1].archive_key) and story.bucket.exists(expired[0].archive_key)
    assert story.backup("plain")["phase"] == "Deleted" and story.backup("astray")["phase"] == "Completed"


def test_an_index_no_plan_can_read_is_rebuilt_from_the_command_line(story):
    recorded_backup(story, "b1", expired=False)
    story.bucket.put(LAYOUT.index_key("default", "ctp1"), b"{not json")
    story.repo.commit("the config only")

    planned = story.reconcile("plan", check=False)
    assert planned.returncode == 1 and "Traceback" not in planned.stderr
    assert "unreadable index shard" in planned.stderr and "index rebuild" in planned.stderr
    rebuilt = story.reconcile("index", "rebuild")  # needs no readable index to run
    assert "1 backup(s)" in rebuilt.stdout
    assert story.backup("b1")["phase"] == "Completed"


def test_a_line_naming_another_namespace_is_refused_not_planned_as_that_namespaces_backup(story):
    """A version 4 line that says `namespace` (no writer writes it: the header says it) is a record
    of another namespace, refused as versions 1-3 refuse one: read as such, the Backup Git still
    asks for (default/b1) was "removed from Git" in namespace teamb, and deleted."""
    recorded_backup(story, "b1", expired=False)
    story.repo.write("ctp1.yaml", CONTROL_PLANE.format(name="ctp1"))
    story.repo.write("b1.yaml", BACKUP.format(name="b1", control_plane="ctp1"))
    story.repo.commit("b1 is wanted")
    key = LAYOUT.index_key("default", "ctp1")
    data = story.bucket.read(key)[0]
    story.bucket.put(key, data.replace(b'{"name":"b1",', b'{"name":"b1","namespace":"teamb",', 1))

    result = story.reconcile("apply", "--allow-mass-delete", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "- delete" not in result.stdout and "teamb" not in result.stdout
    messages = [json.loads(text)["message"] for text in result.stderr.splitlines()]
    (line,) = [text for text in messages if text.startswith("error:")]
    assert "index.json: unreadable record of backup b1" in line and "index rebuild" in line
    assert story.bucket.exists(LAYOUT.archive_key("default", "ctp1", "b1"))
    story.reconcile("index", "rebuild")  # from the record next to the archive
    assert story.backup("b1")["phase"] == "Completed" and "- delete" not in story.reconcile("plan").stdout


def test_a_header_naming_a_backup_its_index_does_not_hold_stops_the_plan_in_one_line(story):
    """The header's summary names its standalone backups and its routes; one it names that its
    list of names does not hold (the header edited, at the same length) is an unreadable index shard,
    in one line, not a KeyError out of the planner."""
    for name in ("b1", "b10"):
        recorded_backup(story, name, expired=False)
        story.repo.write(f"{name}.yaml", BACKUP.format(name=name, control_plane="ctp1"))
    story.repo.write("ctp1.yaml", CONTROL_PLANE.format(name="ctp1"))
    story.repo.commit("b1 and b10 are wanted")
    key = LAYOUT.index_key("default", "ctp1")
    data = story.bucket.read(key)[0]
    for before, after in ((b'"standalone":["b1","b10"]', b'"standalone":["b1","zzz"]'),
                          (b'"routes":["b1","b10"]', b'"routes":["b1","zzz"]')):
        assert before in data
        story.bucket.put(key, data.replace(before, after, 1))
        result = story.reconcile("apply", "--allow-mass-delete", check=False)
        assert result.returncode == 1 and "Traceback" not in result.stderr + result.stdout
        assert "- delete" not in result.stdout
        messages = [json.loads(text)["message"] for text in result.stderr.splitlines()]
        (line,) = [text for text in messages if text.startswith("error:")]
        assert "index.json: unreadable index shard" in line and "index rebuild" in line
    assert story.bucket.exists(LAYOUT.archive_key("default", "ctp1", "b1"))


def test_a_name_listed_twice_fails_the_write_instead_of_dropping_the_backup_it_replaced(story):
    """Line 2 edited so that b2's name reads b1 (same length): a writer decoded every line by the
    names and kept one b1, so the deletion of "old" rewrote the index without b2. A list of names
    that is not of distinct names is unreadable: the deletion fails, nothing is removed or dropped."""
    expired = recorded_backup(story, "old")
    for name in ("b1", "b2"):
        recorded_backup(story, name, expired=False, owner_kind=OwnerKind.SHARED_BACKUP, owner_name="nightly")
    story.repo.commit("the config only")
    key = LAYOUT.index_key("default", "ctp1")
    data = story.bucket.read(key)[0]
    assert b'\n["old","b1","b2"]\n' in data
    story.bucket.put(key, data.replace(b'\n["old","b1","b2"]\n', b'\n["old","b1","b1"]\n', 1))

    result = story.reconcile("apply", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "- delete default/old" in result.stdout
    assert "IndexWriteFailed: prod/cluster1/default/ctp1/index.json: unreadable list of names" in result.stdout
    messages = [json.loads(text)["message"] for text in result.stderr.splitlines()]
    (line,) = [text for text in messages if text.startswith("error:")]
    assert line == ("error: prod/cluster1/default/ctp1/index.json: unreadable list of names (ValueError); "
                    "run `reconcile.py index rebuild`")
    assert story.bucket.exists(expired.archive_key)
    assert b'"name":"b2"' in story.bucket.read(key)[0], "b2 is still in its index"

    story.reconcile("index", "rebuild")
    assert {b["name"]: b["phase"] for b in story.status()["backups"]} == \
        {"old": "Completed", "b1": "Completed", "b2": "Completed"}


def test_a_line_the_header_does_not_count_fails_the_write_instead_of_being_dropped(story):
    """A header (names, offsets, count) of fewer backups than the index has lines: b2's line is
    there but unnamed. A writer decoded the named lines only and wrote the index back without b2;
    an index whose lines are not one per backup is refused when written, as metrics refuse it."""
    expired = recorded_backup(story, "old")
    for name in ("b1", "b2"):
        recorded_backup(story, name, expired=False, owner_kind=OwnerKind.SHARED_BACKUP, owner_name="nightly")
    story.repo.commit("the config only")
    key = LAYOUT.index_key("default", "ctp1")
    index = BucketIndex(story.bucket, LAYOUT)
    whole = index._read_index(key)[0]
    b2_line = next(line for line in story.bucket.read(key)[0].splitlines() if line.startswith(b'{"name":"b2",'))
    del whole.backups["b2"]
    story.bucket.put(key, whole.to_bytes("default", "ctp1", LAYOUT) + b2_line + b"\n")

    result = story.reconcile("apply", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "- delete default/old" in result.stdout
    assert "IndexWriteFailed: prod/cluster1/default/ctp1/index.json: not one line for each backup" in result.stdout
    assert story.bucket.exists(expired.archive_key)
    assert story.bucket.read(key)[0].endswith(b2_line + b"\n"), "b2 is still in its index"


def test_a_stale_copy_in_another_index_never_deletes_the_backup_its_own_index_keeps(story):
    """ctp2's index holds a line of b1 naming control plane ctp1 (a stale copy: Completed, its TTL
    passed); ctp1's own index holds b1 without a TTL. The plan reads the copy (the later index wins a
    name read twice) and plans `- delete`; the deletion then marked ctp1's own record Deleted and
    removed its archive. It is refused unless the record it changes is the one planned on."""
    past = datetime.now(UTC) - timedelta(days=2)
    kept = recorded_backup(story, "b1", expired=False)  # ctp1's own, no TTL
    stale = dataclasses.replace(kept, ttl="24h", expires_at=past + timedelta(days=1))
    BucketIndex(story.bucket, LAYOUT).update_backup("default", "ctp2", "b1", lambda _: stale)
    story.repo.commit("the config only")

    result = story.reconcile("apply", "--allow-mass-delete", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "0 done, 1 failed" in result.stdout
    assert "IndexWriteFailed" in result.stdout and "index shard of control plane ctp1 records it otherwise" \
        in result.stdout
    assert story.bucket.exists(kept.archive_key)
    index = BucketIndex(story.bucket, LAYOUT)
    own = index._read_index(LAYOUT.index_key("default", "ctp1"))[0].backups["b1"]
    assert (own.phase, own.expires_at, own.control_plane) == (Phase.COMPLETED, None, "ctp1")
