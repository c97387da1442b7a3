"""What a real kube-apiserver refuses, as a library: names, metadata, Secrets, CRDs, custom resources
against their OpenAPI v3 schemas and CEL rules. Depends on neither `ctpbackup` nor `kubeemu`, so the
emulator enforces it and the product can check a backup's objects with it.

    from kubevalidation import Target, admit, CompiledSchema
    admitted = admit(Target("", "v1", "ConfigMap", "configmaps", namespaced=True), obj)

Errors are `Invalid` (422, with `.status()` the real `Status` body) and `BadRequest` (400).
"""

from kubevalidation.errors import BadRequest, FieldError, Invalid
from kubevalidation.objects import Admitted, Target, admit, check_type_meta
from kubevalidation.schema import CompiledSchema

__all__ = ["Admitted", "BadRequest", "CompiledSchema", "FieldError", "Invalid", "Target", "admit", "check_type_meta"]
