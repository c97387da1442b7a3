"""Name and key formats, with apimachinery's words.

Source: k8s.io/apimachinery `pkg/util/validation/validation.go` and `pkg/api/validate/content/{dns,kube,path}.go`
(DNS-1123 label/subdomain, DNS-1035 label, qualified names, label values, path segments) and
`pkg/api/validation/generic.go` (how a `generateName` prefix is checked: a trailing dash is masked).
Each function returns the list of problems (empty when valid), as the Go functions do.
"""

from __future__ import annotations

import re
from collections.abc import Callable

DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN_FMT = DNS1123_LABEL_FMT + "(\\." + DNS1123_LABEL_FMT + ")*"
DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
LABEL_VALUE_FMT = "(" + QUALIFIED_NAME_FMT + ")?"
CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"

# matched with fullmatch: a `$` of re would also pass a final newline, which Go's regexp does not
_LABEL = re.compile(f"^{DNS1123_LABEL_FMT}$")
_SUBDOMAIN = re.compile(f"^{DNS1123_SUBDOMAIN_FMT}$")
_DNS1035 = re.compile(f"^{DNS1035_LABEL_FMT}$")
_QUALIFIED = re.compile(f"^{QUALIFIED_NAME_FMT}$")
_LABEL_VALUE = re.compile(f"^{LABEL_VALUE_FMT}$")
_CONFIG_KEY = re.compile(f"^{CONFIG_KEY_FMT}$")


def max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


def is_dns1123_label(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append(max_len_error(63))
    if not _LABEL.fullmatch(value):
        if _SUBDOMAIN.fullmatch(value):
            errs.append("must not contain dots")
        else:
            errs.append(regex_error("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                                    "and must start and end with an alphanumeric character", DNS1123_LABEL_FMT,
                                    "my-name", "123-abc"))
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    errs = []
    if len(value) > 253:
        errs.append(max_len_error(253))
    if not _SUBDOMAIN.fullmatch(value):
        errs.append(regex_error("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
                                "or '.', and must start and end with an alphanumeric character", DNS1123_SUBDOMAIN_FMT,
                                "example.com"))
    return errs


def is_dns1035_label(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append(max_len_error(63))
    if not _DNS1035.fullmatch(value):
        errs.append(regex_error("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
                                "an alphabetic character, and end with an alphanumeric character", DNS1035_LABEL_FMT,
                                "my-name", "abc-123"))
    return errs


def is_path_segment_name(value: str) -> list[str]:
    """RBAC object names (`pkg/api/validate/content/path.go`): not `.` or `..`, no `/` or `%`."""
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return is_path_segment_prefix(value)


def is_path_segment_prefix(value: str) -> list[str]:
    return [f"may not contain '{c}'" for c in ("/", "%") if c in value]


def is_qualified_name(value: str) -> list[str]:
    """Label keys, annotation keys (lower-cased first) and finalizers: `[prefix/]name`."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in is_dns1123_subdomain(prefix))
    else:
        return ["a valid label key " + regex_error("must consist of alphanumeric characters, '-', '_' or '.', and must "
                                                   "start and end with an alphanumeric character", QUALIFIED_NAME_FMT,
                                                   "MyName", "my.name", "123-abc")
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part " + max_len_error(63))
    if not _QUALIFIED.fullmatch(name):
        errs.append("name part " + regex_error("must consist of alphanumeric characters, '-', '_' or '.', and must start "
                                               "and end with an alphanumeric character", QUALIFIED_NAME_FMT,
                                               "MyName", "my.name", "123-abc"))
    return errs


def is_label_value(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append(max_len_error(63))
    if not _LABEL_VALUE.fullmatch(value):
        errs.append(regex_error("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
                                "or '.', and must start and end with an alphanumeric character", LABEL_VALUE_FMT,
                                "MyValue", "my_value", "12345"))
    return errs


def is_config_map_key(value: str) -> list[str]:
    """Keys of ConfigMap and Secret `data` (`IsConfigMapKey`)."""
    errs = []
    if len(value) > 253:
        errs.append(max_len_error(253))
    if not _CONFIG_KEY.fullmatch(value):
        errs.append(regex_error("a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                                CONFIG_KEY_FMT, "key.name", "KEY_NAME", "key-name"))
    if value in (".", ".."):
        errs.append(f"must not be '{value}'")
    elif value.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def _mask_trailing_dash(name: str) -> str:
    # as apimachinery's maskTrailingDash does (it drops the character before the dash too)
    return name[:-2] + "a" if len(name) > 1 and name.endswith("-") else name


NameRule = Callable[[str, bool], list[str]]


def name_rule(check: Callable[[str], list[str]], mask_prefix: bool = True) -> NameRule:
    """A `ValidateNameFunc`: `(name, is_prefix) -> problems`; a generateName prefix may end in a dash."""

    def rule(name: str, prefix: bool) -> list[str]:
        return check(_mask_trailing_dash(name) if prefix and mask_prefix else name)

    return rule


DNS_SUBDOMAIN = name_rule(is_dns1123_subdomain)
DNS_LABEL = name_rule(is_dns1123_label)
DNS1035_LABEL = name_rule(is_dns1035_label)


def _path_segment(name: str, prefix: bool) -> list[str]:
    return is_path_segment_prefix(name) if prefix else is_path_segment_name(name)


PATH_SEGMENT: NameRule = _path_segment

#: (group, plural) -> the name rule its validation uses; everything else is a DNS-1123 subdomain.
#: Sources: pkg/apis/core/validation (namespaces: ValidateNamespaceName = DNS label; services:
#: ValidateServiceName = DNS-1035 label), pkg/apis/rbac/validation (ValidateRBACName = path segment),
#: kube-aggregator's apiregistration validation (an APIService's name, `v1.` or `v1.apps`, is a path
#: segment that must equal spec.version + "." + spec.group).
NAME_RULES: dict[tuple[str, str], NameRule] = {
    ("", "namespaces"): DNS_LABEL,
    ("", "services"): DNS1035_LABEL,
    ("rbac.authorization.k8s.io", "roles"): PATH_SEGMENT,
    ("rbac.authorization.k8s.io", "clusterroles"): PATH_SEGMENT,
    ("rbac.authorization.k8s.io", "rolebindings"): PATH_SEGMENT,
    ("rbac.authorization.k8s.io", "clusterrolebindings"): PATH_SEGMENT,
    ("apiregistration.k8s.io", "apiservices"): PATH_SEGMENT,
}


def rule_for(group: str, plural: str) -> NameRule:
    return NAME_RULES.get((group, plural), DNS_SUBDOMAIN)
