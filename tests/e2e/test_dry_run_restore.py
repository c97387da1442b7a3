"""`reconcile.py restore NAME --dry-run` and `plan --dry-run-restores` (issue 21): the planned restore run
against its real target with dryRun=All. Into a fresh target it reports the counts the real restore
then records, and the target keeps nothing: every object and the resourceVersion counter unchanged."""

from __future__ import annotations

import copy
import json

from ctpbackup.apply.dryrun import DryRunReport
from ctpbackup.engines.restore import OFFLINE, RestoreResult
from kubeemu.fixtures import crd
from tests.e2e.test_restore_faults import (
    API,
    RESTORED,
    back_up,
    crossplane_base,
    planes,
    rbac_names,
    services,
    status_without_subresource,
    the_restore,
    token_secrets,
)
from tests.emulator.test_dryrun import revision

VERBS = {"restored": "create", "skipped": "skip", "merged": "merge", "failed": "refuse"}


def everything(api: API) -> dict[str, list[dict]]:
    """Every object of every listable type, as listed (resourceVersions included)."""
    out = {}
    for group_path in ["/api/v1"] + [f"/apis/{g['name']}/{g['preferredVersion']['version']}"
                                     for g in api.get("/apis")["groups"]]:
        for r in api.get(group_path)["resources"]:
            if "/" not in r["name"] and "list" in r["verbs"]:
                out[f"{group_path}/{r['name']}"] = api.items(f"{group_path}/{r['name']}")
    return out


def ask_for_restore(story, target) -> None:
    story.connect("dst", target)
    story.repo.write("dst.yaml", RESTORED.format(name="dst", source="b1"))
    story.repo.commit("restore b1 into dst")


def counts_of(document: dict) -> dict[str, dict[str, int]]:
    """resource -> {create, skip, merge, refuse} of a dry run's JSON document."""
    return {key: {VERBS[k]: v for k, v in c.items() if k in VERBS and v} for key, c in document["counts"].items()}


def test_a_dry_run_into_a_fresh_target_reports_the_real_restores_counts_and_stores_nothing(story):
    with planes() as (source, target):
        src, dst = API(source), API(target)
        crossplane_base(src)
        for shape in (rbac_names, services, status_without_subresource, token_secrets):
            shape(src)
        back_up(story, source)
        ask_for_restore(story, target)
        before, counter = everything(dst), revision(target)

        done = story.reconcile("restore", "dst", "--dry-run", "-o", "json", check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        document = json.loads(done.stdout)
        assert (document["dryRun"], document["backup"], document["controlPlane"]) == ("All", "b1", "dst")
        assert everything(dst) == before  # nothing stored, every resourceVersion as it was
        assert revision(target) == counter  # and no resourceVersion consumed
        assert story.status()["restores"] == []  # nothing recorded in the index
        # objects in team-a (created by this restore) and of the archived CRDs: checked offline
        offline = {k: c["validatedOffline"] for k, c in document["counts"].items() if c.get("validatedOffline")}
        assert offline == {"buckets.s3.aws.upbound.io": 1, "clusters.aws.platformref.upbound.io": 1,
                           "compositeresourcedefinitions.apiextensions.crossplane.io": 1,
                           "providerrevisions.pkg.crossplane.io": 1, "providers.pkg.crossplane.io": 1,
                           "queues.sqs.aws.m.upbound.io": 1, "rolebindings.rbac.authorization.k8s.io": 1, "secrets": 2,
                           "serviceaccounts": 2, "services": 4, "settings.example.org": 1, "vpcs.ec2.aws.upbound.io": 1,
                           "xclusters.aws.platformref.upbound.io": 1}

        planned = story.reconcile("plan", "--dry-run-restores", "-o", "text")
        assert "restore default/dst ← b1" in planned.stdout
        assert planned.stdout.endswith("\nDry run: 35 to create, 158 to skip, 0 to merge, 0 refused; the restore would "
                                       "complete.\n")
        assert (everything(dst), revision(target)) == (before, counter)

        story.reconcile("apply")  # the real restore
        record = the_restore(story)
        assert record["phase"] == "Completed", record
        real = {key: {VERBS[k]: v for k, v in c.items() if k in VERBS and v} for key, c in record["counts"].items()}
        assert counts_of(document) == {k: v for k, v in real.items() if v}
        assert document["totals"]["refuse"] == 0 and document["totals"]["create"] == sum(
            c.get("restored", 0) for c in record["counts"].values())


def strict(c: dict, field: str, rule: dict) -> dict:
    """The CRD with `spec.<field>` constrained by `rule` (an OpenAPI v3 schema)."""
    c = copy.deepcopy(c)
    c["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = {"type": "object", "properties": {
        "spec": {"type": "object", "properties": {field: rule}}}}
    return c


GADGETS = crd("example.org", "gadgets", "Gadget", "Cluster", "v1")
WIDGETS = crd("example.org", "widgets", "Widget", "Namespaced", "v1")
DOOHICKEYS = crd("example.org", "doohickeys", "Doohickey", "Namespaced", "v1")


