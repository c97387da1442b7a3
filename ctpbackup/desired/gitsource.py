"""Read the manifests of one commit of a Git repository (GitPython), and the commit's SHA.

A local repository is read from its object database at the committed ref, so uncommitted edits never
leak into a run (unless `--worktree` asks for them). A URL is cloned shallow into a temporary folder
that is removed whatever happens. Credentials come from the environment and never reach messages.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote, unquote, urlsplit

import git

from ctpbackup.desired.problems import UserError

log = logging.getLogger(__name__)

_SHA = re.compile(r"^[0-9a-f]{7,40}$")
_URL = re.compile(r"^(https?|ssh|git|file)://|^[\w.-]+@[\w.-]+:")

#: the files read from a repository; every other file is left where it is
YAML_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class ManifestFile:
    """One YAML file of the repository, as committed: its bytes are parsed by
    `ctpbackup.desired.manifests`, which this module never imports."""

    path: str  # relative to the repository root, '/'-separated
    content: bytes


@dataclass(frozen=True)
class Snapshot:
    """The manifests of one commit (or of the work tree), and where they came from."""

    repo: str
    ref: str
    commit: str
    path: str
    worktree: bool
    files: tuple[ManifestFile, ...]

    @property
    def short_commit(self) -> str:
        return self.commit[:7]


def _userinfo(url: str) -> str:
    """The userinfo of a `scheme://` URL, found by parsing it (RFC 3986: the authority ends at the first
    `/`, `?` or `#`; the userinfo is what precedes its last `@`). When the parse cannot be trusted to
    cover a password (an unencoded `/`, `?` or `#` in it ends the authority early, leaving a `:` not
    followed by a port; control characters or outer spaces, which the parser drops), everything up
    to the URL's last `@` is taken as userinfo, so nothing of it is shown."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme or "@" not in rest:
        return ""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a ':' not followed by a port number
    except ValueError:
        parts = None
    if (parts is None or url != url.strip() or any(c in url for c in "\t\r\n")
            or ("@" not in parts.netloc and ":" in parts.netloc.rpartition("]")[2])):
        return rest[:rest.rfind("@")]
    return parts.netloc.rpartition("@")[0]


def redact_url(url: str) -> str:
    """`https://user:token@host/x` -> `https://***@host/x`, by parsing the URL (not a pattern), so a
    password holding `@`, `:`, `/`, `#`, `%` or spaces never shows in part."""
    userinfo = _userinfo(url)
    if not userinfo:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest[len(userinfo) + 1:]}"


#: the shortest piece of a password scrubbed on its own from git's messages
MIN_PIECE = 4


def redact_text(text: str, url: str) -> str:
    """`text` (say, git's stderr) with `url` redacted, and its userinfo and password removed in every
    form git may print them (as given, percent-decoded, and percent-encoded)."""
    userinfo = _userinfo(url)
    if not userinfo:
        return text
    text = text.replace(url, redact_url(url))
    user, _, password = userinfo.partition(":")
    plain = unquote(password)
    values = {userinfo, unquote(userinfo), password, plain, quote(plain, safe=""), quote(plain)} - {"", user, unquote(user)}
    # git may split the userinfo at another `@` or `:` than we do and print the rest of the password
    # inside its own URL: every piece of it between delimiters goes too (pieces too short to be
    # secret on their own, under MIN_PIECE characters, would scrub ordinary words)
    pieces = {p for p in re.split(r"[^A-Za-z0-9_.~-]+", plain) if len(p) >= MIN_PIECE} - {user}
    for value in sorted(values | pieces, key=len, reverse=True):
        text = text.replace(value, "***")
    return text


def is_url(repo: str) -> bool:
    return bool(_URL.match(repo))


def read_repository(repo: str, ref: str | None = None, path: str = "", worktree: bool = False) -> Snapshot:
    """The YAML files under `path` at `ref` (default: the remote's default branch / local HEAD)."""
    sub = _clean_subpath(path)
    if is_url(repo):
        if worktree:
            raise UserError("--worktree applies to a local repository, not a URL")
        return _read_remote(repo, ref, sub)
    local = Path(repo).expanduser()
    if not local.exists():
        raise UserError(f"repository {repo!r} does not exist (a local path or a Git URL: https://, ssh://, file://)")
    try:
        repository = git.Repo(local)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise UserError(f"{repo!r} is not a Git repository") from None
    with repository:
        if worktree:
            return _read_worktree(repository, repo, sub)
        return _read_commit(repository, repo, ref or "HEAD", sub)


def _clean_subpath(path: str) -> str:
    if not path or path in (".", "/"):
        return ""
    pure = PurePosixPath(path.strip("/"))
    if pure.is_absolute() or ".." in pure.parts:
        raise UserError(f"--path {path!r} must be a folder inside the repository")
    return str(pure)


