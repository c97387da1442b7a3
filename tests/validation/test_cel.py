"""`x-kubernetes-validations` rules, on create and update (transition rules, ratcheting), with a test CRD
shaped like Crossplane's XRD CRD (v1 storage, v2 refusing claimNames and connectionSecretKeys)."""

from __future__ import annotations

import logging
import re

import pytest

from kubevalidation import CompiledSchema, Invalid, Target, admit, cel
from tests.validation import xrd_crd

V1 = Target(xrd_crd.GROUP, "v1", "CompositeResourceDefinition", "compositeresourcedefinitions", False, custom=True)
V2 = Target(xrd_crd.GROUP, "v2", "CompositeResourceDefinition", "compositeresourcedefinitions", False, custom=True)


@pytest.fixture(scope="module")
def schemas():
    return {"v1": CompiledSchema(xrd_crd.schema("v1")), "v2": CompiledSchema(xrd_crd.schema("v2"))}


@pytest.mark.parametrize(("spec", "message"), [
    ({"claimNames": {"kind": "Postgres", "plural": "postgres"}},
     "spec: Invalid value: \"object\": Claims aren't supported in apiextensions.crossplane.io/v2"),
    ({"connectionSecretKeys": ["password"]},
     "spec: Invalid value: \"object\": XR connection secrets aren't supported in apiextensions.crossplane.io/v2"),
    ({"scope": "LegacyCluster", "claimNames": {"kind": "P", "plural": "ps"}},
     "spec: Invalid value: \"object\": Claims aren't supported in apiextensions.crossplane.io/v2"),
    ({"names": {"kind": "XPostgres", "plural": "XPostgres"}},
     'spec.names: Invalid value: "object": Plural name must be lowercase'),
])
def test_v2_rules_refuse(schemas, spec, message):
    with pytest.raises(Invalid, match=f'^CompositeResourceDefinition.apiextensions.crossplane.io "xpostgres.example.org" '
                                      f'is invalid: {re.escape(message)}$') as err:
        admit(V2, xrd_crd.xrd("v2", **spec), schema=schemas["v2"])
    assert str(err.value.errors[0]) == message
    assert err.value.status()["details"]["causes"][0]["reason"] == "FieldValueInvalid"


def test_v1_with_claims_is_accepted_when_legacy_cluster(schemas):
    stored = admit(V1, xrd_crd.xrd("v1", claims=True), schema=schemas["v1"]).obj
    assert stored["spec"]["scope"] == "LegacyCluster"  # the default, applied before the rules run
    assert stored["spec"]["defaultCompositeDeletePolicy"] == "Background"


def test_v1_with_claims_refused_when_namespaced(schemas):
    with pytest.raises(Invalid, match=r'^CompositeResourceDefinition.apiextensions.crossplane.io "xpostgres.example.org" '
                                      r'is invalid: spec: Invalid value: "object": Only LegacyCluster composite '
                                      r"resources can offer claims$"):
        admit(V1, xrd_crd.xrd("v1", claims=True, scope="Namespaced"), schema=schemas["v1"])


@pytest.mark.parametrize(("field", "value"), [("group", "other.org"), ("scope", "Cluster")])
def test_transition_rules_run_on_update_only(schemas, field, value):
    old = admit(V2, xrd_crd.xrd("v2"), schema=schemas["v2"]).obj
    changed = xrd_crd.xrd("v2", **{field: value})
    assert admit(V2, changed, schema=schemas["v2"]).obj["spec"][field] == value  # create: no oldSelf, not run
    with pytest.raises(Invalid, match=rf'is invalid: spec.{field}: Invalid value: "string": Value is immutable$'):
        admit(V2, changed, old, schema=schemas["v2"])


def test_unchanged_fields_are_not_re_evaluated(schemas):
    """A v1 XRD with claims stored earlier can still be updated through v1 elsewhere (ratcheting)."""
    old = admit(V1, xrd_crd.xrd("v1", claims=True), schema=schemas["v1"]).obj
    new = xrd_crd.xrd("v1", claims=True, scope="LegacyCluster", defaultCompositeDeletePolicy="Foreground")
    assert admit(V1, new, old, schema=schemas["v1"]).obj["spec"]["defaultCompositeDeletePolicy"] == "Foreground"


@pytest.mark.parametrize(("rule", "value", "expected"), [
    ("self.matches('^[a-z]+$')", "abc", True),
    ("self.matches('^[a-z]+$')", "ab1", False),
    ("self.lowerAscii() == self", "ABC", False),
    ("self.all(x, x.startsWith('crossplane'))", ["crossplane-a", "other"], False),
    ("'*' in self.managementPolicies || has(self.forProvider.name)", {"managementPolicies": ["*"], "forProvider": {}}, True),
    ("'*' in self.managementPolicies || has(self.forProvider.name)", {"managementPolicies": ["Observe"], "forProvider": {}}, False),
    ("self.?optional.orValue('d') == 'd'", {}, True),
    ("size(self) <= 2", {"a": 1, "b": 2, "c": 3}, False),
])
def test_rules_evaluate(rule, value, expected):
    compiled = cel.compile_rule({"rule": rule})
    assert compiled.unsupported == ""
    assert cel.evaluate(compiled, value)[0] is expected


