"""Kubernetes label selectors, as SharedBackup and SharedBackupSchedule use them to pick control planes."""

from __future__ import annotations

from collections.abc import Mapping

from ctpbackup.desired.model import ControlPlaneSelector, LabelSelector


def matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """matchLabels and matchExpressions are ANDed; an empty selector matches everything."""
    for key, value in selector.match_labels:
        if labels.get(key) != value:
            return False
    for req in selector.match_expressions:
        present = req.key in labels
        if req.operator == "In" and (not present or labels[req.key] not in req.values):
            return False
        if req.operator == "NotIn" and present and labels[req.key] in req.values:
            return False
        if req.operator == "Exists" and not present:
            return False
        if req.operator == "DoesNotExist" and present:
            return False
    return True


def selects(selector: ControlPlaneSelector, name: str, labels: Mapping[str, str]) -> bool:
    """A control plane is selected when named in `names` or matched by any label selector."""
    if name in selector.names:
        return True
    return any(matches(s, labels) for s in selector.label_selectors)


def requirement_problem(operator: str, values: tuple[str, ...]) -> str | None:
    """Why a matchExpressions entry is malformed, as the API server would say, or None."""
    if operator in ("In", "NotIn") and not values:
        return f"values: must be non-empty when operator is {operator}"
    if operator in ("Exists", "DoesNotExist") and values:
        return f"values: must be empty when operator is {operator}"
    return None