def _read_commit(repository: git.Repo, label: str, ref: str, sub: str) -> Snapshot:
    try:
        commit = repository.commit(ref)
    except (git.BadName, ValueError, git.GitCommandError):
        raise UserError(f"ref {ref!r} not found in {redact_url(label)}") from None
    tree = commit.tree
    if sub:
        try:
            tree = tree / sub
        except KeyError:
            raise UserError(f"--path {sub!r} does not exist at {ref} ({commit.hexsha[:7]})") from None
        if tree.type != "tree":
            raise UserError(f"--path {sub!r} is not a folder")
    files = []
    for item in tree.traverse():
        if item.type == "blob" and item.path.endswith(YAML_SUFFIXES):
            if item.mode == 0o120000:  # a symlink: its target is not ours to read
                log.debug("%s: symlink skipped", item.path)
                continue
            files.append(ManifestFile(item.path, item.data_stream.read()))
    return Snapshot(redact_url(label), ref, commit.hexsha, sub, False, tuple(sorted(files, key=lambda f: f.path)))


def _read_worktree(repository: git.Repo, label: str, sub: str) -> Snapshot:
    root = Path(repository.working_tree_dir or ".")
    base = root / sub
    if not base.is_dir():
        raise UserError(f"--path {sub!r} is not a folder of the work tree")
    try:
        head = repository.head.commit.hexsha
    except ValueError:
        head = "0" * 40  # a repository with no commit yet
    files = []
    for file in sorted(_walk(base)):
        rel = file.relative_to(root).as_posix()
        files.append(ManifestFile(rel, file.read_bytes()))
    return Snapshot(label, "worktree", head, sub, True, tuple(files))


def _walk(base: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            file = Path(dirpath) / name
            if name.endswith(YAML_SUFFIXES) and not file.is_symlink():
                yield file


def _git_env() -> dict[str, str]:
    """Credentials for the clone, from the environment, never on a command line.

    GIT_TOKEN: an HTTPS token sent as a basic-auth header (GitHub: x-access-token).
    GIT_SSH_KEY_FILE / GIT_KNOWN_HOSTS_FILE: an SSH deploy key and the hosts it may talk to.
    """
    env: dict[str, str] = {"GIT_TERMINAL_PROMPT": "0"}
    token = os.environ.get("GIT_TOKEN")
    if token:
        user = os.environ.get("GIT_TOKEN_USER", "x-access-token")
        header = base64.b64encode(f"{user}:{token}".encode()).decode()
        env.update({"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
                    "GIT_CONFIG_VALUE_0": f"Authorization: Basic {header}"})
    key = os.environ.get("GIT_SSH_KEY_FILE")
    if key:
        known = os.environ.get("GIT_KNOWN_HOSTS_FILE", "")
        strict = f"-o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes" if known else "-o StrictHostKeyChecking=yes"
        env["GIT_SSH_COMMAND"] = f"ssh -i {key} -o IdentitiesOnly=yes {strict}"
    return env


def git_reason(err: git.GitCommandError) -> str:
    """Git's own reason for a failed command: its first `fatal:` / `error:` line (GitPython wraps
    stderr as `\n  stderr: '...'`, so its last line is a lone quote), else the exit status."""
    text = str(err.stderr or "").strip()
    text = text.removeprefix("stderr:").strip().removeprefix("'").removesuffix("'")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        for prefix in ("fatal:", "error:"):
            if line.startswith(prefix):
                return line[len(prefix):].strip()
    meaningful = [line for line in lines if not line.startswith("Cloning into")]
    return meaningful[0] if meaningful else f"git exited with status {err.status}"


def _read_remote(url: str, ref: str | None, sub: str) -> Snapshot:
    tmp = tempfile.mkdtemp(prefix="ctpbackup-git-")
    env = _git_env()
    try:
        try:
            if ref and _SHA.match(ref):
                repository = _fetch_commit(url, ref, tmp, env)
            else:
                kwargs = {"branch": ref} if ref else {}
                repository = git.Repo.clone_from(url, tmp, depth=1, single_branch=True, no_checkout=True, env=env, **kwargs)
        except git.GitCommandError as err:
            detail = redact_text(git_reason(err), url)
            raise UserError(f"cannot clone {redact_url(url)}{f' at {ref}' if ref else ''}: {detail}") from None
        with repository:
            snap = _read_commit(repository, url, "HEAD", sub)
            return Snapshot(redact_url(url), ref or "(default branch)", snap.commit, sub, False, snap.files)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _fetch_commit(url: str, sha: str, tmp: str, env: dict[str, str]) -> git.Repo:
    """A commit by SHA: fetched alone where the server allows it, else from a full clone."""
    repository = git.Repo.init(tmp)
    repository.create_remote("origin", url)
    try:
        repository.git.fetch("origin", sha, depth=1, env=env)
        repository.git.update_ref("HEAD", "FETCH_HEAD")
        return repository
    except git.GitCommandError:
        log.debug("server refused a shallow fetch of %s; fetching full history", sha)
    repository.git.fetch("origin", "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*", env=env)
    try:
        full = repository.git.rev_parse("--verify", f"{sha}^{{commit}}")
    except git.GitCommandError:
        repository.close()
        raise UserError(f"commit {sha} not found in {redact_url(url)}") from None
    repository.git.update_ref("HEAD", full)
    return repository
