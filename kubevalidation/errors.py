"""Field errors shaped like apimachinery's `field.Error`, and the `Status` a refusal is answered with.

Source: k8s.io/apimachinery `pkg/util/validation/field/errors.go` (`Error()`, `ErrorBody()`, the error
types and their words) and `pkg/api/errors/errors.go` (`NewInvalid`: the message
`<Kind>.<group> "<name>" is invalid: <errors>`, one cause per field error).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

#: error type -> the words apimachinery prints for it
_WORDS = {
    "FieldValueNotFound": "Not found",
    "FieldValueRequired": "Required value",
    "FieldValueDuplicate": "Duplicate value",
    "FieldValueInvalid": "Invalid value",
    "FieldValueNotSupported": "Unsupported value",
    "FieldValueForbidden": "Forbidden",
    "FieldValueTooLong": "Too long",
    "FieldValueTooMany": "Too many",
    "FieldValueTypeInvalid": "Invalid value",
    "InternalError": "Internal error",
}
_WITHOUT_VALUE = {"FieldValueRequired", "FieldValueForbidden", "FieldValueTooLong", "InternalError"}
OMIT = object()  #: a value not printed (apimachinery's `omitValue`)


def _go_value(value: object) -> str:
    """A bad value printed as Go's `%v` (numbers, booleans), `%q` (strings) or JSON (anything else)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


@dataclass(frozen=True)
class FieldError:
    """One field's failure. `type` is the cause reason (`FieldValueInvalid`, ...), `field` the JSON path
    as Kubernetes prints it (`metadata.labels`, `spec.ports[0].port`)."""

    type: str
    field: str
    value: object = OMIT
    detail: str = ""

    def body(self) -> str:
        """The message without the field (a cause's `message`)."""
        words = _WORDS[self.type]
        text = words if self.type in _WITHOUT_VALUE or self.value is OMIT else f"{words}: {_go_value(self.value)}"
        return f"{text}: {self.detail}" if self.detail else text

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}"


def invalid(field: str, value: object, detail: str) -> FieldError:
    return FieldError("FieldValueInvalid", field, value, detail)


def required(field: str, detail: str = "") -> FieldError:
    return FieldError("FieldValueRequired", field, OMIT, detail)


def forbidden(field: str, detail: str) -> FieldError:
    return FieldError("FieldValueForbidden", field, OMIT, detail)


def not_supported(field: str, value: object, supported: list[str]) -> FieldError:
    detail = "supported values: " + ", ".join(json.dumps(str(v)) for v in supported) if supported else ""
    return FieldError("FieldValueNotSupported", field, value, detail)


def too_long(field: str, max_length: int) -> FieldError:
    unit = "byte" if max_length == 1 else "bytes"
    return FieldError("FieldValueTooLong", field, OMIT, f"may not be more than {max_length} {unit}")


def too_many(field: str, actual: int, max_items: int) -> FieldError:
    unit = "item" if max_items == 1 else "items"
    return FieldError("FieldValueTooMany", field, actual, f"must have at most {max_items} {unit}")


def type_invalid(field: str, value: object, detail: str) -> FieldError:
    return FieldError("FieldValueTypeInvalid", field, value, detail)


class Invalid(Exception):  # noqa: N818 - named after the Status reason it becomes
    """An object refused with 422 `Invalid`: `kind`/`group`/`name` name the object, `errors` the fields."""

    def __init__(self, kind: str, group: str, name: str, errors: list[FieldError]):
        self.kind, self.group, self.name, self.errors = kind, group, name, list(errors)
        super().__init__(self.message)

    @property
    def message(self) -> str:
        qualified = f"{self.kind}.{self.group}" if self.group else self.kind
        listed = str(self.errors[0]) if len(self.errors) == 1 else "[" + ", ".join(str(e) for e in self.errors) + "]"
        return f"{qualified} {json.dumps(self.name)} is invalid: {listed}"

    def status(self) -> dict:
        """The `Status` body a real API server answers with (code 422, reason `Invalid`)."""
        details: dict = {"name": self.name, "kind": self.kind}
        if self.group:
            details["group"] = self.group
        details["causes"] = [{"reason": e.type, "message": e.body(), "field": e.field} for e in self.errors]
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": self.message,
                "reason": "Invalid", "details": details, "code": 422}


class BadRequest(Exception):  # noqa: N818 - named after the Status reason it becomes
    """A body refused with 400 `BadRequest` (it could not be decoded as the URL's type)."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)

    def status(self) -> dict:
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": self.message,
                "reason": "BadRequest", "details": {}, "code": 400}
