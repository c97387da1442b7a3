"""Who a request is and what it may do, as kube-apiserver decides it with --anonymous-auth=false:
a client certificate signed by the instance's CA or its bearer token authenticates (else 401); the
full-access user may do anything, the read-only user only get, list and watch (else 403, with the
message of k8s.io/apiserver's responsewriters.Forbidden)."""

from __future__ import annotations

from dataclasses import dataclass

from kubeemu.store import ApiError

ADMIN_USER = "kubeemu-admin"
READ_ONLY_USER = "kubeemu-viewer"
#: verbs a read-only user may use (the `view` ClusterRole's), see kube-apiserver's RequestInfoFactory
READ_VERBS = frozenset({"get", "list", "watch"})
#: subresources of a namespace: /api/v1/namespaces/NAME/status is the namespace's, not a resource "status"
NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})


@dataclass(frozen=True)
class User:
    """Who a request was authenticated as: the user name and groups kube-apiserver would see."""

    name: str
    groups: tuple[str, ...] = ()

    @property
    def read_only(self) -> bool:
        return self.name == READ_ONLY_USER


@dataclass(frozen=True)
class RequestAttributes:
    """What kube-apiserver's authorizer is asked about a request (its RequestInfo, reduced): verb,
    API group, namespace, resource, subresource, name; `path` for non-resource requests."""

    verb: str
    path: str
    resource_request: bool = False
    group: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""

    @classmethod
    def of(cls, method: str, path: str, query: dict[str, str]) -> RequestAttributes:
        """Parsed like k8s.io/apiserver's RequestInfoFactory: /api/v1/... and /apis/GROUP/VERSION/...
        are resource requests; `namespaces/NS/...` sets the namespace; a name-less DELETE is
        `deletecollection`, a name-less GET `list` (or `watch` with watch=true)."""
        parts = path.strip("/").split("/")
        if parts[0] == "api" and len(parts) >= 3:
            group, rest = "", parts[2:]
        elif parts[0] == "apis" and len(parts) >= 4:
            group, rest = parts[1], parts[3:]
        else:
            return cls(method.lower(), path)
        namespace = ""
        if rest[0] == "namespaces" and len(rest) > 1:
            namespace = rest[1]
            if len(rest) > 2 and rest[2] not in NAMESPACE_SUBRESOURCES:
                rest = rest[2:]
        resource = rest[0]
        name = rest[1] if len(rest) > 1 else ""
        subresource = rest[2] if len(rest) > 2 else ""
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, "get")
        if not name:
            verb = {"get": "list", "delete": "deletecollection"}.get(verb, verb)
            if verb == "list" and query.get("watch") in ("true", "1"):
                verb = "watch"
        return cls(verb, path, True, group, namespace, resource, subresource, name)

    def forbidden(self, user: User) -> ApiError:
        """403 as kube-apiserver's authorization filter answers it (responsewriters.Forbidden:
        apierrors.NewForbidden(group resource, name, forbiddenMessage(attributes)))."""
        if not self.resource_request:
            return ApiError(403, "Forbidden", f'forbidden: User "{user.name}" cannot {self.verb} path "{self.path}"')
        resource = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        scope = f'in the namespace "{self.namespace}"' if self.namespace else "at the cluster scope"
        reason = f'User "{user.name}" cannot {self.verb} resource "{resource}" in API group "{self.group}" {scope}'
        qualified = f"{self.resource}.{self.group}" if self.group else self.resource
        target = f'{qualified} "{self.name}"' if self.name else qualified
        return ApiError(403, "Forbidden", f"{target} is forbidden: {reason}",
                        {"name": self.name, "group": self.group, "kind": self.resource} if self.name else
                        {"group": self.group, "kind": self.resource})



def authenticate(authorization: str | None, peer_certificate: dict | None, token: str,
                 read_only_token: str | None) -> User | None:
    """The user of a request, or None (401). In kube-apiserver's order (its union authenticator):
    a client certificate already verified against the instance's CA by the TLS layer (user from
    its subject's CN, groups from O; `peer_certificate` as `SSLSocket.getpeercert()` gives it),
    then a bearer token (`Authorization: Bearer <token>`, scheme case-insensitive, as
    k8s.io/apiserver's bearertoken authenticator parses it)."""
    if peer_certificate:
        subject = [attribute for rdn in peer_certificate.get("subject", ()) for attribute in rdn]
        names = [value for key, value in subject if key == "commonName"]
        if names:
            groups = tuple(value for key, value in subject if key == "organizationName")
            return User(names[0], (*groups, "system:authenticated"))
    parts = (authorization or "").strip().split(" ")
    if len(parts) < 2 or parts[0].lower() != "bearer" or not parts[1]:
        return None
    if parts[1] == token:
        return User(ADMIN_USER, ("system:masters", "system:authenticated"))
    if read_only_token is not None and parts[1] == read_only_token:
        return User(READ_ONLY_USER, ("system:authenticated",))
    return None
