"""Git commits drive the whole lifecycle, read back through `status -o json`, `describe` and `wait`."""

from __future__ import annotations

import json

from kubeemu import EmulatorServer
from kubeemu.fixtures import seed_crossplane
from tests.fixtures.story import BACKUP, CONTROL_PLANE


def test_plan_exit_codes_markdown_wait_describe_and_deletion_policies(story):
    cp = EmulatorServer(establish_delay=0.05).start()
    try:
        seed_crossplane(cp, 120)
        story.connect("ctp1", cp)
        story.repo.write("ctp1.yaml", CONTROL_PLANE.format(name="ctp1"))
        story.repo.write("keep.yaml", BACKUP.format(name="keep", control_plane="ctp1"))
        story.repo.write("drop.yaml", BACKUP.format(name="drop", control_plane="ctp1") + "  deletionPolicy: Delete\n")
        story.repo.write("orphan.yaml", BACKUP.format(name="orphan", control_plane="ctp1"))
        story.repo.write("more.yaml", BACKUP.format(name="more1", control_plane="ctp1") + "---\n"
                         + BACKUP.format(name="more2", control_plane="ctp1"))
        story.repo.commit("five backups")

        planned = story.reconcile("plan", "--detailed-exitcode", check=False)
        assert planned.returncode == 2 and "Plan: 5 backups, 0 restores, 0 deletions, 0 errors." in planned.stdout
        as_json = json.loads(story.reconcile("plan", "-o", "json").stdout)
        assert as_json["format_version"] == "1" and as_json["summary"]["backup"] == 5
        story.reconcile("apply")
        assert story.reconcile("plan", "--detailed-exitcode").returncode == 0
        waited = story.reconcile("wait", "backup", "drop", "--for", "condition=Completed", "--timeout", "30s")
        assert "condition met" in waited.stdout
        described = story.reconcile("describe", "backup", "drop").stdout
        assert "Phase:          Completed" in described and "Completed=True" in described and "secrets" in described
        archive = story.backup("drop")["archiveKey"]
        assert story.bucket.exists(archive)

        story.repo.remove("drop.yaml")
        story.repo.remove("orphan.yaml")
        story.repo.commit("remove two backups")
        markdown = story.reconcile("plan", "-o", "markdown").stdout
        assert markdown.startswith("## ⚠️ This plan deletes or orphans 2 backups")
        text = story.reconcile("plan").stdout
        assert "- delete default/drop (ctp1)" in text and "- orphan default/orphan (ctp1)" in text
        story.reconcile("apply")
        drop, orphan, keep = (story.backup(n) for n in ("drop", "orphan", "keep"))
        assert drop["phase"] == "Deleted" and drop["deletedWith"] == "Delete" and not story.bucket.exists(archive)
        assert orphan["phase"] == "Deleted" and orphan["deletedWith"] == "Orphan" and story.bucket.exists(orphan["archiveKey"])
        assert keep["phase"] == "Completed"
        assert "No changes" in story.reconcile("apply").stdout  # deleted records are never touched again

        story.repo.write("keep.yaml", BACKUP.format(name="keep", control_plane="ctp2"))
        story.repo.write("ctp2.yaml", CONTROL_PLANE.format(name="ctp2"))
        story.repo.commit("change an immutable field")
        changed = story.reconcile("plan", check=False)
        assert changed.returncode == 1
        assert "! error Backup default/keep" in changed.stdout and "spec.controlPlane" in changed.stdout
    finally:
        cp.stop()
