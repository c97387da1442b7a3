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
