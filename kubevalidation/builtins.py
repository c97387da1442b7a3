"""Rules of built-in types beyond `metadata`: what a backup restores most (Secrets, ConfigMaps).

Sources: kubernetes/kubernetes `pkg/apis/core/validation/validation.go` (`ValidateSecret`,
`ValidateSecretUpdate`, `ValidateConfigMap`), `pkg/apis/core/v1/conversion.go` (`stringData` is merged
into `data` and dropped) and Go's `encoding/base64` (a `[]byte` field decodes strictly, with padding:
"illegal base64 data at input byte N", answered as 400 by the decoder, before any validation).
"""

from __future__ import annotations

import base64
import re

from kubevalidation import names
from kubevalidation.errors import BadRequest, FieldError, forbidden, invalid, required

MAX_SECRET_SIZE = 1024 * 1024  #: bytes of decoded data (`core.MaxSecretSize`)
MAX_CONFIG_MAP_SIZE = 1024 * 1024
_B64 = re.compile(r"[A-Za-z0-9+/]")

#: Secret types whose required keys `ValidateSecret` checks
_REQUIRED_KEYS = {
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}


def _base64_error(text: str) -> int:
    """The input byte at which Go's strict StdEncoding gives up (its `CorruptInputError`), or -1."""
    stripped = text.replace("\r", "").replace("\n", "")
    for i, ch in enumerate(stripped):
        if ch == "=":
            # padding: one or two '=' closing the last 4-character quantum, nothing after
            tail = stripped[i:]
            if tail.strip("=") or len(stripped) % 4 or i % 4 < 2:
                return i
            return -1
        if not _B64.match(ch):
            return i
    return len(stripped) - len(stripped) % 4 if len(stripped) % 4 else -1


def decode_secret(obj: dict) -> dict:
    """A Secret as the server stores it: `data` checked as base64 (400 on failure, as the decoder
    answers), `stringData` merged into `data` (it wins) and dropped. Returns a new dict."""
    data = obj.get("data")
    if data is not None and not isinstance(data, dict):
        raise BadRequest('Secret in version "v1" cannot be handled as a Secret: json: cannot unmarshal '
                         f"{type(data).__name__} into Go struct field Secret.data of type map[string][]uint8")
    for value in (data or {}).values():
        if value is None:
            continue
        if not isinstance(value, str):
            raise BadRequest('Secret in version "v1" cannot be handled as a Secret: json: cannot unmarshal '
                             f"{type(value).__name__} into Go value of type []uint8")
        at = _base64_error(value)
        if at >= 0:
            raise BadRequest(f'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte {at}')
    string_data = obj.get("stringData")
    if string_data is None:
        return obj
    out = dict(obj)
    if not isinstance(string_data, dict) or not all(isinstance(v, str) for v in string_data.values()):
        raise BadRequest('Secret in version "v1" cannot be handled as a Secret: stringData must be a map of strings')
    merged = dict(data or {})
    for key, value in string_data.items():
        merged[key] = base64.b64encode(value.encode()).decode()
    out["data"] = merged
    out.pop("stringData")
    return out


def validate_secret(obj: dict, old: dict | None) -> list[FieldError]:
    errs: list[FieldError] = []
    data = obj.get("data") or {}
    total = 0
    for key, value in data.items():
        errs.extend(invalid("data[" + key + "]", key, m) for m in names.is_config_map_key(key))
        total += len(base64.b64decode(value or ""))
    if total > MAX_SECRET_SIZE:
        errs.append(FieldError("FieldValueTooLong", "data", "", f"may not be more than {MAX_SECRET_SIZE} bytes"))
    kind = obj.get("type") or "Opaque"
    for key in _REQUIRED_KEYS.get(kind, ()):
        if key not in data:
            errs.append(required(f"data[{key}]"))
    if kind == "kubernetes.io/service-account-token" and \
            not ((obj.get("metadata") or {}).get("annotations") or {}).get("kubernetes.io/service-account.name"):
        errs.append(required("metadata.annotations[kubernetes.io/service-account.name]"))
    if kind == "kubernetes.io/basic-auth" and "username" not in data and "password" not in data:
        errs.append(required("data[username]"))
    if old is not None:
        if (old.get("type") or "Opaque") != kind:
            errs.append(invalid("type", kind, "field is immutable"))
        if old.get("immutable") is True:
            if obj.get("immutable") is not True:
                errs.append(forbidden("immutable", "field is immutable when `immutable` is set"))
            if (old.get("data") or {}) != data:
                errs.append(forbidden("data", "field is immutable when `immutable` is set"))
    return errs


def validate_config_map(obj: dict, old: dict | None) -> list[FieldError]:
    errs: list[FieldError] = []
    data, binary = obj.get("data") or {}, obj.get("binaryData") or {}
    total = 0
    for key, value in data.items():
        errs.extend(invalid("data[" + key + "]", key, m) for m in names.is_config_map_key(key))
        if key in binary:
            errs.append(invalid("data[" + key + "]", key, "duplicate of key present in binaryData"))
        total += len(value.encode()) if isinstance(value, str) else 0
    for key in binary:
        errs.extend(invalid("binaryData[" + key + "]", key, m) for m in names.is_config_map_key(key))
    if total > MAX_CONFIG_MAP_SIZE:
        errs.append(FieldError("FieldValueTooLong", "", "", f"may not be more than {MAX_CONFIG_MAP_SIZE} bytes"))
    if old is not None and old.get("immutable") is True:
        if obj.get("immutable") is not True:
            errs.append(forbidden("immutable", "field is immutable when `immutable` is set"))
        if (old.get("data") or {}) != data or (old.get("binaryData") or {}) != binary:
            errs.append(forbidden("data", "field is immutable when `immutable` is set"))
    return errs


#: (group, plural) -> type-specific rules (create: old is None)
TYPE_RULES = {("", "secrets"): validate_secret, ("", "configmaps"): validate_config_map}
