"""What a real kube-apiserver refuses, as a library: names, metadata, Secrets, CRDs, custom resources
against their OpenAPI v3 schemas and CEL rules. Depends on neither `ctpbackup` nor `kubeemu`, so the
emulator enforces it and the product can check a backup's objects with it.

    from kubevalidation import Target, admit, CompiledSchema
    admitted = admit(Target("", "v1", "ConfigMap", "configmaps", namespaced=True), obj)

Errors are `Invalid` (422, with `.status()` the real `Status` body) and `BadRequest` (400).
"""

from __future__ import annotations

import importlib
from typing import Any

#: the public names and their modules, imported on first use (PEP 562): `kubevalidation.regex` alone,
#: which the product's manifest checks use, does not load the schema and CEL machinery (~70 ms)
_PUBLIC = {"BadRequest": "errors", "FieldError": "errors", "Invalid": "errors", "Admitted": "objects",
           "Target": "objects", "admit": "objects", "check_type_meta": "objects", "CompiledSchema": "schema"}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'kubevalidation' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"kubevalidation.{_PUBLIC[name]}"), name)
    globals()[name] = value
    return value