def test_objects_the_restore_would_refuse_are_listed_with_the_reason_of_the_target_or_of_the_archived_crd(story):
    """Three members of the family: an object the target refuses (its own CRD is stricter than the
    archived one), one the archived CRD refuses (made before the CRD was tightened; its CRD is new on
    the target, so checked offline), one in a new namespace refused by a CEL rule of its CRD. The
    real restore then refuses exactly those."""
    with planes() as (source, target):
        src, dst = API(source), API(target)
        src.establish(GADGETS, WIDGETS, DOOHICKEYS)
        src.create("/api/v1/namespaces", {"metadata": {"name": "team-c"}})
        src.create("/apis/example.org/v1/gadgets", {"metadata": {"name": "g1"}, "spec": {"size": "big"}})
        src.create("/apis/example.org/v1/gadgets", {"metadata": {"name": "g2"}, "spec": {"size": 3}})
        src.create("/apis/example.org/v1/namespaces/default/widgets", {"metadata": {"name": "w1"}, "spec": {"color": "red"}})
        src.create("/apis/example.org/v1/namespaces/team-c/doohickeys", {"metadata": {"name": "d1"}, "spec": {"replicas": 9}})
        src.create("/apis/example.org/v1/namespaces/team-c/doohickeys", {"metadata": {"name": "d2"}, "spec": {"replicas": 1}})
        for tightened in (strict(GADGETS, "size", {"type": "integer"}),
                          strict(DOOHICKEYS, "replicas", {"type": "integer",
                                                          "x-kubernetes-validations": [{"rule": "self <= 5"}]})):
            current = src.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{tightened['metadata']['name']}")
            src.call("PUT", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{tightened['metadata']['name']}",
                     {**tightened, "metadata": current["metadata"]})
        dst.establish(strict(WIDGETS, "color", {"type": "string", "enum": ["blue"]}))
        back_up(story, source, verifies=False)  # verification already sees the refused objects
        ask_for_restore(story, target)
        counter = revision(target)

        done = story.reconcile("restore", "dst", "--dry-run", check=False)
        assert done.returncode == 1, done.stdout + done.stderr
        assert revision(target) == counter
        refused = sorted(line.strip() for line in done.stdout.splitlines() if line.strip().startswith("!"))
        assert refused == [
            '! Everything else: doohickeys.example.org team-c/d1: refused offline (namespace team-c is created by this '
            'restore; checked against its archived CRD): Doohickey.example.org "d1" is invalid: spec.replicas: '
            'Invalid value: "integer": failed rule: self <= 5',
            '! Everything else: gadgets.example.org g1: refused offline (CRD of gadgets.example.org is created by this '
            'restore; checked against its archived CRD): Gadget.example.org "g1" is invalid: spec.size: Invalid value: '
            '"string": spec.size in body must be of type integer: "string"',
            '! Everything else: widgets.example.org default/w1: POST /apis/example.org/v1/namespaces/default/widgets: '
            '422 Widget.example.org "w1" is invalid: spec.color: Unsupported value: "red": supported '
            'values: "blue"']
        assert done.stdout.endswith("\nDry run: 5 to create, 159 to skip, 0 to merge, 3 refused; the restore would be "
                                    "PartiallyFailed.\n")  # the CRDs of gadgets and doohickeys, team-c, g2, d2

        story.reconcile("apply", check=False)  # the real restore refuses the same three
        record = the_restore(story)
        assert record["phase"] == "PartiallyFailed"
        failed = {k: c["failed"] for k, c in record["counts"].items() if c.get("failed")}
        assert failed == {"doohickeys.example.org": 1, "gadgets.example.org": 1, "widgets.example.org": 1}


def test_the_report_groups_counts_by_tier_in_restore_order_and_names_each_refusal():
    result = RestoreResult({
        "customresourcedefinitions.apiextensions.k8s.io": {"restored": 2, "skipped": 0, "failed": 0},
        "configmaps": {"restored": 2, "skipped": 1, "failed": 1, OFFLINE: 3},
        "serviceaccounts": {"restored": 0, "skipped": 1, "merged": 1, "failed": 0},
        "buckets.s3.aws.upbound.io": {"restored": 4, "skipped": 0, "failed": 0, OFFLINE: 4}},
        ("configmaps team-a/x: refused offline: bad", "a warning"), ("configmaps team-a/x: refused offline: bad",))
    report = DryRunReport("default", "dst", "b1", "src", result)
    assert report.to_text().splitlines()[2:] == [
        "  tier                          create    skip   merge  refuse  offline",
        "  CustomResourceDefinitions          2       0       0       0        0",
        "  Namespaced basics                  2       2       1       1        3",
        "  Everything else                    4       0       0       0        4",
        "  total                              8       2       1       1        7",
        "",
        "  7 object(s) are in namespaces or of CRDs this restore creates (a dry run persists nothing): checked "
        "offline against the archived CRDs and Kubernetes' rules, not by the target.",
        "  ! Namespaced basics: configmaps team-a/x: refused offline: bad",
        "  warning: a warning",
        "",
        "Dry run: 8 to create, 2 to skip, 1 to merge, 1 refused; the restore would be PartiallyFailed."]
    assert report.totals() == {"create": 8, "skip": 2, "merge": 1, "refuse": 1, "validatedOffline": 7}
    assert [row["refused"] for row in report.tiers()] == [[], ["configmaps team-a/x: refused offline: bad"], []]
