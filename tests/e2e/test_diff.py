"""`reconcile.py diff backup A B` and `diff backup A --live` (issue 21) through Git, the bucket and a real
emulated control plane: two backups taken around a known change list exactly that change; drift
after editing the control plane lists exactly that edit; no Secret value is ever printed."""

from __future__ import annotations

import base64
import json

from ctpbackup.engines.encryption import MasterKey, parse_key
from kubeemu import EmulatorServer
from tests.e2e.test_encryption import KEY, encrypt_config, write_key
from tests.e2e.test_restore_faults import API
from tests.fixtures.story import BACKUP, CONTROL_PLANE, RESTORED

CM = "/api/v1/namespaces/team-a/configmaps"
SECRETS = "/api/v1/namespaces/team-a/secrets"
OLD_PASSWORD, NEW_PASSWORD = "correct horse battery", "staple 2026-11-30"
SECRET_TEXTS = [OLD_PASSWORD, NEW_PASSWORD] + [base64.b64encode(p.encode()).decode() for p in (OLD_PASSWORD, NEW_PASSWORD)]


def take(story, name: str) -> None:
    story.repo.write(f"{name}.yaml", BACKUP.format(name=name, control_plane="src"))
    story.repo.commit(f"back up src as {name}")
    story.reconcile("apply")
    assert story.backup(name)["phase"] == "Completed"


def no_secret_in(text: str) -> None:
    for secret in SECRET_TEXTS:
        assert secret not in text


def test_diff_of_two_backups_around_a_known_change_and_drift_after_an_edit(story):
    with EmulatorServer(establish_delay=0.02) as source:
        src = API(source)
        src.create("/api/v1/namespaces", {"metadata": {"name": "team-a"}})
        src.create(CM, {"metadata": {"name": "settings"}, "data": {"mode": "fast"}})
        src.create(CM, {"metadata": {"name": "retired"}, "data": {"a": "b"}})
        src.create(SECRETS, {"metadata": {"name": "db"}, "stringData": {"password": OLD_PASSWORD}})
        src.create(SECRETS, {"metadata": {"name": "same"}, "stringData": {"password": OLD_PASSWORD}})
        story.connect("src", source)
        story.repo.write("src.yaml", CONTROL_PLANE.format(name="src"))
        take(story, "b1")

        # the known change: one ConfigMap edited, one Secret's data changed, one object added, one removed
        settings = src.get(f"{CM}/settings")
        src.call("PUT", f"{CM}/settings", {**settings, "data": {"mode": "slow"}})
        db = src.get(f"{SECRETS}/db")
        src.call("PUT", f"{SECRETS}/db", {**db, "data": {"password": base64.b64encode(NEW_PASSWORD.encode()).decode()}})
        src.create(CM, {"metadata": {"name": "added"}, "data": {"x": "y"}})
        src.call("DELETE", f"{CM}/retired")
        take(story, "b2")

        text = story.reconcile("diff", "backup", "b1", "b2").stdout
        assert text.splitlines()[2:] == [
            "  + configmaps team-a/added", "  - configmaps team-a/retired", "  ~ configmaps team-a/settings",
            "      ~ data.mode", "  ~ secrets team-a/db", "      ~ data", "", "Diff: 1 added, 1 removed, 2 changed, "
            f"{json.loads(story.reconcile('diff', 'backup', 'b1', 'b2', '-o', 'json').stdout)['totals']['unchanged']} "
            "unchanged."]
        document = json.loads(story.reconcile("diff", "backup", "b1", "b2", "-o", "json", "--show-values").stdout)
        changed = {r: v for r, v in document["resources"].items()}
        assert changed == {
            "configmaps": {"added": ["team-a/added"], "removed": ["team-a/retired"], "changed": [
                {"object": "team-a/settings", "fields": [{"path": "data.mode", "old": "fast", "new": "slow"}]}]},
            "secrets": {"added": [], "removed": [], "changed": [{"object": "team-a/db", "fields": [{"path": "data"}]}]}}
        assert document["totals"]["unchanged"] > 0  # the namespace, the unchanged Secret, the bootstrap objects
        for output in ("text", "json", "markdown"):
            for values in ((), ("--show-values",)):
                no_secret_in(story.reconcile("diff", "backup", "b1", "b2", "-o", output, *values).stdout)
        exit_code = story.reconcile("diff", "backup", "b1", "b2", "--detailed-exitcode", check=False).returncode
        same = story.reconcile("diff", "backup", "b2", "b2", "--detailed-exitcode")
        assert (exit_code, same.stdout.splitlines()[2]) == (2, "  No differences.")

        # drift: b2 against the control plane now, after one more edit
        assert "  No differences." in story.reconcile("diff", "backup", "b2", "--live").stdout
        same = src.get(f"{SECRETS}/same")
        src.call("PUT", f"{SECRETS}/same", {**same, "data": {"password": base64.b64encode(NEW_PASSWORD.encode()).decode()}})
        src.call("PATCH", f"{CM}/added", {"metadata": {"labels": {"tier": "gold"}}}, "application/merge-patch+json")
        drift = json.loads(story.reconcile("diff", "backup", "b2", "--live", "-o", "json", "--show-values").stdout)
        assert drift["right"] == "ControlPlane default/src now"
        assert drift["resources"] == {
            "configmaps": {"added": [], "removed": [], "changed": [
                {"object": "team-a/added", "fields": [{"path": "metadata.labels.tier", "old": None, "new": "gold"}]}]},
            "secrets": {"added": [], "removed": [], "changed": [{"object": "team-a/same", "fields": [{"path": "data"}]}]}}
        markdown = story.reconcile("diff", "backup", "b2", "--live", "-o", "markdown").stdout
        assert "| `configmaps` | 0 | 0 | 1 |\n| `secrets` | 0 | 0 | 1 |" in markdown
        no_secret_in(markdown)
        refused = story.reconcile("diff", "backup", "b1", check=False)
        assert (refused.returncode, json.loads(refused.stderr.strip().splitlines()[-1])["message"]) == (
            1, "error: diff backup: give a second Backup B, or --live (not both)")
        missing = story.reconcile("diff", "backup", "b1", "nope", check=False)
        assert (missing.returncode, json.loads(missing.stderr.strip().splitlines()[-1])["message"]) == (
            1, "error: Backup default/nope is not recorded in the bucket index")


