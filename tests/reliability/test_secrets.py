"""No secret ever leaks: distinctive values for the bucket key, the kubeconfig token and Secret data
in the control plane, and none of them in any plan, log line, error, status output or PR markdown."""

from __future__ import annotations

import base64

from kubeemu import EmulatorProcess, EmulatorServer
from tests.fixtures.objectstores import S3_KEY_ID, shared_credentials_file
from tests.fixtures.story import BACKUP, CONTROL_PLANE, RESTORED

BUCKET_SECRET = "BUCKETSECRET-9f8e7d6c5b4a3210-NOLEAK"
TOKEN = "KUBETOKEN-1a2b3c4d5e6f7788-NOLEAK"
PASSWORD = "PASSWORD-abcdef1234567890-NOLEAK"
FORBIDDEN = [BUCKET_SECRET, TOKEN, PASSWORD, base64.b64encode(PASSWORD.encode()).decode()]


def test_the_whole_story_leaks_no_secret(story, s3_server):
    # moto accepts any secret key: use a distinctive one
    (story.secrets / "default" / "bucket-creds" / "creds").write_text(shared_credentials_file(S3_KEY_ID, BUCKET_SECRET))
    source = EmulatorProcess(token=TOKEN).start()
    target = EmulatorServer(token=TOKEN, establish_delay=0.05).start()
    outputs: list[str] = []

    def run(*args: str, check: bool = True) -> None:
        result = story.reconcile(*args, check=check)
        outputs.extend([result.stdout, result.stderr])

    try:
        import json
        import urllib.request

        body = json.dumps({"metadata": {"name": "super-secret-secret"},
                           "data": {"password": base64.b64encode(PASSWORD.encode()).decode()}}).encode()
        urllib.request.urlopen(urllib.request.Request(  # noqa: S310
            source.url + "/api/v1/namespaces/default/secrets", data=body, method="POST",
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}), timeout=10,
            context=source.ssl_context())
        story.connect("ctp1", source)
        story.repo.write("ctp1.yaml", CONTROL_PLANE.format(name="ctp1"))
        story.repo.write("b.yaml", BACKUP.format(name="b1", control_plane="ctp1"))
        story.repo.write("leaky-secret.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: oops}\n"
                                              f"stringData: {{token: {TOKEN}}}\n")
        story.repo.commit("backup, and a Secret committed by mistake")
        for fmt in ("text", "json", "markdown"):
            run("plan", "-o", fmt)
        run("apply")
        story.connect("restored", target)
        story.repo.write("restored.yaml", RESTORED.format(name="restored", source="b1"))
        story.repo.commit("restore")
        run("apply")
        run("status")
        run("status", "-o", "json")
        run("describe", "backup", "b1")
        run("describe", "restore", "restored")
        # error paths: wrong bucket credentials, a control plane that no longer answers
        (story.secrets / "default" / "bucket-creds" / "creds").write_text(
            shared_credentials_file(S3_KEY_ID, BUCKET_SECRET).replace("[default]", "[default]\naws_session_token = x"))
        source.kill()
        story.repo.write("b2.yaml", BACKUP.format(name="b2", control_plane="ctp1"))
        story.repo.commit("a backup that fails")
        run("apply", check=False)
        story.connect("ctp1", source)  # a kubeconfig pointing nowhere, token included
        run("plan", "-o", "markdown", check=False)
    finally:
        source.kill()
        target.stop()
    everything = "\n".join(outputs)
    assert "b1" in everything and "Completed" in everything  # the outputs are real
    for value in FORBIDDEN:
        assert value not in everything, f"secret value leaked: {value[:12]}..."


# -- issue 17, item 10: secrets made of the characters that break parsers and patterns -----------------

import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import urllib.parse  # noqa: E402

import pytest  # noqa: E402

from ctpbackup.desired.gitsource import redact_text, redact_url  # noqa: E402
from ctpbackup.kube.secrets import Redactor  # noqa: E402
from ctpbackup.storage.base import StorageError  # noqa: E402
from ctpbackup.storage.s3 import parse_shared_credentials  # noqa: E402
from tests.fixtures.story import ROOT  # noqa: E402


def nasty(marker: str) -> str:
    """A secret whose every piece between `%`, `@`, `:`, `/`, `#` and spaces carries `marker`, so a
    partial leak (what a pattern that stops at the first `@` lets through) is caught too."""
    return (f"{marker}1%{marker}2%(x)s{marker}3@{marker}4:{marker}5/{marker}6#{marker}7 {marker}8 %%{marker}9")


