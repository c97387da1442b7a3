"""The string formats apiextensions-apiserver checks; any other format is ignored, as there.

Source: k8s.io/apiextensions-apiserver `pkg/apiserver/validation/formats.go` (the supported list; unknown
formats are stripped before validation) and kube-openapi's `strfmt` checks for each of them.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable
from datetime import date

from kubevalidation import names

_UUID = re.compile(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$")
_UUID3 = re.compile(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$")
_UUID4 = re.compile(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$")
_UUID5 = re.compile(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$")
_BSON = re.compile(r"^[0-9a-fA-F]{24}$")
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")
_HOSTNAME = re.compile(r"^([a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?)*\.?$")
_MAC = re.compile(r"^([0-9A-Fa-f]{2}([:-]))([0-9A-Fa-f]{2}\2){4}([0-9A-Fa-f]{2}\2){0,2}([0-9A-Fa-f]{2}\2){0,12}[0-9A-Fa-f]{2}$"
                  r"|^([0-9A-Fa-f]{4}\.){2,9}[0-9A-Fa-f]{4}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_GO_DURATION = re.compile(r"^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+$|^0$")
_SCALA_DURATION = re.compile(r"^\d+\s*(ns|nanos?|nanoseconds?|us|micros?|microseconds?|ms|millis?|milliseconds?|s|secs?|"
                             r"seconds?|m|mins?|minutes?|h|hours?|d|days?|w|wk|weeks?)$")
_HEXCOLOR = re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_RGBCOLOR = re.compile(r"^rgb\(\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*,\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*,"
                       r"\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*\)$")
_SSN = re.compile(r"^\d{3}[- ]?\d{2}[- ]?\d{4}$")
_ISBN10 = re.compile(r"^(?:[0-9]{9}X|[0-9]{10})$")
_ISBN13 = re.compile(r"^(?:[0-9]{13})$")


def _ip(version: int) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        try:
            return ipaddress.ip_address(value).version == version
        except ValueError:
            return False
    return check


def _cidr(value: str) -> bool:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return "/" in value


def _uri(value: str) -> bool:
    # net/url.ParseRequestURI: an absolute URI (scheme:...) or an absolute path
    return bool(re.fullmatch(r"^[A-Za-z][A-Za-z0-9+.-]*:\S*$", value) or value.startswith("/")) and " " not in value


def _byte(value: str) -> bool:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _date(value: str) -> bool:
    if not re.fullmatch(r"^\d{4}-\d{2}-\d{2}$", value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _isbn(value: str) -> bool:
    digits = re.sub(r"[\s-]", "", value)
    return bool(_ISBN10.fullmatch(digits) or _ISBN13.fullmatch(digits))


def _creditcard(value: str) -> bool:
    digits = re.sub(r"\D", "", value)
    return bool(re.fullmatch(r"^(?:4[0-9]{12}(?:[0-9]{3})?|5[1-5][0-9]{14}|6(?:011|5[0-9][0-9])[0-9]{12}|3[47][0-9]{13}|"
                         r"3(?:0[0-5]|[68][0-9])[0-9]{11}|(?:2131|1800|35\d{3})\d{11})$", digits))


#: format name (dashes removed, as go-openapi normalizes) -> check
CHECKS: dict[str, Callable[[str], bool]] = {
    "bsonobjectid": lambda v: bool(_BSON.fullmatch(v)),
    "uri": _uri,
    "email": lambda v: bool(_EMAIL.fullmatch(v)),
    "hostname": lambda v: len(v) <= 255 and bool(_HOSTNAME.fullmatch(v)),
    "ipv4": _ip(4),
    "ipv6": _ip(6),
    "cidr": _cidr,
    "mac": lambda v: bool(_MAC.fullmatch(v)),
    "uuid": lambda v: bool(_UUID.fullmatch(v)),
    "uuid3": lambda v: bool(_UUID3.fullmatch(v)),
    "uuid4": lambda v: bool(_UUID4.fullmatch(v)),
    "uuid5": lambda v: bool(_UUID5.fullmatch(v)),
    "isbn": _isbn,
    "isbn10": lambda v: bool(_ISBN10.fullmatch(re.sub(r"[\s-]", "", v))),
    "isbn13": lambda v: bool(_ISBN13.fullmatch(re.sub(r"[\s-]", "", v))),
    "creditcard": _creditcard,
    "ssn": lambda v: bool(_SSN.fullmatch(v)),
    "hexcolor": lambda v: bool(_HEXCOLOR.fullmatch(v)),
    "rgbcolor": lambda v: bool(_RGBCOLOR.fullmatch(v)),
    "byte": _byte,
    "password": lambda v: True,
    "date": _date,
    "duration": lambda v: bool(_GO_DURATION.fullmatch(v) or _SCALA_DURATION.fullmatch(v)),
    "datetime": lambda v: bool(_DATETIME.fullmatch(v)),
    "k8sshortname": lambda v: not names.is_dns1123_label(v),
    "k8slongname": lambda v: not names.is_dns1123_subdomain(v),
}


def check_for(fmt: str | None, schema_type: str | None) -> Callable[[str], bool] | None:
    """The check of a `format` on a string schema, or None when the server ignores that format."""
    if not fmt or schema_type not in (None, "string"):
        return None
    return CHECKS.get(fmt.replace("-", ""))
