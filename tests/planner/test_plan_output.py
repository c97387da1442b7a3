"""Plan output: Terraform-style text, stable JSON, Markdown under 60 KB."""

from __future__ import annotations

import json
from datetime import timedelta

from ctpbackup.plan.planner import plan
from ctpbackup.plan.render import FORMAT_VERSION, MARKDOWN_LIMIT, to_json, to_markdown, to_text
from ctpbackup.store.records import Phase
from tests.planner.test_plan import BACKUP, NOW, RESTORED, desired, rec, recorded


def sample_plan():
    d = desired(BACKUP % ("restore-me", "ctp1", "Orphan"), BACKUP % ("b2", "ctp2", "Delete"), RESTORED % ("Backup", "old"))
    r = recorded(rec("old", phase=Phase.DELETED, deleted_with="Orphan", sha256="ab" * 32), rec("gone", deletion_policy="Delete"),
                 rec("b2", "ctp2", ttl="1h", expires_at=NOW - timedelta(hours=1), deletion_policy="Delete"))
    return plan(d, r, NOW)


def test_text_has_signs_reasons_and_summary():
    text = to_text(sample_plan())
    assert "+ backup default/restore-me ← ctp1" in text
    assert "~ restore default/restored ← old" in text
    assert "- delete default/gone (ctp1)" in text
    assert "Backup removed from Git; deletionPolicy Delete: archive removed" in text
    assert text.rstrip().endswith("Plan: 1 backup, 1 restore, 2 deletions, 0 errors.")


def test_text_no_changes_names_commit():
    text = to_text(plan(desired(BACKUP % ("b1", "ctp1", "Orphan")), recorded(rec("b1")), NOW))
    assert text.rstrip().endswith("No changes. The bucket matches Git (commit abc1234).")


def test_json_is_stable_and_complete():
    doc = json.loads(to_json(sample_plan()))
    assert doc["format_version"] == FORMAT_VERSION and doc["commit"] == "abc1234def"
    assert {"action", "kind", "namespace", "name", "controlPlane", "reason"} <= set(doc["actions"][0])
    assert doc["summary"]["backup"] == 1 and doc["summary"]["delete"] == 2 and doc["summary"]["changes"] is True
    assert [a["action"] for a in doc["actions"]] == ["backup", "restore", "delete", "delete"]


def test_markdown_warns_on_deletion_and_folds_details():
    md = to_markdown(sample_plan())
    assert md.startswith("## ⚠️ This plan deletes or orphans 2 backups")
    assert "<details>" in md and "`default/gone`" in md


def test_markdown_stays_under_limit_for_huge_plans():
    d = desired(*[BACKUP % (f"backup-with-a-rather-long-name-{i:05d}", "ctp1", "Orphan") for i in range(3000)])
    big = plan(d, recorded(), NOW)
    md = to_markdown(big)
    assert len(md.encode()) < MARKDOWN_LIMIT
    assert "more action(s) not shown" in md
    assert md.index("Plan: 3000 backups") < md.index("<details>")