S3_NASTY = nasty("NOLEAKsa")  # + a second line, below (a continuation line of the credentials file)
# a bearer token ends at its first space on a real API server (the bearertoken authenticator splits the
# Authorization header on spaces), so a usable token has none: `~` stands where the others have spaces
TOKEN_NASTY = nasty("NOLEAKtk").replace(" ", "~")
DATA_NASTY = nasty("NOLEAKsd") + "\n" + nasty("NOLEAKse")
GIT_NASTY = nasty("NOLEAKgt")
KEY_NASTY = b"NOLEAKek%@:/# \nNOLEAKek#@%:/ NL!"  # a raw 32-byte encryption key
MARKERS = ["NOLEAKsa", "NOLEAKsb", "NOLEAKtk", "NOLEAKsd", "NOLEAKse", "NOLEAKgt", "NOLEAKek"]


@pytest.mark.parametrize("secret", [S3_NASTY, "%(here)s", "100%", "a%%b", "p#q;r", " spaces around "])
def test_credential_files_are_parsed_without_interpolation(secret):
    creds = parse_shared_credentials(f"[default]\naws_access_key_id = AKID\naws_secret_access_key = {secret}\n".encode())
    assert creds == {"aws_access_key_id": "AKID", "aws_secret_access_key": secret.strip()}


def test_a_multi_line_secret_is_read_whole_and_a_broken_file_is_not_quoted():
    text = f"[default]\naws_access_key_id = AKID\naws_secret_access_key = {S3_NASTY}\n  {nasty('NOLEAKsb')}\n"
    assert parse_shared_credentials(text.encode())["aws_secret_access_key"] == S3_NASTY + "\n" + nasty("NOLEAKsb")
    with pytest.raises(StorageError, match=r"^the credentials Secret is not an AWS shared-credentials file$"):
        parse_shared_credentials(f"{S3_NASTY}\n[default]\n".encode())  # configparser's error quotes the line


PASSWORD = GIT_NASTY


@pytest.mark.parametrize("url, shown", [
    (f"https://user:{PASSWORD}@git.example.com/org/repo.git", "https://***@git.example.com/org/repo.git"),
    (f"https://user:{urllib.parse.quote(PASSWORD, safe='')}@git.example.com/r.git", "https://***@git.example.com/r.git"),
    (f"https://{urllib.parse.quote(PASSWORD, safe='')}@git.example.com/r.git", "https://***@git.example.com/r.git"),
    (f"https://user:{PASSWORD}\nNOLEAKgtnl@h:8443/r", "https://***@h:8443/r"),
    (f"ssh://git:{PASSWORD}@h/r", "ssh://***@h/r"),
    ("https://git.example.com/org/repo.git", "https://git.example.com/org/repo.git"),
    ("https://[::1]:8443/org/repo.git", "https://[::1]:8443/org/repo.git"),
    ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
])
def test_urls_are_redacted_by_parsing(url, shown):
    assert redact_url(url) == shown


def test_git_messages_lose_the_password_in_every_form():
    url = f"https://user:{urllib.parse.quote(PASSWORD, safe='')}@127.0.0.1:9/r.git"
    message = f"fatal: unable to access '{url}/': {PASSWORD} {urllib.parse.quote(PASSWORD)}"
    assert redact_text(message, url) == "fatal: unable to access 'https://***@127.0.0.1:9/r.git/': *** ***"


def test_the_redactor_scrubs_each_line_and_the_value_of_key_lines():
    redactor = Redactor()
    redactor.add(f"[default]\naws_secret_access_key = {S3_NASTY}\n  {nasty('NOLEAKsb')}\n".encode())
    redactor.add(DATA_NASTY)
    text = redactor.scrub(f"a {S3_NASTY} b {nasty('NOLEAKsb')} c {DATA_NASTY}")
    assert text == "a *** b *** c ***"


