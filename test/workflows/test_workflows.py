"""The GitHub workflows: thin shells around the Dagger module, checked for the shape we rely on.

zizmor and yamllint run for real as the `security` check's commands (test/pipeline/
test_check_commands.py); actionlint cannot be installed here, so the module's `security` check
runs it from its pinned image instead (docs/guide.md, "How the module is verified without an
engine").
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bikeshare_ci.release import PLAN_FILE

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
CHECKOUT = "actions/checkout"
DAGGER = "dagger/dagger-for-github"
# Set by the runner in every step.
RUNNER_VARIABLES = {"RUNNER_TEMP", "GITHUB_STEP_SUMMARY", "GITHUB_REPOSITORY"}
#: The plan job's last line: the release it pinned (plan.json), its stdout's last line.
PRINT_PLAN = f'host | file "$RUNNER_TEMP/cd-run/{PLAN_FILE}" | contents'
PINNED_USES = re.compile(r"^\s*-? ?uses: ([\w.-]+/[\w.-]+)@([0-9a-f]{40})  # v\d+\.\d+\.\d+$")


def workflow(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def jobs() -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for job_id, job in workflow(path.name)["jobs"].items():
            found.append((path.name, job_id, job))
    return found


def dagger_step(job: dict[str, Any]) -> dict[str, Any]:
    (step,) = [s for s in job["steps"] if s["uses"].startswith(DAGGER + "@")]
    return step


def script(job: dict[str, Any]) -> str:
    inputs = dagger_step(job)["with"]
    return inputs.get("call") or inputs["shell"]


def test_the_three_workflows_exist() -> None:
    assert {p.name for p in WORKFLOWS.glob("*.yml")} == {
        "ci.yml",
        "cd_staging.yml",
        "promote_prod.yml",
    }


@pytest.mark.parametrize(("file", "job_id", "job"), jobs(), ids=lambda v: str(v)[:20])
def test_each_job_is_checkout_plus_one_dagger_step(file: str, job_id: str, job: Any) -> None:
    steps = job["steps"]
    assert [s["uses"].split("@")[0] for s in steps] == [CHECKOUT, DAGGER], (file, job_id)
    assert all(set(s) <= {"name", "id", "uses", "with", "env"} for s in steps), "no run: steps"
    assert steps[0]["with"]["persist-credentials"] is False


def test_every_action_is_pinned_by_sha_with_its_version_in_a_comment() -> None:
    for path in WORKFLOWS.glob("*.yml"):
        for line in path.read_text().splitlines():
            if "uses:" in line:
                assert PINNED_USES.match(line), f"{path.name}: {line.strip()}"


def test_the_dagger_version_is_the_module_engine_version() -> None:
    engine = json.loads((ROOT / "dagger.json").read_text())["engineVersion"]
    for file, job_id, job in jobs():
        assert "v" + dagger_step(job)["with"]["version"] == engine, (file, job_id)


def test_permissions_are_minimal_and_id_token_only_where_aws_is_reached() -> None:
    for path in WORKFLOWS.glob("*.yml"):
        assert workflow(path.name)["permissions"] == {}, "nothing granted at workflow level"
    for file, job_id, job in jobs():
        reaches_aws = "with-aws-oidc" in script(job)
        expected = {"contents": "read", **({"id-token": "write"} if reaches_aws else {})}
        assert job["permissions"] == expected, (file, job_id)
        assert reaches_aws == ("environment" in job), "AWS only from a GitHub environment"


def test_no_expression_is_expanded_inside_the_dagger_command() -> None:
    for file, job_id, job in jobs():
        text = script(job)
        assert "${{" not in text, (file, job_id)
        # The action echoes the shell input inside single quotes before parsing it.
        assert "'" not in text, (file, job_id)
        env = dagger_step(job).get("env", {})
        used = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", text)) - RUNNER_VARIABLES
        assert used <= set(env), f"{file}/{job_id} uses unset {used - set(env)}"


def test_aws_is_reached_with_oidc_secrets_inside_the_pipeline_and_the_sha_is_passed() -> None:
    for file, job_id, job in jobs():
        text = script(job)
        assert '--git-sha="$GIT_SHA"' in text, (file, job_id)
        assert dagger_step(job)["with"]["cloud-token"] == "${{ secrets.DAGGER_CLOUD_TOKEN }}"
        if "with-aws-oidc" in text:
            assert "--request-url=env://ACTIONS_ID_TOKEN_REQUEST_URL" in text
            assert "--request-token=env://ACTIONS_ID_TOKEN_REQUEST_TOKEN" in text
            assert dagger_step(job)["env"]["DEPLOYER_ROLE_ARN"] == "${{ vars.DEPLOYER_ROLE_ARN }}"


def test_release_reports_reach_the_summary_before_the_job_fails() -> None:
    for file, job_id, job in jobs():
        if "environment" not in job:
            continue
        lines = [line.strip() for line in script(job).strip().splitlines()]
        if lines[-1] == PRINT_PLAN:  # the plan job prints its pins last, once it succeeded
            lines.pop()
        assert lines[-4].endswith('| export --wipe "$RUNNER_TEMP/cd-run"'), (file, job_id)
        assert 'export "$GITHUB_STEP_SUMMARY"' in lines[-3]
        assert lines[-1] == '_test "$outcome" = "succeeded" || .exit 1'
        assert "summary-path" not in dagger_step(job)["with"]  # it would overwrite the report


def test_rollouts_are_never_cancelled() -> None:
    for name in ("cd_staging.yml", "promote_prod.yml"):
        assert workflow(name)["concurrency"]["cancel-in-progress"] is False
    assert "pull_request" in workflow("ci.yml")["concurrency"]["cancel-in-progress"]


def test_ci_runs_on_pull_requests_pushes_and_weekly_past_the_cache() -> None:
    ci = workflow("ci.yml")
    assert set(ci["on"]) >= {"pull_request", "push", "schedule"}
    (job,) = ci["jobs"].values()
    assert script(job).split()[-2:] == ["ci", '--fresh="$FRESH"']
    assert dagger_step(job)["env"]["FRESH"] == "${{ github.event_name == 'schedule' }}"


def test_staging_deploys_only_a_main_commit_whose_ci_passed() -> None:
    cd = workflow("cd_staging.yml")
    trigger = cd["on"]["workflow_run"]
    assert trigger == {"workflows": ["CI"], "types": ["completed"], "branches": ["main"]}
    assert workflow("ci.yml")["name"] == "CI"
    (job,) = cd["jobs"].values()
    assert "github.event.workflow_run.conclusion == 'success'" in job["if"]
    assert "github.event.workflow_run.event == 'push'" in job["if"]
    exact = "${{ github.event.workflow_run.head_sha || github.sha }}"
    assert job["steps"][0]["with"]["ref"] == exact
    assert dagger_step(job)["env"]["GIT_SHA"] == exact
    assert job["environment"] == "staging"
    assert "| cd-staging " in script(job)


def test_promotion_shows_the_plan_before_the_gated_job_runs_it() -> None:
    promote = workflow("promote_prod.yml")
    assert set(promote["on"]) == {"workflow_dispatch"}
    assert "override_model_tar" in promote["on"]["workflow_dispatch"]["inputs"]
    plan, gated = promote["jobs"]["plan"], promote["jobs"]["promote"]
    assert "needs" not in plan
    assert gated["needs"] == "plan"
    assert plan["environment"] != "production"
    assert gated["environment"] == "production"
    assert "| promote " in script(plan)
    assert "--dry-run" in script(plan)
    assert "| promote " in script(gated)
    assert "--dry-run" not in script(gated)
    for job in (plan, gated):
        assert dagger_step(job)["env"]["OVERRIDE_MODEL_TAR"] == "${{ inputs.override_model_tar }}"


def test_the_gated_job_ships_the_release_the_plan_job_pinned_and_showed() -> None:
    """The promote job's pins are the plan job's output, never what staging serves at run time."""
    promote = workflow("promote_prod.yml")
    plan, gated = promote["jobs"]["plan"], promote["jobs"]["promote"]
    step = dagger_step(plan)
    # dagger-for-github's `output` is the step's stdout; its last line is plan.json.
    assert plan.get("outputs") == {"plan": f"${{{{ steps.{step.get('id')}.outputs.output }}}}"}
    lines = [line.strip() for line in script(plan).strip().splitlines()]
    assert lines[-1] == PRINT_PLAN, "printed last, so it is the output's last line"
    assert lines[-2] == '_test "$outcome" = "succeeded" || .exit 1', "and only for a plan"
    assert "--plan=" not in script(plan)
    assert dagger_step(gated)["env"].get("PLAN") == "${{ needs.plan.outputs.plan }}"
    promote_call = script(gated).split("| promote ")[1].split("| export")[0]
    assert '--plan="$PLAN"' in promote_call
    assert '--override-model-data="$OVERRIDE_MODEL_TAR"' in promote_call, "checked against it"
