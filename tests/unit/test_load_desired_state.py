"""`load_desired_state` as a whole: what it leaves behind in the process."""

from __future__ import annotations

import gc

from ctpbackup.desired.manifests import ManifestFile, load_desired_state


def test_loading_pauses_the_cycle_collector_and_restores_it():
    seen = []
    gc.callbacks.append(lambda phase, info: seen.append(phase))
    try:
        text = "".join(f"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}}}\ndata: {{a: b}}\n" for i in range(3000))
        result = load_desired_state([ManifestFile("all.yaml", text.encode())], "abc")
        assert (result.skipped, gc.isenabled(), seen) == ({"v1 ConfigMap": 3000}, True, [])
        gc.disable()
        load_desired_state([ManifestFile("all.yaml", b"")], "abc")
        assert gc.isenabled() is False  # left as it was found
    finally:
        gc.enable()
        gc.callbacks.pop()
        gc.unfreeze()
