"""The emulator's door to `kubevalidation`: each write goes through `Admission.admit` once, so the
emulator refuses what a real API server refuses (see the README's validation section).

Schemas are compiled once per CRD version (keyed by the CRD's uid, generation and version) so
repeated writes of custom resources pay only for the walk over the object.
"""

from __future__ import annotations

from kubeemu.resources import Resource
from kubevalidation import BadRequest, CompiledSchema, Invalid, Target, admit
from kubevalidation.objects import check_type_meta

CRD_KEY = ("apiextensions.k8s.io", "customresourcedefinitions")


class Admission:
    """Per-store validation state: the compiled schemas of the CRDs it serves."""

    def __init__(self) -> None:
        self.schemas: dict[tuple[str, int, str], CompiledSchema | None] = {}
        self.locations: dict[tuple[Resource, bool], Target] = {}

    def _schema(self, crd: dict, version: str) -> CompiledSchema | None:
        meta = crd.get("metadata") or {}
        key = (str(meta.get("uid", "")), int(meta.get("generation") or 0), version)
        if key not in self.schemas:
            if len(self.schemas) > 4096:
                self.schemas.clear()
            found = None
            for served in (crd.get("spec") or {}).get("versions") or ():
                if served.get("name") == version:
                    found = ((served.get("schema") or {}).get("openAPIV3Schema"))
            self.schemas[key] = CompiledSchema(found) if isinstance(found, dict) else None
        return self.schemas[key]

    def admit(self, store, res: Resource, obj: dict, old: dict | None, subresource: str = "",
              field_validation: str = "Warn", warnings: list[str] | None = None) -> dict:
        """The object to store, or ApiError (400/422) with the real server's Status body."""
        from kubeemu.store import ApiError  # the store imports this module

        crd = store.tables[CRD_KEY].objects.get(f"/{res.plural}.{res.group}") if "." in res.group else None
        target = self.locations.get((res, crd is not None))
        if target is None:
            target = self.locations[(res, crd is not None)] = Target(res.group, res.version, res.kind, res.plural,
                                                                   res.namespaced, custom=crd is not None)
        try:
            schema = self._schema(crd, res.version) if crd is not None else None
            # the store keeps objects at the storage version; admission sees them as written, through the URL's
            stored_as = obj.get("apiVersion")
            view = obj if stored_as == res.api_version else {**obj, "apiVersion": res.api_version}
            admitted = admit(target, view, old, schema, field_validation or "Warn", subresource)
            if stored_as != res.api_version:
                admitted.obj["apiVersion"] = stored_as
        except Invalid as err:
            status = err.status()
            raise ApiError(422, "Invalid", status["message"], status["details"]) from None
        except BadRequest as err:
            raise ApiError(400, "BadRequest", err.message) from None
        if warnings is not None:
            warnings.extend(admitted.warnings)
        return admitted.obj


def check_body(res: Resource, body: object) -> None:
    """A request body's apiVersion/kind against the URL's (400 BadRequest / 422 Invalid)."""
    from kubeemu.store import ApiError

    try:
        check_type_meta(Target(res.group, res.version, res.kind, res.plural, res.namespaced), body)
    except Invalid as err:
        status = err.status()
        raise ApiError(422, "Invalid", status["message"], status["details"]) from None
    except BadRequest as err:
        raise ApiError(400, "BadRequest", err.message) from None