def test_escaped_property_names():
    schema = CompiledSchema({"type": "object", "properties": {"spec": {
        "type": "object", "x-kubernetes-validations": [{"rule": "has(self.__namespace__) && self.dash__dash__x == 1",
                                                        "message": "namespace and dash-x are required"}],
        "properties": {"namespace": {"type": "string"}, "dash-x": {"type": "integer"}}}}})
    target = Target("example.org", "v1", "Thing", "things", False, custom=True)
    body = {"metadata": {"name": "t"}, "spec": {"namespace": "n", "dash-x": 1}}
    assert admit(target, body, schema=schema).obj["spec"] == {"namespace": "n", "dash-x": 1}
    with pytest.raises(Invalid, match=r'spec: Invalid value: "object": namespace and dash-x are required$'):
        admit(target, {"metadata": {"name": "t"}, "spec": {"dash-x": 1}}, schema=schema)


@pytest.mark.parametrize(("spec", "reason", "message"), [
    ({"reason": "FieldValueForbidden", "fieldPath": ".a"}, "FieldValueForbidden", "spec.a: Forbidden: a must be small"),
    ({"reason": "FieldValueRequired"}, "FieldValueRequired", "spec: Required value: a must be small"),
    ({"messageExpression": "'a is ' + string(self.a)"}, "FieldValueInvalid", 'spec: Invalid value: "object": a is 5'),
    ({"message": ""}, "FieldValueInvalid", 'spec: Invalid value: "object": failed rule: self.a < 3'),
])
def test_reason_field_path_and_message_expression(spec, reason, message):
    rule = {"rule": "self.a < 3", "message": "a must be small", **spec}
    schema = CompiledSchema({"type": "object", "properties": {"spec": {
        "type": "object", "properties": {"a": {"type": "integer"}}, "x-kubernetes-validations": [rule]}}})
    with pytest.raises(Invalid, match=f'^Thing.example.org "t" is invalid: {re.escape(message)}$') as err:
        admit(Target("example.org", "v1", "Thing", "things", False, custom=True),
              {"metadata": {"name": "t"}, "spec": {"a": 5}}, schema=schema)
    assert (err.value.errors[0].type, str(err.value.errors[0])) == (reason, message)


def test_runtime_errors_are_reported_on_the_field():
    schema = CompiledSchema({"type": "object", "properties": {"spec": {
        "type": "object", "x-kubernetes-preserve-unknown-fields": True,
        "x-kubernetes-validations": [{"rule": "self.forProvider.name != ''"}]}}})
    with pytest.raises(Invalid, match=r'spec: Invalid value: "object": .*forProvider.* evaluating rule: '
                                      r"self.forProvider.name != ''$"):
        admit(Target("example.org", "v1", "Thing", "things", False, custom=True),
              {"metadata": {"name": "t"}, "spec": {}}, schema=schema)


@pytest.mark.parametrize("rule", ["self.isSorted()", "quantity(self).isGreaterThan(quantity('1Gi'))",
                                  "self.find('[0-9]+') == '1'", "url(self).getHost() == 'x'"])
def test_rules_the_library_cannot_compile_are_listed_and_logged_once(rule, caplog):
    schema = CompiledSchema({"type": "object", "properties": {"spec": {
        "type": "object", "x-kubernetes-preserve-unknown-fields": True,
        "properties": {"v": {"x-kubernetes-int-or-string": True, "x-kubernetes-validations": [{"rule": rule}]}}}}})
    assert len(schema.leniencies) == 1 and schema.leniencies[0].startswith(f"spec.v: CEL rule {rule!r} not evaluated (")
    target = Target("example.org", "v1", "Thing", "things", False, custom=True)
    with caplog.at_level(logging.WARNING, logger="kubevalidation.cel"):
        for _ in range(3):
            admit(target, {"metadata": {"name": "t"}, "spec": {"v": "1"}}, schema=schema)
    logged = [r.getMessage() for r in caplog.records if r.name == "kubevalidation.cel"]
    assert len(logged) == 1 and logged[0].startswith(f"CEL rule not evaluated (unsupported by cel-expr-python), "
                                                     f"leniency: {rule} at spec.v: ")


def test_map_list_items_correlate_for_transition_rules_and_ratcheting():
    schema = CompiledSchema({"type": "object", "properties": {"spec": {"type": "object", "properties": {"ports": {
        "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
        "items": {"type": "object", "properties": {
            "name": {"type": "string"},
            "port": {"type": "integer", "maximum": 100, "x-kubernetes-validations": [
                {"rule": "self == oldSelf", "message": "port is immutable"}]}}}}}}}})
    target = Target("example.org", "v1", "Thing", "things", False, custom=True)

    def thing(*ports):
        return {"metadata": {"name": "t"}, "spec": {"ports": [{"name": n, "port": p} for n, p in ports]}}

    old = thing(("a", 1000), ("b", 2))  # stored before the maximum existed
    assert admit(target, thing(("b", 2), ("a", 1000), ("c", 3)), old, schema=schema).obj["spec"]["ports"][2] == {
        "name": "c", "port": 3}
    with pytest.raises(Invalid, match=r'spec.ports\[1\].port: Invalid value: "integer": port is immutable$'):
        admit(target, thing(("a", 1000), ("b", 5)), old, schema=schema)