def test_nasty_secrets_leak_through_no_output(story, s3_server, tmp_path, monkeypatch):
    """Every output of every command (plan text/json/markdown, apply, status, describe, the JSON logs,
    errors, the metrics file) with secrets made of `%`, `@`, `:`, `/`, `#`, spaces and newlines: the
    bucket secret key (a multi-line value), the kubeconfig token, a Secret in the control plane, the
    encryption key and a Git URL's password. Not one piece of any of them is shown."""
    metrics = tmp_path / "metrics.prom"
    monkeypatch.setenv("CTPBACKUP_METRICS_TEXTFILE", str(metrics))
    creds = story.secrets / "default" / "bucket-creds" / "creds"
    creds.write_text(f"[default]\naws_access_key_id = {S3_KEY_ID}\naws_secret_access_key = {S3_NASTY}\n"
                     f"  {nasty('NOLEAKsb')}\n")
    key = story.secrets / "default" / "backup-key"
    key.mkdir(parents=True)
    (key / "key").write_bytes(KEY_NASTY)
    assert len(KEY_NASTY) == 32
    config = story.repo.path / "config" / "sharedbackupconfig.yaml"
    story.repo.write("config/sharedbackupconfig.yaml", config.read_text().replace(
        "    credentials:\n", "    encryption:\n      secretRef: {name: backup-key}\n    credentials:\n"))
    source = EmulatorProcess(token=TOKEN_NASTY).start()
    target = EmulatorServer(token=TOKEN_NASTY).start()
    outputs: list[str] = []

    def run(*args: str, check: bool = True) -> None:
        result = story.reconcile(*args, check=check)
        outputs.extend([result.stdout, result.stderr])
        if metrics.exists():
            outputs.append(metrics.read_text())

    try:
        import json
        import urllib.request

        body = json.dumps({"metadata": {"name": "nasty"},
                           "data": {"password": base64.b64encode(DATA_NASTY.encode()).decode()}}).encode()
        urllib.request.urlopen(urllib.request.Request(  # noqa: S310 - loopback emulator
            source.url + "/api/v1/namespaces/default/secrets", data=body, method="POST",
            headers={"Authorization": f"Bearer {TOKEN_NASTY}", "Content-Type": "application/json"}), timeout=10,
            context=source.ssl_context())
        story.connect("ctp1", source)
        story.repo.write("ctp1.yaml", CONTROL_PLANE.format(name="ctp1"))
        story.repo.write("b.yaml", BACKUP.format(name="b1", control_plane="ctp1"))
        story.repo.commit("backup")
        for fmt in ("text", "json", "markdown"):
            run("plan", "-o", fmt)
        run("apply")
        story.connect("restored", target)
        story.repo.write("restored.yaml", RESTORED.format(name="restored", source="b1"))
        story.repo.commit("restore")
        run("apply")
        for args in (("status",), ("status", "-o", "json"), ("describe", "backup", "b1"),
                     ("describe", "restore", "restored")):
            run(*args)
        # errors: the control plane gone, then a Git URL with the password as typed and encoded
        source.kill()
        story.repo.write("b2.yaml", BACKUP.format(name="b2", control_plane="ctp1"))
        story.repo.commit("a backup that fails")
        run("apply", check=False)
        run("plan", "-o", "json", check=False)
        for url in (f"https://user:{GIT_NASTY}@127.0.0.1:9/r.git",
                    f"https://user:{urllib.parse.quote(GIT_NASTY, safe='')}@127.0.0.1:9/r.git"):
            for command in (("validate",), ("plan", "-o", "markdown", "--secrets-dir", str(story.secrets))):
                result = subprocess.run(
                    [sys.executable, str(ROOT / "reconcile.py"), *command, "--repo", url, "--log-format", "json"],
                    capture_output=True, text=True, timeout=120, env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
                assert result.returncode == 1 and "cannot clone https://***@127.0.0.1:9/r.git" in result.stderr
                outputs.extend([result.stdout, result.stderr])
    finally:
        source.kill()
        target.stop()
    everything = "\n".join(outputs)
    assert "b1" in everything and "Completed" in everything and "ctpbackup_" in everything  # the outputs are real
    assert [b["phase"] for b in story.status()["backups"]] == ["Completed", "Failed"]
    leaked = [marker for marker in MARKERS if marker in everything]
    assert leaked == [], f"pieces of secrets leaked: {leaked}"
    assert base64.b64encode(DATA_NASTY.encode()).decode() not in everything


@pytest.mark.parametrize("line", [f"aws_secret_access_key: {S3_NASTY}", f"aws_secret_access_key={S3_NASTY}",
                                  f"aws_secret_access_key = {S3_NASTY}\n  NOLEAKsz-second-line"])
def test_bucket_credentials_are_scrubbed_on_their_own_however_the_file_writes_them(tmp_path, line):
    from ctpbackup.desired.model import Credentials, ObjectStorage, SecretKeyRef, SharedBackupConfig
    from ctpbackup.kube.secrets import DirectorySecretSource
    from ctpbackup.store.locations import open_config_bucket

    folder = tmp_path / "default" / "creds"
    folder.mkdir(parents=True)
    (folder / "creds").write_text(f"[default]\naws_access_key_id = AKIDNOLEAK\n{line}\n")
    secrets = DirectorySecretSource(tmp_path)
    config = SharedBackupConfig("default", "c", ObjectStorage(
        "AWS", "bucket", Credentials("Secret", SecretKeyRef("creds", "creds")),
        config={"endpoint": "127.0.0.1:1", "insecure": True, "region": "us-east-1"}))
    open_config_bucket(config, secrets)
    secret = parse_shared_credentials((folder / "creds").read_bytes())["aws_secret_access_key"]
    assert secret.startswith(S3_NASTY)
    assert secrets.redactor.scrub(f"a {secret} b") == "a *** b"
    assert secrets.redactor.scrub(f"a {S3_NASTY} b") == "a *** b"
