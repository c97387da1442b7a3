"""Reading manifests from real Git repositories: refs, subfolders, clones, work tree, cleanup."""

from __future__ import annotations

import glob
import os
import tempfile

import pytest

from ctpbackup.desired.gitsource import read_repository, redact_url
from ctpbackup.desired.problems import UserError

BACKUP = """apiVersion: spaces.upbound.io/v1alpha1
kind: Backup
metadata:
  name: {name}
spec:
  configRef: {{kind: SharedBackupConfig, name: default}}
  controlPlane: ctp1
"""


def names(snapshot) -> set[str]:
    return {f.path for f in snapshot.files}


def test_local_repo_reads_head_commit_not_uncommitted_files(gitops_repo):
    gitops_repo.write("a.yaml", BACKUP.format(name="a"))
    sha = gitops_repo.commit()
    gitops_repo.write("b.yaml", BACKUP.format(name="b"))  # not committed
    snap = read_repository(str(gitops_repo.path))
    assert snap.commit == sha
    assert names(snap) == {"a.yaml"}
    assert not snap.worktree


def test_worktree_flag_includes_uncommitted_files(gitops_repo):
    gitops_repo.write("a.yaml", BACKUP.format(name="a"))
    sha = gitops_repo.commit()
    gitops_repo.write("b.yaml", BACKUP.format(name="b"))
    snap = read_repository(str(gitops_repo.path), worktree=True)
    assert snap.worktree and snap.commit == sha
    assert names(snap) == {"a.yaml", "b.yaml"}


def test_branches_tags_and_commits_are_read_at_that_ref(gitops_repo):
    gitops_repo.write("a.yaml", BACKUP.format(name="a"))
    first = gitops_repo.commit("first")
    gitops_repo.repo.create_tag("v1")
    gitops_repo.repo.git.checkout("-b", "feature")
    gitops_repo.write("b.yaml", BACKUP.format(name="b"))
    feature = gitops_repo.commit("feature")
    gitops_repo.repo.git.checkout("main")
    assert names(read_repository(str(gitops_repo.path), ref="feature")) == {"a.yaml", "b.yaml"}
    assert read_repository(str(gitops_repo.path), ref="feature").commit == feature
    assert names(read_repository(str(gitops_repo.path), ref="v1")) == {"a.yaml"}
    assert read_repository(str(gitops_repo.path), ref=first[:10]).commit == first


def test_subfolder_recursive_yaml_and_yml_only(gitops_repo):
    gitops_repo.write("manifests/team-a/a.yaml", BACKUP.format(name="a"))
    gitops_repo.write("manifests/team-b/deep/b.yml", BACKUP.format(name="b"))
    gitops_repo.write("manifests/README.md", "# not yaml")
    gitops_repo.write("other/c.yaml", BACKUP.format(name="c"))
    gitops_repo.commit()
    snap = read_repository(str(gitops_repo.path), path="manifests")
    assert names(snap) == {"manifests/team-a/a.yaml", "manifests/team-b/deep/b.yml"}


def test_file_url_clone_default_branch_tag_and_sha_and_cleanup(gitops_repo):
    gitops_repo.write("a.yaml", BACKUP.format(name="a"))
    first = gitops_repo.commit()
    gitops_repo.repo.create_tag("release")
    gitops_repo.write("b.yaml", BACKUP.format(name="b"))
    second = gitops_repo.commit()
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "ctpbackup-git-*")))
    snap = read_repository(gitops_repo.url)
    assert snap.commit == second and names(snap) == {"a.yaml", "b.yaml"}
    assert read_repository(gitops_repo.url, ref="release").commit == first
    assert read_repository(gitops_repo.url, ref="main").commit == second
    assert read_repository(gitops_repo.url, ref=first).commit == first
    after = set(glob.glob(os.path.join(tempfile.gettempdir(), "ctpbackup-git-*")))
    assert after == before, "temporary clones must always be removed"


def test_clone_of_missing_ref_fails_cleanly_and_cleans_up(gitops_repo):
    gitops_repo.write("a.yaml", BACKUP.format(name="a"))
    gitops_repo.commit()
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "ctpbackup-git-*")))
    with pytest.raises(UserError, match="cannot clone"):
        read_repository(gitops_repo.url, ref="no-such-branch")
    with pytest.raises(UserError, match="not found"):
        read_repository(gitops_repo.url, ref="0123456789abcdef0123456789abcdef01234567")
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "ctpbackup-git-*"))) == before


@pytest.mark.parametrize("repo, ref, path, message", [
    ("/does/not/exist", None, "", "does not exist"),
    ("{tmp}", None, "", "not a Git repository"),
    ("{repo}", "nope", "", "ref 'nope' not found"),
    ("{repo}", None, "missing", "does not exist"),
    ("{repo}", None, "../escape", "inside the repository"),
])
def test_user_errors_are_one_clear_line(gitops_repo, tmp_path, repo, ref, path, message):
    gitops_repo.write("a.yaml", BACKUP.format(name="a"))
    gitops_repo.commit()
    (tmp_path / "plain").mkdir()
    repo = repo.format(tmp=tmp_path / "plain", repo=gitops_repo.path)
    with pytest.raises(UserError, match=message):
        read_repository(repo, ref, path)


def test_symlinked_yaml_is_not_followed(gitops_repo, tmp_path):
    outside = tmp_path / "outside.yaml"
    outside.write_text(BACKUP.format(name="outside"))
    gitops_repo.write("a.yaml", BACKUP.format(name="a"))
    os.symlink(outside, gitops_repo.path / "link.yaml")
    gitops_repo.commit()
    assert names(read_repository(str(gitops_repo.path))) == {"a.yaml"}
    assert names(read_repository(str(gitops_repo.path), worktree=True)) == {"a.yaml"}


def test_credentials_in_urls_are_redacted():
    assert redact_url("https://user:s3cr3t@git.example.com/org/repo.git") == "https://***@git.example.com/org/repo.git"
    assert "s3cr3t" not in redact_url("https://x-access-token:s3cr3t@host/r")
