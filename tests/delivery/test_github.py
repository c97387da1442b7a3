"""The GitHub workflows and the composite action validate against GitHub's schemas and do what they say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHECK = str(Path(sys.executable).parent / "check-jsonschema")


def check(schema: str, *files: Path) -> None:
    result = subprocess.run([CHECK, "--builtin-schema", schema, *map(str, files)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_match_githubs_schema():
    check("vendor.github-workflows", *sorted((ROOT / ".github" / "workflows").glob("*.yml")))


def test_action_matches_githubs_schema():
    check("vendor.github-actions", ROOT / "action.yml")


def test_ci_runs_the_readme_test_command():
    ci = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    steps = ci["jobs"]["test"]["steps"]
    assert any(s.get("run") == "bash .ci/run" for s in steps)
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert "make test" in (ROOT / "README.md").read_text()


def test_plan_workflow_runs_on_manifest_changes_and_uses_the_action():
    plan = yaml.safe_load((ROOT / ".github" / "workflows" / "plan.yml").read_text())
    trigger = plan[True] if True in plan else plan["on"]  # YAML 1.1 reads a bare `on` as true
    assert trigger["pull_request"]["paths"]
    (step,) = [s for s in plan["jobs"]["plan"]["steps"] if s.get("uses") == "./"]
    assert step["with"]["bucket-credentials"].startswith("${{ secrets.")
    assert plan["permissions"]["pull-requests"] == "write"


def test_action_posts_one_comment_labels_deletions_and_fails_on_errors():
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    steps = {s.get("name"): s for s in action["runs"]["steps"]}
    plan_script = steps["Plan"]["run"]
    assert "plan" in plan_script and "-o markdown --detailed-exitcode" in plan_script
    assert "$GITHUB_STEP_SUMMARY" in plan_script
    assert "validate" in plan_script, "without credentials (forks) it still validates"
    comment = steps["Comment on the pull request"]["with"]["script"]
    assert "updateComment" in comment and "createComment" in comment and "marker" in comment
    assert "addLabels" in comment and "removeLabel" in comment, "the label follows the latest plan"
    assert "head.repo.full_name == github.repository" in steps["Comment on the pull request"]["if"], \
        "no comment from forks, whose token is read-only"
    assert steps["Fail when no plan could be made"]["if"] == "${{ steps.plan.outputs.exitcode == '1' }}"
    assert "${{ inputs.bucket-credentials }}" not in plan_script, "secrets go through env, not into the script"
