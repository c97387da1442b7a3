"""Kubernetes' RBAC decision for resource requests, over rendered objects (for tests).

Written after kube-apiserver's `plugin/pkg/auth/authorizer/rbac/rbac.go` (a request is allowed when
some binding that applies to the user references a role with a rule that allows it; RoleBindings only
in their own namespace, ClusterRoleBindings everywhere) and `pkg/apis/rbac/v1/evaluation_helpers.go`
(VerbMatches, APIGroupMatches, ResourceMatches with `*` and `*/subresource`, ResourceNameMatches where
an empty list allows every name). Subjects as in `appliesToUser`: User by name, Group by membership,
ServiceAccount as the user `system:serviceaccount:<namespace>:<name>`, whose groups are
`system:serviceaccounts`, `system:serviceaccounts:<namespace>` and `system:authenticated`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Request:
    verb: str
    resource: str
    namespace: str  # "" for a cluster-scoped request
    name: str = ""
    api_group: str = ""
    subresource: str = ""


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()

    @classmethod
    def service_account(cls, namespace: str, name: str) -> User:
        return cls(f"system:serviceaccount:{namespace}:{name}",
                   ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"))


def verb_matches(rule: dict, verb: str) -> bool:
    return any(v in ("*", verb) for v in rule.get("verbs") or ())


def api_group_matches(rule: dict, group: str) -> bool:
    return any(g in ("*", group) for g in rule.get("apiGroups") or ())


def resource_matches(rule: dict, resource: str, subresource: str) -> bool:
    combined = f"{resource}/{subresource}" if subresource else resource
    for r in rule.get("resources") or ():
        if r in ("*", combined):
            return True
        if subresource and r == f"*/{subresource}":
            return True
    return False


def resource_name_matches(rule: dict, name: str) -> bool:
    names = rule.get("resourceNames") or ()
    return not names or name in names


def rule_allows(rule: dict, request: Request) -> bool:
    return (verb_matches(rule, request.verb) and api_group_matches(rule, request.api_group)
            and resource_matches(rule, request.resource, request.subresource)
            and resource_name_matches(rule, request.name))


def applies_to_user(subject: dict, user: User, binding_namespace: str) -> bool:
    kind = subject.get("kind")
    if kind == "User":
        return subject.get("name") == user.name
    if kind == "Group":
        return subject.get("name") in user.groups
    if kind == "ServiceAccount":
        # rbac.go: a ServiceAccount subject without a namespace takes the binding's (v1 defaulting)
        namespace = subject.get("namespace") or binding_namespace
        return bool(namespace) and f"system:serviceaccount:{namespace}:{subject.get('name')}" == user.name
    return False


class Authorizer:
    """Decides requests from the Roles, ClusterRoles, RoleBindings and ClusterRoleBindings given."""

    def __init__(self, objects: list[dict]):
        def index(kind: str) -> dict:
            return {(o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in objects if o["kind"] == kind}

        self.roles = index("Role")
        self.cluster_roles = index("ClusterRole")
        self.bindings = [o for o in objects if o["kind"] == "RoleBinding"]
        self.cluster_bindings = [o for o in objects if o["kind"] == "ClusterRoleBinding"]

    def _rules(self, ref: dict, namespace: str) -> list[dict]:
        if ref.get("kind") == "ClusterRole":
            role = self.cluster_roles.get(("", ref["name"]))
        else:  # a RoleBinding's Role is looked up in the binding's own namespace
            role = self.roles.get((namespace, ref["name"]))
        return (role or {}).get("rules") or []

    def allowed(self, user: User, request: Request) -> bool:
        for binding in self.cluster_bindings:
            if any(applies_to_user(s, user, "") for s in binding.get("subjects") or ()) and \
                    any(rule_allows(r, request) for r in self._rules(binding["roleRef"], "")):
                return True
        if not request.namespace:
            return False
        for binding in self.bindings:
            namespace = binding["metadata"].get("namespace", "")
            if namespace != request.namespace:
                continue
            if any(applies_to_user(s, user, namespace) for s in binding.get("subjects") or ()) and \
                    any(rule_allows(r, request) for r in self._rules(binding["roleRef"], namespace)):
                return True
        return False
