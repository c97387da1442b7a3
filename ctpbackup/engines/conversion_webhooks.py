"""Custom resources whose CRD converts through a webhook wait until the provider serving it is Healthy.

A CRD with `spec.conversion.strategy: Webhook` (a provider-upjet CRD that serves v1beta1 and stores
v1beta2) has every read and write of its objects at a non-storage version sent to the provider's
webhook; until that provider runs, the API server refuses them, and a provider that never becomes
Healthy would leave them half-written. So before the first object of such a CRD is written, the
restore waits until the Provider that owns the CRD reports `Healthy` True (bounded); on a timeout
those objects fail with the reason, and the restore is PartiallyFailed (retried by the next run).

The owning Provider is found from the archived CRD's ownerReferences, as Crossplane's package
manager sets them in a running install: a `Provider` reference (pkg.crossplane.io), or else the
controller `ProviderRevision`, whose own controller reference names its Provider (read from the
archived revision, else from the target's).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ctpbackup.kube.api import KubeAPI, KubeError, ResourceType

PKG_GROUP = "pkg.crossplane.io"
PROVIDERS = ResourceType(PKG_GROUP, "v1", "providers", "Provider", False, ("get",), True)
REVISIONS = ResourceType(PKG_GROUP, "v1", "providerrevisions", "ProviderRevision", False, ("get",), True)
CRD_KEY = "customresourcedefinitions.apiextensions.k8s.io"
REVISION_KEY = "providerrevisions.pkg.crossplane.io"


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def _refs(obj: dict) -> list[dict]:
    return [r for r in (obj.get("metadata") or {}).get("ownerReferences") or () if isinstance(r, dict)]


def _provider_ref(refs: list[dict]) -> str:
    return next((str(r.get("name", "")) for r in refs
                 if r.get("kind") == "Provider" and _group(str(r.get("apiVersion", ""))) == PKG_GROUP), "")


@dataclass
class ConversionWebhooks:
    """What the archive says about webhook-converted CRDs, gathered in one pass over its objects
    (`see(resource_key, obj)`), then resolved to the Provider each one waits for."""

    #: resource key ("instances.ec2.aws.upbound.io") -> (CRD name, its archived ownerReferences)
    crds: dict[str, tuple[str, list[dict]]] = field(default_factory=dict)
    #: archived ProviderRevisions: uid and name -> the name of the Provider that owns it
    revision_owner: dict[str, str] = field(default_factory=dict)

    def see(self, resource_key: str, obj: dict, old_uid: str = "") -> None:
        if resource_key == CRD_KEY:
            spec = obj.get("spec") or {}
            if (spec.get("conversion") or {}).get("strategy") == "Webhook":
                key = f"{(spec.get('names') or {}).get('plural', '')}.{spec.get('group', '')}"
                self.crds[key] = (str((obj.get("metadata") or {}).get("name", key)), _refs(obj))
        elif resource_key == REVISION_KEY:
            owner = _provider_ref(_refs(obj))
            if owner:
                self.revision_owner[str((obj.get("metadata") or {}).get("name", ""))] = owner
                if old_uid:
                    self.revision_owner[old_uid] = owner

    def provider_of(self, kube: KubeAPI, resource_key: str) -> tuple[str, str]:
        """(Provider name, "") for a webhook-converted resource; ("", why) when its CRD names no
        Provider that can be found; ("", "") when the resource needs no wait."""
        if resource_key not in self.crds:
            return "", ""
        crd_name, refs = self.crds[resource_key]
        provider = _provider_ref(refs)
        if provider:
            return provider, ""
        revisions = [r for r in refs if r.get("kind") == "ProviderRevision" and _group(str(r.get("apiVersion", ""))) == PKG_GROUP]
        for ref in sorted(revisions, key=lambda r: not r.get("controller")):
            owner = self.revision_owner.get(str(ref.get("uid", ""))) or self.revision_owner.get(str(ref.get("name", "")))
            if not owner:
                try:
                    owner = _provider_ref(_refs(kube.get(REVISIONS, None, str(ref.get("name", ""))) or {}))
                except KubeError:
                    owner = ""
            if owner:
                return owner, ""
        if revisions:
            return "", (f"its CRD {crd_name} converts through a webhook, and the Provider of ProviderRevision "
                        f"{revisions[0].get('name')} is neither in the backup nor in the control plane; not written")
        return "", ""  # a webhook not served by a Crossplane provider: nothing of ours to wait for

    def wait_healthy(self, kube: KubeAPI, providers: set[str], seconds: float) -> dict[str, str]:
        """Poll each Provider until its `Healthy` condition is True, all within `seconds` (backing off
        from 0.05 s to 1 s). Returns the ones that were not: name -> what was last seen. A read that
        fails counts as not Healthy yet; it is retried until the deadline."""
        deadline = time.monotonic() + seconds
        last: dict[str, str] = {}
        pending = set(providers)
        delay = 0.05
        while pending:
            for name in sorted(pending):
                try:
                    provider = kube.get(PROVIDERS, None, name)
                except KubeError as err:
                    last[name] = err.message
                    continue
                if provider is None:
                    last[name] = "not found"
                    continue
                healthy = next((c for c in (provider.get("status") or {}).get("conditions") or ()
                                if isinstance(c, dict) and c.get("type") == "Healthy"), None)
                if healthy is not None and healthy.get("status") == "True":
                    pending.discard(name)
                    last.pop(name, None)
                else:
                    last[name] = (f"Healthy={healthy.get('status')} {healthy.get('reason', '')}".rstrip()
                                  if healthy else "no Healthy condition")
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
        return {name: last.get(name, "not Healthy") for name in pending}
