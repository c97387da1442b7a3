"""Dry-run restores: the planned restore of a ControlPlane run against its real target with
`dryRun=All` on every write, and what it would do, tier by tier.

The archive is fetched and checked exactly as `apply` does (record authenticity, size, sha256,
decryption, archive format), then the restore engine runs in its DRY_RUN write mode. Nothing is
recorded in the bucket index and the target keeps nothing: the API server validates and admits each
write without persisting it. No lease is taken (nothing is written to the bucket).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctpbackup.apply.archives import ArchiveRefused, fetch_archive
from ctpbackup.engines import restore as restore_engine
from ctpbackup.engines.restore import OFFLINE, RestoreFailed, RestoreResult, WriteMode
from ctpbackup.engines.restore_order import TIERS, tier_of
from ctpbackup.kube.api import reachable
from ctpbackup.kube.connect import ConnectionSecretUnusable, api_client_for
from ctpbackup.kube.secrets import SecretSource
from ctpbackup.plan.planner import Action
from ctpbackup.rules.reasons import FailureReason, RefusedError
from ctpbackup.store.locations import BackupLocation

#: what a dry run calls each count of the engine's (restored -> "create", failed -> "refuse")
VERBS = (("restored", "create"), ("skipped", "skip"), ("merged", "merge"), ("failed", "refuse"))


class DryRunFailed(RefusedError):
    """The dry run could not run at all (no connection Secret, target not answering, archive refused):
    `reason` as the restore's condition reasons, `message` one line."""


@dataclass(frozen=True)
class DryRunReport:
    """One restore's dry run: the ControlPlane restored into, the Backup restored from, and the
    engine's result (counts per resource, failures with their reasons)."""

    namespace: str
    control_plane: str
    backup: str
    source_control_plane: str
    result: RestoreResult

    def tiers(self) -> list[dict[str, Any]]:
        """Per tier in restore order (tiers with objects only): name, the four counts, how many were
        checked offline, and the refusals' reasons."""
        rows: list[dict[str, Any]] = []
        for index, tier in enumerate(TIERS):
            resources = {k: v for k, v in self.result.counts.items() if _tier(k) == index}
            if not resources:
                continue
            row: dict[str, Any] = {"tier": tier.name}
            for count, verb in VERBS:
                row[verb] = sum(c.get(count, 0) for c in resources.values())
            row["validatedOffline"] = sum(c.get(OFFLINE, 0) for c in resources.values())
            row["refused"] = [f for f in self.result.failures if f.split(" ", 1)[0] in resources]
            rows.append(row)
        return rows

    def totals(self) -> dict[str, int]:
        out = {verb: self.result.total(count) for count, verb in VERBS}
        out["validatedOffline"] = self.result.total(OFFLINE)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": "1", "dryRun": "All", "namespace": self.namespace, "controlPlane": self.control_plane,
                "backup": self.backup, "sourceControlPlane": self.source_control_plane, "totals": self.totals(),
                "tiers": self.tiers(), "counts": self.result.counts, "warnings": list(self.result.warnings)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    def to_text(self) -> str:
        lines = [f"Dry run of the restore of ControlPlane {self.namespace}/{self.control_plane} from Backup "
                 f"{self.backup} (of {self.source_control_plane}): every write sent with dryRun=All; the target "
                 "kept nothing and nothing was recorded.", ""]
        header = f"  {'tier':<28}{'create':>8}{'skip':>8}{'merge':>8}{'refuse':>8}{'offline':>9}"
        lines.append(header)
        for row in self.tiers():
            lines.append(f"  {row['tier']:<28}{row['create']:>8}{row['skip']:>8}{row['merge']:>8}{row['refuse']:>8}"
                         f"{row['validatedOffline']:>9}")
        totals = self.totals()
        lines.append(f"  {'total':<28}{totals['create']:>8}{totals['skip']:>8}{totals['merge']:>8}{totals['refuse']:>8}"
                     f"{totals['validatedOffline']:>9}")
        if totals["validatedOffline"]:
            lines += ["", f"  {totals['validatedOffline']} object(s) are in namespaces or of CRDs this restore creates "
                          "(a dry run persists nothing): checked offline against the archived CRDs and Kubernetes' "
                          "rules, not by the target."]
        for row in self.tiers():
            for reason in row["refused"]:
                lines.append(f"  ! {row['tier']}: {reason}")
        others = [w for w in self.result.warnings if w not in self.result.failures]
        for warning in others:
            lines.append(f"  warning: {warning}")
        return "\n".join([*lines, "", self.headline()]) + "\n"

    def headline(self) -> str:
        totals = self.totals()
        verdict = "would complete" if not totals["refuse"] else "would be PartiallyFailed"
        return (f"Dry run: {totals['create']} to create, {totals['skip']} to skip, {totals['merge']} to merge, "
                f"{totals['refuse']} refused; the restore {verdict}.")


def _tier(resource_key: str) -> int:
    return tier_of(resource_key)


def dry_run_restore(action: Action, locations: dict[tuple[str, str], BackupLocation], desired_control_plane,
                    secrets: SecretSource, workdir: Path | None = None, progress: bool = False,
                    existing: str = "skip") -> DryRunReport:
    """Run the restore `action` (a planned RESTORE) against its target with `dryRun=All`.

    Raises DryRunFailed when it cannot run (connection Secret, unreachable API, archive refused or
    unauthenticated, a whole tier refused: the reasons a real restore would fail with)."""
    source = action.record
    assert source is not None
    try:
        api = api_client_for(desired_control_plane, secrets)
    except ConnectionSecretUnusable as err:
        raise DryRunFailed(err.reason, err.message) from None
    with api:
        if not reachable(api):
            raise DryRunFailed(FailureReason.CONTROL_PLANE_UNREACHABLE,
                               f"the API of control plane {action.namespace}/{action.name} does not answer")
        try:
            with tempfile.TemporaryDirectory(prefix="ctpbackup-dry-run-", dir=workdir) as tmp:
                archive = fetch_archive(locations, source, Path(tmp))
                result = restore_engine.run_restore(api, archive, existing=existing, progress=progress, mode=WriteMode.DRY_RUN,
                                                    label=f"dry run {action.namespace}/{action.name} ← {source.name}")
        except (RestoreFailed, ArchiveRefused) as err:
            raise DryRunFailed(err.reason, err.message) from None
    return DryRunReport(action.namespace, action.name, source.name, source.control_plane, result)