def test_encrypted_backups_are_diffed_and_dry_run_with_the_key_and_refused_without_it(story):
    """The archive is read as a restore reads it: decrypted with the config's key; a wrong key is one
    line naming the reason, and the key never appears in any output."""
    with EmulatorServer(establish_delay=0.02) as source, EmulatorServer(establish_delay=0.02) as target:
        src = API(source)
        src.create("/api/v1/namespaces", {"metadata": {"name": "team-a"}})
        src.create(CM, {"metadata": {"name": "settings"}, "data": {"mode": "fast"}})
        src.create(SECRETS, {"metadata": {"name": "db"}, "stringData": {"password": OLD_PASSWORD}})
        write_key(story, KEY)
        encrypt_config(story)
        story.connect("src", source)
        story.repo.write("src.yaml", CONTROL_PLANE.format(name="src"))
        take(story, "b1")
        assert story.backup("b1")["encrypted"] is True

        outputs = [story.reconcile("diff", "backup", "b1", "--live").stdout]
        assert outputs[0].splitlines()[2] == "  No differences."
        settings = src.get(f"{CM}/settings")
        src.call("PUT", f"{CM}/settings", {**settings, "data": {"mode": "slow"}})
        drift = story.reconcile("diff", "backup", "b1", "--live", "-o", "json")
        outputs.append(drift.stdout)
        assert json.loads(drift.stdout)["resources"] == {"configmaps": {"added": [], "removed": [], "changed": [
            {"object": "team-a/settings", "fields": [{"path": "data.mode"}]}]}}

        story.connect("dst", target)
        story.repo.write("dst.yaml", RESTORED.format(name="dst", source="b1"))
        story.repo.commit("restore b1 into dst")
        dry = story.reconcile("restore", "dst", "--dry-run")
        outputs.append(dry.stdout)
        assert dry.stdout.splitlines()[-1].endswith("0 refused; the restore would complete.")

        write_key(story, base64.b64encode(b"W" * 32).decode())  # another key: the archive cannot be decrypted
        because = ("EncryptionKeyMissing: the record of Backup default/b1 was encrypted or authenticated with key id "
                   f"{MasterKey(parse_key(KEY)).id}, which is not among the config's keys")
        for args, prefix in ((("diff", "backup", "b1", "--live"), "error: Backup default/b1: "),
                             (("restore", "dst", "--dry-run"), "error: dry run of the restore of default/dst: ")):
            refused = story.reconcile(*args, check=False)
            outputs += [refused.stdout, refused.stderr]
            message = json.loads(refused.stderr.strip().splitlines()[-1])["message"]
            assert (refused.returncode, message.split(" (")[0]) == (1, prefix + because)
        for text in outputs:
            assert KEY not in text and "NOLEAK-ENC-KEY16" not in text
            no_secret_in(text)
