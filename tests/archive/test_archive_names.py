"""Archive member paths hold every object name a real API server accepts: DNS subdomains, and the
path-segment names of RBAC objects and APIServices (ValidatePathSegmentName: no '/', no '%')."""

from __future__ import annotations

import tarfile

import pytest

from ctpbackup.engines.archive import ArchiveError, check_member, object_path


def member(path: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path)
    info.size = 10
    return info


@pytest.mark.parametrize(("resource", "name"), [
    ("apiservices.apiregistration.k8s.io", "v1."),
    ("apiservices.apiregistration.k8s.io", "v1.apps"),
    ("clusterroles.rbac.authorization.k8s.io", "system:controller:namespace-controller"),
    ("clusterroles.rbac.authorization.k8s.io", "crossplane:aggregate-to-edit"),
    ("clusterrolebindings.rbac.authorization.k8s.io", "oidc:platform+sre"),
    ("clusterroles.rbac.authorization.k8s.io", "system:certificates.k8s.io:certificatesigningrequests:nodeclient"),
    ("clusterroles.rbac.authorization.k8s.io", "a..b"),
    ("configmaps", "app-settings.v2"),
])
def test_every_name_the_api_server_accepts_is_a_member_path(resource, name):
    got = check_member(member(object_path(resource, None, name)))
    assert (got.resource, got.namespace, got.name) == (resource, "", name)


@pytest.mark.parametrize(("path", "message"), [
    ("resources/configmaps/namespaces/default/../../x.json", "unsafe path"),
    ("resources/configmaps/cluster/a/b.json", "not a path of the archive format"),
    ("resources/configmaps/cluster/a%2fb.json", "not a path of the archive format"),
    ("resources/configmaps/cluster/a\\b.json", "unsafe path"),
    ("resources/configmaps/cluster/.json", "not a path of the archive format"),
])
def test_paths_outside_the_format_still_refused(path, message):
    with pytest.raises(ArchiveError, match=message):
        check_member(member(path))
