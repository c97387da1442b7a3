"""`x-kubernetes-validations` rules, evaluated with Google's CEL runtime (PyPI `cel-expr-python`).

Why this library: measured on Crossplane's CRDs (crossplane/crossplane `cluster/crds/`) and 300 of the
upjet AWS provider's (crossplane-contrib/provider-upjet-aws `package/crds/`), 439 rules in all, it parses
and evaluates every one (as does `common-expression-language` 0.10.0; `cel-python` 0.5.0 lacks
`lowerAscii` and the `.?` optional syntax), has no dependencies, and is the C++ runtime cel-go follows.
It brings CEL's strings, math, encoders and optional extensions. Kubernetes' own libraries (lists
`isSorted`/`sum`/`indexOf`, regex `find`, `quantity`, `url`, `ip`/`cidr`, `format`) are not in it: a rule
using one fails to compile here, is not evaluated, and is reported once through `Rule.unsupported`
and the `kubevalidation.cel` logger — never passed silently.

Source of the semantics: k8s.io/apiextensions-apiserver `pkg/apiserver/schema/cel/validation.go`
(`self`/`oldSelf`, transition rules only on update, `message`/`messageExpression`, `reason`, `fieldPath`,
"failed rule: <rule>") and `.../cel/model` (property names that are CEL keywords are escaped,
`namespace` as `__namespace__`, `-` as `__dash__`, `.` as `__dot__`, `/` as `__slash__`).
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field

from cel_expr_python import cel as _cel
from cel_expr_python.ext import ext_encoders, ext_math, ext_optional, ext_strings

log = logging.getLogger(__name__)

#: CEL's reserved words, escaped as `__<word>__` when they are property names
RESERVED = frozenset({"true", "false", "null", "in", "as", "break", "const", "continue", "else", "for", "function",
                      "if", "import", "let", "loop", "package", "namespace", "return", "var", "void", "while"})
_REASONS = {"FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate"}
_OLD_SELF = re.compile(r"\boldSelf\b")
_env_lock = threading.Lock()
_env: list = []


def _environment():
    """One CEL environment (declarations only, no state) for every rule: `self` and `oldSelf` are dynamic."""
    with _env_lock:
        if not _env:
            _env.append(_cel.NewEnv(
                variables={"self": _cel.Type.DYN, "oldSelf": _cel.Type.DYN},
                extensions=[ext_strings.ExtStrings(), ext_optional.ExtOptional(), ext_math.ExtMath(),
                            ext_encoders.ExtEncoders()]))
        return _env[0]


def escape(name: str) -> str:
    """A property name as CEL sees it (`model.Escape`)."""
    if name in RESERVED:
        return f"__{name}__"
    return (name.replace("__", "__underscores__").replace(".", "__dot__").replace("-", "__dash__")
            .replace("/", "__slash__"))


@dataclass
class Rule:
    """One compiled rule. `program` is None when the library cannot compile it (`unsupported` says why)."""

    rule: str
    message: str = ""
    message_expression: str = ""
    reason: str = "FieldValueInvalid"
    field_path: str = ""
    optional_old_self: bool = False
    transition: bool = False
    program: object = None
    message_program: object = None
    unsupported: str = ""
    _reported: bool = field(default=False, repr=False)

    def report_unsupported(self, path: str) -> None:
        """Logged once per compiled rule: the first time an object meets it."""
        if not self._reported:
            self._reported = True
            log.warning("CEL rule not evaluated (unsupported by cel-expr-python), leniency: %s at %s: %s",
                        self.rule, path or "<root>", self.unsupported)


def compile_rule(spec: dict) -> Rule:
    rule = Rule(rule=str(spec.get("rule", "")), message=str(spec.get("message") or ""),
                message_expression=str(spec.get("messageExpression") or ""),
                reason=spec.get("reason") if spec.get("reason") in _REASONS else "FieldValueInvalid",
                field_path=str(spec.get("fieldPath") or ""), optional_old_self=bool(spec.get("optionalOldSelf")))
    rule.transition = bool(_OLD_SELF.search(rule.rule))
    env = _environment()
    try:
        rule.program = env.compile(rule.rule)
    except Exception as err:  # noqa: BLE001 - the library reports every compile failure as a plain exception
        rule.unsupported = str(err).strip().splitlines()[0][:300]
    if rule.message_expression:
        try:
            rule.message_program = env.compile(rule.message_expression)
        except Exception:  # noqa: BLE001 - fall back to `message`, as the server does on a failed expression
            rule.message_program = None
    return rule


class EvaluationError(Exception):
    """A rule that failed at run time (a missing key, a wrong type): the server reports it on the field."""


def evaluate(rule: Rule, self_value: object, old_value: object = None, has_old: bool = False) -> tuple[bool, str]:
    """(passed, message) for one value. Raises EvaluationError when the rule cannot be evaluated."""
    data = {"self": self_value}
    if has_old:
        data["oldSelf"] = old_value
    try:
        value = rule.program.eval(data=data)  # type: ignore[union-attr]
    except Exception as err:  # noqa: BLE001 - the runtime raises plain exceptions for some failures
        raise EvaluationError(str(err).strip().splitlines()[0][:300]) from None
    result = value.value()
    if value.type() == _cel.Type.ERROR:
        raise EvaluationError(str(result).strip().splitlines()[0][:300])
    if not isinstance(result, bool):
        raise EvaluationError(f"rule did not evaluate to a bool: {result!r}")
    if result:
        return True, ""
    message = rule.message or f"failed rule: {rule.rule}"
    if rule.message_program is not None:
        try:
            out = rule.message_program.eval(data=data)  # type: ignore[attr-defined]
            text = out.value()
            if out.type() != _cel.Type.ERROR and isinstance(text, str) and text.strip():
                message = text
        except Exception:  # noqa: BLE001, S110 - the static message stands in, as on the server
            pass
    return False, message
