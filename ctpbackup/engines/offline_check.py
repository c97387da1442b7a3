"""Offline admission of one archived object: what a dry-run restore does for objects the target cannot
dry-run yet.

A dry run (`dryRun=All`) persists nothing, so the namespaces and CRDs a restore creates in its early
tiers do not exist when the later tiers are dry-run: the target would answer 404 for every object in
them. Those objects are checked here instead, with the validation package the emulator enforces
(`kubevalidation`: names, metadata, Secrets and ConfigMaps, custom resources against the OpenAPI v3
schema and CEL rules of their CRD at the archived version). The CRD comes from the archive (or, when
the target already serves the type, from the target).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubevalidation import BadRequest, CompiledSchema, Invalid, Target, admit


@dataclass(frozen=True)
class CheckedType:
    """What a custom resource is checked against: its type at one version, its schema, and whether
    that version has a status subresource (then a create ignores the status)."""

    target: Target
    schema: CompiledSchema | None
    has_status: bool


class OfflineAdmission:
    """Admission of archived objects without a server. `crd_of(resource_key)` returns the CRD that
    defines a type (archived, else the target's; None for built-ins); compiled schemas are cached per
    (resource key, version), so each CRD version is compiled once."""

    def __init__(self, crd_of: Callable[[str], dict | None]):
        self.crd_of = crd_of
        self._types: dict[tuple[str, str], CheckedType | None] = {}

    def custom_type(self, resource_key: str, api_version: str) -> CheckedType | None:
        """The type an object of `resource_key` at `api_version` is checked as; None when no CRD of
        it is known or the CRD does not serve that version."""
        key = (resource_key, api_version)
        if key not in self._types:
            self._types[key] = self._compile(resource_key, api_version)
        return self._types[key]

    def _compile(self, resource_key: str, api_version: str) -> CheckedType | None:
        crd = self.crd_of(resource_key)
        if not isinstance(crd, dict):
            return None
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        group, _, version = api_version.rpartition("/")
        for served in spec.get("versions") or ():
            if served.get("name") != version or group != spec.get("group"):
                continue
            schema = (served.get("schema") or {}).get("openAPIV3Schema")
            target = Target(group, version, str(names.get("kind", "")), str(names.get("plural", "")),
                            spec.get("scope") == "Namespaced", custom=True)
            return CheckedType(target, CompiledSchema(schema) if isinstance(schema, dict) else None,
                               "status" in (served.get("subresources") or {}))
        return None

    def check(self, resource_key: str, obj: dict[str, Any], builtin: Target | None = None) -> str:
        """'' when the object would be admitted on create, else the refusal as the API server words it
        (`Kind "name" is invalid: field: ...`). `builtin` is the served type of a built-in; a custom
        resource is checked against its CRD (refused when no CRD of it serves its apiVersion)."""
        api_version = str(obj.get("apiVersion") or "")
        body = copy.deepcopy(obj)
        schema = None
        if builtin is not None:
            target = builtin
        else:
            checked = self.custom_type(resource_key, api_version)
            if checked is None:
                return f"no CRD in the backup or the target serves {resource_key} at {api_version or '(no apiVersion)'}"
            target, schema = checked.target, checked.schema
            if checked.has_status:
                body.pop("status", None)  # a create ignores it; the restore writes it through /status
        body.setdefault("metadata", {})
        try:
            admit(target, body, None, schema, "Warn")
        except Invalid as err:
            return err.message
        except BadRequest as err:
            return err.message
        return ""
