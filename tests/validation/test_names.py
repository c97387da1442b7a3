"""Name rules per resource, as kube-apiserver checks them (tables)."""

from __future__ import annotations

import pytest

from kubevalidation import names

SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
                 "must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
                 "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
DNS1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
               "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
               "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")


@pytest.mark.parametrize(("group", "plural", "name", "problems"), [
    # RBAC objects: path segments
    ("rbac.authorization.k8s.io", "clusterroles", "crossplane:aggregate-to-edit", []),
    ("rbac.authorization.k8s.io", "clusterroles", "system:controller:foo", []),
    ("rbac.authorization.k8s.io", "clusterrolebindings", "oidc:platform+sre", []),
    ("rbac.authorization.k8s.io", "clusterroles", "system:certificates.k8s.io:certificatesigningrequests:nodeclient", []),
    ("rbac.authorization.k8s.io", "roles", "Upper_Case ok", []),
    ("rbac.authorization.k8s.io", "rolebindings", ".", ["may not be '.'"]),
    ("rbac.authorization.k8s.io", "roles", "..", ["may not be '..'"]),
    ("rbac.authorization.k8s.io", "clusterroles", "a/b", ["may not contain '/'"]),
    ("rbac.authorization.k8s.io", "clusterrolebindings", "50%", ["may not contain '%'"]),
    ("rbac.authorization.k8s.io", "clusterroles", "a/%", ["may not contain '/'", "may not contain '%'"]),
    # Services: DNS-1035 labels (first character a letter)
    ("", "services", "my-svc", []),
    ("", "services", "1svc", [DNS1035_MSG]),
    ("", "services", "svc.example", [DNS1035_MSG]),
    ("", "services", "a" * 64, ["must be no more than 63 characters"]),
    # Namespaces: DNS-1123 labels
    ("", "namespaces", "team-a", []),
    ("", "namespaces", "1team", []),
    ("", "namespaces", "team.a", ["must not contain dots"]),
    # everything else: DNS-1123 subdomains
    ("", "configmaps", "kube-root-ca.crt", []),
    ("", "secrets", "Bad", [SUBDOMAIN_MSG]),
    # a final newline is not the end of a name (Go's regexp `$`; Python's `re.match` took it)
    ("", "secrets", "ctp\n", [SUBDOMAIN_MSG]),
    ("", "services", "svc\n", [DNS1035_MSG]),
    ("", "namespaces", "team-a\n", ["a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                                     "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
                                     "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]),
    ("apps", "deployments", "a" * 254, ["must be no more than 253 characters"]),
    ("example.org", "widgets", "crossplane:edit", [SUBDOMAIN_MSG]),
])
def test_name_rule_per_resource(group, plural, name, problems):
    assert names.rule_for(group, plural)(name, False) == problems


@pytest.mark.parametrize(("rule", "prefix", "problems"), [
    (names.DNS_SUBDOMAIN, "backup-", []),  # a trailing dash is fine in a generateName
    (names.DNS_SUBDOMAIN, "Backup-", [SUBDOMAIN_MSG]),
    (names.DNS1035_LABEL, "svc-", []),
    (names.PATH_SEGMENT, "..", []),  # a prefix is only checked for '/' and '%'
    (names.PATH_SEGMENT, "a/", ["may not contain '/'"]),
])
def test_generate_name_is_checked_as_a_prefix(rule, prefix, problems):
    assert rule(prefix, True) == problems


@pytest.mark.parametrize(("key", "problems"), [
    ("app", []),
    ("app.kubernetes.io/name", []),
    ("crossplane.io/external-name", []),
    ("-app", ["name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
              "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
              "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"]),
    ("/app", ["prefix part must be non-empty"]),
    ("a/b/c", ["a valid label key must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
               "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation "
               "is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. "
               "'example.com/MyName')"]),
    ("x" * 64, ["name part must be no more than 63 characters"]),
])
def test_qualified_names(key, problems):
    assert names.is_qualified_name(key) == problems


@pytest.mark.parametrize(("value", "problems"), [
    ("", []), ("v1.2_3-x", []),
    ("has space", ["a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
                   "must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
                   "regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"]),
    ("x" * 64, ["must be no more than 63 characters"]),
])
def test_label_values(value, problems):
    assert names.is_label_value(value) == problems


@pytest.mark.parametrize(("fmt", "valid"), [
    ("uuid", "123e4567-e89b-12d3-a456-426614174000"), ("hostname", "example.com"), ("datetime", "2026-01-01T00:00:00Z"),
    ("duration", "1h30m"), ("email", "a@example.com"), ("mac", "00:1a:2b:3c:4d:5e"), ("hexcolor", "#ffffff"),
    ("date", "2026-01-01"), ("uri", "https://example.com/x"), ("bsonobjectid", "5f1d7a3b9c8e4a2b1c0d9e8f"),
])
def test_a_format_is_not_passed_by_a_final_newline(fmt, valid):
    """Go's strfmt matches with regexp, whose `$` is the end of the text; Python's `re.match` with
    `$` also passed the value followed by a newline."""
    from kubevalidation.formats import CHECKS

    assert (CHECKS[fmt](valid), CHECKS[fmt](valid + "\n")) == (True, False)
