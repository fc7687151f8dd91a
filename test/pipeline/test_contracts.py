"""The boundaries between the module and what it runs, checked from both sides, offline.

- Every `bikeshare` command line the module builds, for every release function and option
  combination, passes `bikeshare`'s own parser (the strict offline engine parses each one).
- Every path a step reads or writes exists in its container: the plan creates it or the image
  provides it (the offline engine replays each plan; support/container_files.py).
- What publish returns is what deploy accepts, whichever path publish took.
- Every reproduce line names functions and flags that exist, after the object that has them.
- The service is ready by the image's own health check, re-run every second.

Each rule is shown to catch a deliberately broken copy of the module (the mistakes the first
engine reading found: rollback given --git-sha, ecr-login writing into a missing directory,
actionlint run without its files, a tagged reference from publish).
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import dagger
import dagger.mod as dagger_mod
import pytest
from dagger import dag
from dagger.client._core import Field

import bikeshare_ci
from bikeshare.deploy.images import require_digest
from bikeshare_ci import checks, containers, release
from bikeshare_ci.main import CiFailed
from bikeshare_ci.release import by_digest
from bikeshare_ci.report import SUMMARY_FILE
from pipeline.conftest import (
    DIGEST,
    GIT_SHA,
    REPOSITORY_URL,
    default_answer,
    dockerfile_entrypoint,
    dockerfile_healthcheck,
    last_command,
)
from support.container_files import (
    INPUT_DIRS,
    INPUT_FILES,
    OUTPUT_DIRS,
    OUTPUT_FILES,
    parse_bikeshare,
    path_options,
    replay,
)
from support.dagger_plans import ROOT, OfflineEngine, calls, exec_error, nested_objects, steps

pytestmark = [pytest.mark.anyio, pytest.mark.tools_container]
ROLE = "arn:aws:iam::123456789012:role/bikeshare-sagemaker-execution"
MODEL_DATA = "s3://bikeshare-models/models/" + "cd" * 32 + "/model.tar.gz"
ENDPOINT = "http://172.17.0.1:4566"


def bikeshare_commands(engine: OfflineEngine) -> list[list[str]]:
    """Every `bikeshare` command line the engine was asked to run, nested plans included."""
    found = []
    for plan in engine.executed:
        for args in calls(plan, "withExec"):
            if args["args"][:1] == ["bikeshare"]:
                found.append(args["args"])
    return found


# ---- bikeshare's command lines -----------------------------------------------------------------


def test_every_path_option_of_bikeshare_is_classified() -> None:
    """A new Path option must be declared an input or an output, or the fake cannot check it."""
    classified = INPUT_FILES | INPUT_DIRS | OUTPUT_FILES | OUTPUT_DIRS
    assert set(path_options()) == classified


#: Stand-ins for the model.tar.gz files a call is given, made with the module's own `model`.
TRAINED, TRAINED_ON_DATA = "<model>", "<model --data>"


def with_models(pipeline: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments with each model placeholder made by the module's `model`."""
    data = dag.directory().with_new_file("rides.csv", "station_id,hour\n").file("rides.csv")
    made = {TRAINED: lambda: pipeline.model(), TRAINED_ON_DATA: lambda: pipeline.model(data=data)}
    return {
        key: made[value]() if isinstance(value, str) and value in made else value
        for key, value in kwargs.items()
    }


RELEASE_CALLS: dict[str, list[dict[str, Any]]] = {
    "publish": [{"repository_url": REPOSITORY_URL}, {"repository_url": REPOSITORY_URL,
                                                      "tag": "v1", "platform": "linux/arm64"}],
    "upload_model": [{"bucket": "bikeshare-models", "model": TRAINED},
                     {"bucket": "bikeshare-models", "model": TRAINED_ON_DATA,
                      "prefix": "archive"}],
    "smoke": [{"endpoint_name": "bikeshare-staging"}],
    "status": [{"endpoint_name": "bikeshare-staging"}],
    "logs": [{"endpoint_name": "bikeshare-staging"},
             {"endpoint_name": "bikeshare-staging", "since": "2h"}],
    "rollback": [{"endpoint_name": "bikeshare-staging"},
                 {"endpoint_name": "bikeshare-staging", "to_config": "bikeshare-staging-x"}],
    "replay": [{"image_uri": f"{REPOSITORY_URL}@{DIGEST}", "model_data": MODEL_DATA},
               {"endpoint_name": "bikeshare-staging"},
               {"endpoint_name": "bikeshare-staging", "config": "bikeshare-staging-x",
                "keep_failed": True}],
    "replay_service": [{"image_uri": f"{REPOSITORY_URL}@{DIGEST}", "model_data": MODEL_DATA},
                       {"endpoint_name": "bikeshare-staging", "config": "bikeshare-staging-x"}],
}  # fmt: skip
ROLLOUT_OPTIONS = [
    {},
    {"alarms": ["a-5xx", "a-latency"], "strategy": "canary", "instance_count": 2},
    {"dry_run": True, "alarms": [""], "strategy": "linear"},
]
RELEASE_CALLS["deploy"] = [
    {"endpoint_name": "bikeshare-staging", "image_uri": f"{REPOSITORY_URL}@{DIGEST}",
     "model_data": MODEL_DATA, "instance_type": "ml.m5.large", "execution_role_arn": ROLE,
     **options}
    for options in ROLLOUT_OPTIONS
]  # fmt: skip
RELEASE_CALLS["promote"] = [
    {"from_endpoint": "bikeshare-staging", "endpoint_name": "bikeshare-prod",
     "instance_type": "ml.m5.large", "execution_role_arn": ROLE, **options, **override}
    for options, override in itertools.product(
        ROLLOUT_OPTIONS, [{}, {"override_model_data": MODEL_DATA}]
    )
]  # fmt: skip
#: The plan job's output as the gated job gets it: the step's stdout, whose last line is plan.json
#: (the dagger shell prints each export's path before it).
PINS = {
    "from_endpoint": "bikeshare-staging",
    "config": "bikeshare-staging-0123456-20260101",
    "image_uri": f"{REPOSITORY_URL}@{DIGEST}",
    "model_data": MODEL_DATA,
    "override": "no",
}
PLAN_OUTPUT = f"/runner/_temp/cd-run\n/runner/_temp/summary\n{json.dumps(PINS)}\n\n"
PLAN_OVERRIDE = json.dumps({**PINS, "override": "yes"})
RELEASE_CALLS["promote"] += [
    {"from_endpoint": "bikeshare-staging", "endpoint_name": "bikeshare-prod",
     "instance_type": "ml.m5.large", "execution_role_arn": ROLE, **options, **plan}
    for options, plan in itertools.product(
        [{}, {"dry_run": True}],
        [{"plan": PLAN_OUTPUT}, {"plan": PLAN_OVERRIDE, "override_model_data": MODEL_DATA}],
    )
]  # fmt: skip
RELEASE_CALLS["cd_staging"] = [
    {"repository_url": REPOSITORY_URL, "endpoint_name": "bikeshare-staging",
     "instance_type": "ml.m5.large", "execution_role_arn": ROLE, **model, **options}
    for model, options in itertools.product(
        [{"model_data": MODEL_DATA}, {"model_data": f" {MODEL_DATA}\n"}],
        [{}, {"alarms": ["a-5xx"], "strategy": "canary"}],
    )
]  # fmt: skip
CASES = [(name, kwargs) for name, each in RELEASE_CALLS.items() for kwargs in each]


def test_every_release_function_is_exercised() -> None:
    functions = dagger_mod.default_module().get_object("Release").functions
    assert set(RELEASE_CALLS) == set(functions)


@pytest.mark.parametrize("credentials", ["oidc", "keys", "keys-and-endpoint"])
@pytest.mark.parametrize(("function", "kwargs"), CASES, ids=[f"{n}-{i}" for n, i in
                         itertools.chain(*[[(n, i) for i in range(len(v))]
                                           for n, v in RELEASE_CALLS.items()])])  # fmt: skip
async def test_every_release_command_line_passes_bikeshares_parser_and_paths(
    pipeline: Any, engine: OfflineEngine, credentials: str, function: str, kwargs: dict
) -> None:
    releaser = pipeline.with_aws_oidc(
        request_url=dag.set_secret("u", "https://token.example"),
        request_token=dag.set_secret("t", "token"),
        deployer_role_arn="arn:aws:iam::1:role/deployer",
        region="ca-central-1",
    ) if credentials == "oidc" else pipeline.with_aws_keys(
        access_key_id=dag.set_secret("i", "AKIAEXAMPLE"),
        secret_access_key=dag.set_secret("k", "key"),
        region="ca-central-1",
        endpoint_url=ENDPOINT if credentials == "keys-and-endpoint" else "",
    )  # fmt: skip
    result = await getattr(releaser, function)(**with_models(pipeline, kwargs))
    commands = bikeshare_commands(engine)
    assert commands, "a release function runs bikeshare"
    for argv in commands:  # the strict engine parsed them already; this says so plainly
        parsed = parse_bikeshare(argv[1:])
        assert parsed.command == argv[1]
        if credentials == "keys-and-endpoint" and hasattr(parsed, "endpoint_url"):
            assert parsed.endpoint_url == ENDPOINT
    if isinstance(result, dagger.Directory):  # the summary is complete even on the happy path
        summary = {f.args["path"]: f.args["contents"] for f in steps(result)
                   if f.name == "withNewFile"}[SUMMARY_FILE]  # fmt: skip
        assert "succeeded" in summary.splitlines()[0]


def promote_commands(engine: OfflineEngine) -> list[list[str]]:
    """Each distinct `bikeshare promote` command line (each leaf query replays its plan)."""
    found = {tuple(argv) for argv in bikeshare_commands(engine) if argv[1] == "promote"}
    return [list(argv) for argv in sorted(found)]


def run_files(run: Any) -> dict[str, str]:
    """The files of a release function's result directory (summary.md, outcome, plan.json)."""
    return {f.args["path"]: f.args["contents"] for f in steps(run) if f.name == "withNewFile"}


async def test_the_gated_run_ships_exactly_what_the_plan_run_pinned_and_showed(
    with_oidc: Any, engine: OfflineEngine
) -> None:
    """The workflow's hand-over: the plan's plan.json, as the job's stdout, pins the promote."""
    rollout = {"from_endpoint": "bikeshare-staging", "endpoint_name": "bikeshare-prod",
               "instance_type": "ml.m5.large", "execution_role_arn": ROLE,
               "override_model_data": MODEL_DATA}  # fmt: skip
    planned = run_files(await with_oidc.promote(**rollout, dry_run=True))
    pins = json.loads(planned[release.PLAN_FILE])
    # release-of read staging's image; the fake's is by digest (by_digest drops any tag).
    image = f"{REPOSITORY_URL}@{DIGEST}"
    assert pins == {"from_endpoint": "bikeshare-staging", "config": "c", "override": "yes",
                    "image_uri": image, "model_data": MODEL_DATA}  # fmt: skip
    expect = ["--expect-config", "c", "--expect-image", pins["image_uri"],
              "--expect-model-data", MODEL_DATA]  # fmt: skip
    (dry_run,) = promote_commands(engine)
    assert " ".join(expect) in " ".join(dry_run), "the plan itself refuses if staging moved"
    for value in ("`c`", f"`{pins['image_uri']}`", f"`{MODEL_DATA}`", "the override"):
        assert value in planned[SUMMARY_FILE], "what reviewers read is what is pinned"
    engine.executed.clear()
    stdout = f"/runner/_temp/cd-run\n/runner/_temp/summary\n{planned[release.PLAN_FILE]}\n"
    gated = run_files(await with_oidc.promote(**rollout, plan=stdout))
    (argv,) = promote_commands(engine)
    assert " ".join(expect) in " ".join(argv)
    assert "--dry-run" not in argv
    assert not any(cmd[1] == "release-of" for cmd in bikeshare_commands(engine)), "never re-read"
    assert f"`{pins['image_uri']}`" in gated[SUMMARY_FILE]
    assert release.PLAN_FILE not in gated


@pytest.mark.parametrize(
    ("plan", "problem"),
    [("", "names no release"), ("/runner/_temp/cd-run\n", "names no release"),
     (json.dumps({**PINS, "config": ""}), "names no release"),
     (json.dumps({**PINS, "from_endpoint": "bikeshare-dev"}), "promotes from bikeshare-dev")],
)  # fmt: skip
async def test_a_plan_that_pins_nothing_or_elsewhere_changes_nothing(
    with_oidc: Any, engine: OfflineEngine, plan: str, problem: str
) -> None:
    promoted = await with_oidc.promote(
        from_endpoint="bikeshare-staging", endpoint_name="bikeshare-prod",
        instance_type="ml.m5.large", execution_role_arn=ROLE, plan=plan,
    )  # fmt: skip
    run = run_files(promoted)
    assert promote_commands(engine) == [], "production is never reached"
    assert run[release.OUTCOME_FILE] == "failed"
    assert problem in run[SUMMARY_FILE]
    assert "nothing was changed" in run[SUMMARY_FILE]


async def test_a_flag_bikeshare_does_not_accept_is_caught(
    with_oidc: Any, engine: OfflineEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first engine reading's rollback defect: --git-sha appended to every command."""
    real = release.Release._release_command

    async def with_git_sha(self: Any, name: str, args: list[str]) -> Any:
        return await real(self, name, [*args, "--git-sha", self.git_sha])

    monkeypatch.setattr(release.Release, "_release_command", with_git_sha)
    with pytest.raises(Exception, match="unrecognized arguments"):
        await with_oidc.rollback(endpoint_name="bikeshare-staging")
    (problem,) = engine.take_problems()
    assert "bikeshare refuses ['rollback'" in problem
    assert "unrecognized arguments: --git-sha" in problem


async def test_writing_into_a_directory_nothing_created_is_caught(
    with_oidc: Any, engine: OfflineEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first engine reading's publish defect: ecr-login's password file in a missing dir."""
    monkeypatch.setattr(release, "ECR_LOGIN_DIR", "/run/elsewhere")
    with pytest.raises(Exception, match="/run/ecr/password, but its directory does not exist"):
        await with_oidc.publish(repository_url=REPOSITORY_URL)
    assert engine.take_problems() == [
        "bikeshare ecr-login writes /run/ecr/password, but its directory does not exist"
    ]


def test_a_working_directory_exists_only_once_a_process_ran_there(pipeline: Any) -> None:
    """The engine creates it when an exec starts (engineutil createCWD), not at withWorkdir."""
    moved = dag.container().from_("python:3.11-slim").with_workdir("/srv/app")
    assert replay(steps(moved.directory("/srv/app")))[1] == [
        "reads directory /srv/app, which nothing created"
    ]
    assert replay(steps(moved.with_exec(["true"]).directory("/srv/app")))[1] == []


def test_reading_a_path_nothing_created_is_caught(pipeline: Any) -> None:
    plan = steps(pipeline.tools().file("/run/bikeshare/report.md"))
    assert replay(plan)[1] == ["reads /run/bikeshare/report.md, which nothing created"]
    made = pipeline.tools().with_directory("/run/bikeshare", dag.directory())
    assert replay(steps(made.directory("/run/bikeshare")))[1] == []
    package = made.with_exec(["bikeshare", "package", "/nowhere", "--output", "/tmp/m.tar.gz"])
    assert replay(steps(package))[1] == ["bikeshare package reads /nowhere/: not there"]


# ---- publish -> deploy ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reference",
    [
        f"{REPOSITORY_URL}:0123456789ab@{DIGEST}",  # the engine's publish
        f"{REPOSITORY_URL}@{DIGEST}",  # bikeshare image-digest (the tag already exists)
    ],
)
def test_what_publish_returns_is_one_form_that_deploy_accepts(reference: str) -> None:
    returned = by_digest(reference)
    assert returned == f"{REPOSITORY_URL}@{DIGEST}"
    assert require_digest(returned).pinned == returned  # bikeshare deploy's own check


def test_a_registry_port_is_not_taken_for_a_tag() -> None:
    local = f"127.0.0.1:5001/team/bikeshare-serving:v1@{DIGEST}"
    assert by_digest(local) == f"127.0.0.1:5001/team/bikeshare-serving@{DIGEST}"
    assert by_digest(f"127.0.0.1:5001/x@{DIGEST}") == f"127.0.0.1:5001/x@{DIGEST}"
    with pytest.raises(ValueError, match="not an image reference with a sha256 digest"):
        by_digest(f"{REPOSITORY_URL}:v1")


async def test_a_first_push_and_a_re_run_return_the_same_reference(
    with_oidc: Any, make_engine: Any
) -> None:
    make_engine(default_answer)
    first = await with_oidc.publish(repository_url=REPOSITORY_URL)
    make_engine(lambda plan: default_answer(plan, tag_exists=True))
    again = await with_oidc.publish(repository_url=REPOSITORY_URL)
    assert first == again == f"{REPOSITORY_URL}@{DIGEST}"


async def test_a_tagged_reference_from_publish_is_caught(
    with_oidc: Any, engine: OfflineEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(release, "by_digest", lambda reference: reference)  # the old code
    returned = await with_oidc.publish(repository_url=REPOSITORY_URL)
    assert returned != f"{REPOSITORY_URL}@{DIGEST}"
    assert require_digest(returned).pinned != returned, "records would get two forms"


# ---- reproduce lines -------------------------------------------------------------------------


def dagger_call_problems(line: str) -> list[str]:
    """Check a `dagger call` line against the module: each function exists on the object the
    previous one returned, each flag is an argument of the function it follows, and no
    required argument is missing."""
    module = dagger_mod.default_module()
    tokens = line.split("dagger call", 1)[1].split()
    if tokens[:1] == ["-m"]:
        tokens = tokens[2:]
    obj, function, given, problems = module.get_object("BikeshareCi"), None, set(), []

    def close() -> None:
        if function is None:
            return
        required = {n for n, p in function.parameters.items()
                    if not (p.has_default or p.is_nullable)}  # fmt: skip
        problems.extend(f"{function.name}: --{n.replace('_', '-')} missing"
                        for n in sorted(required - given))  # fmt: skip

    params = module.get_object("BikeshareCi").get_constructor().parameters
    for token in tokens:
        if token.startswith("--"):
            name = token[2:].split("=", 1)[0].replace("-", "_")
            if name not in params:
                owner = function.name if function else "the constructor"
                problems.append(f"{owner} takes no --{name.replace('_', '-')}")
            given.add(name)
            continue
        close()
        name = token.replace("-", "_")
        if name not in obj.functions:
            problems.append(f"{obj.cls.__name__} has no function {token}")
            break
        function, given = obj.functions[name], set()
        params = function.parameters
        returned = re.search(r"\b(BikeshareCi|Release)\b", str(function.return_type))
        if returned:
            obj = module.get_object(returned.group(1))
    close()
    return problems


def reproduce_lines(summary: str) -> list[str]:
    return [line for line in summary.splitlines() if line.startswith("dagger call ")]


@pytest.mark.parametrize(("function", "kwargs"), [c for c in CASES if c[0] in
                         ("deploy", "promote", "rollback", "cd_staging")])  # fmt: skip
async def test_every_reproduce_line_is_a_call_the_module_accepts(
    pipeline: Any, engine: OfflineEngine, function: str, kwargs: dict
) -> None:
    keyed = pipeline.with_aws_keys(
        access_key_id=dag.set_secret("i", "AKIAEXAMPLE"),
        secret_access_key=dag.set_secret("k", "key"),
        region="ca-central-1",
        endpoint_url=ENDPOINT,
    )
    run = await getattr(keyed, function)(**kwargs)
    summary = {f.args["path"]: f.args["contents"] for f in steps(run)
               if f.name == "withNewFile"}[SUMMARY_FILE]  # fmt: skip
    (line,) = reproduce_lines(summary)
    assert dagger_call_problems(line) == []
    if "with-aws-keys" in line:  # cd-staging's line is the rehearsal, which needs no AWS
        assert f"--endpoint-url={ENDPOINT}" in line, "the same AWS as the run it reproduces"
    assert "env://AWS_SESSION_TOKEN" not in line, "fails wherever the variable is unset"
    assert "--session-token=env://AWS_SESSION_TOKEN" in summary, "but the report says when"


async def test_a_reproduce_line_keeps_a_non_default_base_image(engine: OfflineEngine) -> None:
    """Same pinned inputs: a run on a mirror's base image is reproduced on it."""
    mirrored = bikeshare_ci.BikeshareCi(
        source=dag.host().directory(str(ROOT)), git_sha=GIT_SHA, base_image="python:3.11-slim"
    ).with_aws_keys(
        access_key_id=dag.set_secret("i", "AKIAEXAMPLE"),
        secret_access_key=dag.set_secret("k", "key"),
        region="ca-central-1",
    )
    run = await mirrored.rollback(endpoint_name="bikeshare-staging")
    summary = {f.args["path"]: f.args["contents"] for f in steps(run)
               if f.name == "withNewFile"}[SUMMARY_FILE]  # fmt: skip
    (line,) = reproduce_lines(summary)
    assert line.startswith(f"dagger call -m . --git-sha={GIT_SHA} --base-image=python:3.11-slim ")
    assert dagger_call_problems(line) == []


def test_a_reproduce_line_with_a_wrong_flag_or_function_is_caught() -> None:
    prefix = f"dagger call -m . --git-sha={GIT_SHA}"
    keys = "with-aws-keys --access-key-id=env://A --secret-access-key=env://B --region=r"
    assert dagger_call_problems(f"{prefix} {keys} status --endpoint-name=e") == []
    assert dagger_call_problems(f"{prefix} {keys} rollback --endpoint-name=e --git-sha=x") == [
        "rollback takes no --git-sha"
    ]
    assert dagger_call_problems(f"{prefix} deploy --endpoint-name=e") == [
        "BikeshareCi has no function deploy"
    ]
    assert dagger_call_problems(f"{prefix} {keys} deploy --endpoint-name=e") == [
        f"deploy: --{flag} missing"
        for flag in ("execution-role-arn", "image-uri", "instance-type", "model-data")
    ]


# ---- checks: actionlint, the service, test-report, failure tails ---------------------------------


async def test_actionlint_is_given_every_workflow_file(pipeline: Any, engine: OfflineEngine):
    await pipeline.security()
    (plan,) = [p for p in engine.plans_ending_with("sync") if calls(p, "from")]
    command = calls(plan, "withExec")[-1]["args"]
    workflows = sorted(p.name for p in (ROOT / ".github/workflows").glob("*.yml"))
    assert command == ["actionlint", "-verbose", *[f".github/workflows/{w}" for w in workflows]]
    assert calls(plan, "from")[0]["address"] == containers.ACTIONLINT_IMAGE


def test_actionlint_without_files_is_caught(pipeline: Any) -> None:
    """The first engine reading's security defect: no .git in the container, no project."""
    workflows = dag.host().directory(str(ROOT)).directory(checks.WORKFLOWS)
    old = containers.actionlint_container(workflows).with_exec(["actionlint", "-verbose"])
    assert replay(steps(old))[1] == [
        "actionlint in /repo: no project was found in any parent directories"
    ]
    with pytest.raises(ValueError, match="no workflow files"):
        checks.actionlint_command(["README.md"])


async def test_the_service_is_ready_by_the_images_health_check_every_second(
    pipeline: Any, engine: OfflineEngine
) -> None:
    plan = steps(await pipeline.serve())
    (check,) = calls(plan, "withDockerHealthcheck")
    dockerfile = dockerfile_healthcheck()
    assert check["args"] == dockerfile["args"], "the image's own /ping probe, not a copy"
    assert check["startInterval"] == containers.HEALTHCHECK_START_INTERVAL == "1s"
    assert check["startPeriod"] == dockerfile["startPeriod"]
    assert dockerfile["interval"] == "30s", "why the start interval matters (core/healthcheck.go)"


async def test_test_report_returns_the_reports_when_tests_fail(
    pipeline: Any, make_engine: Any
) -> None:
    def answer(plan: list[Field]) -> Any:
        if plan[-1].name == "exitCode" and calls(plan, "withExec")[-1]["args"][0] == "pytest":
            return 1
        return default_answer(plan)

    engine = make_engine(answer)
    report = await pipeline.test_report()
    runs = engine.plans_ending_with("sync")
    assert len(runs) == len(checks.AREAS), "one pytest run per test area"
    for pytest_run in runs:
        assert calls(pytest_run, "withExec")[-1]["expect"] == dagger.ReturnType.ANY.value
    written = {f.args["path"]: f.args["contents"] for f in steps(report) if f.name == "withNewFile"}
    assert written == {checks.EXIT_CODE_FILE: "1\n"}
    areas = {c["path"]: c["source"] for c in calls(steps(report), "withDirectory")}
    assert list(areas) == list(checks.AREAS)
    for area in areas.values():
        assert calls(steps(area), "directory")[-1]["path"] == checks.REPORTS
        assert calls(steps(area), "withNewFile")[-1]["contents"] == "1\n"


async def test_a_failing_checks_stdout_is_in_cis_report(pipeline: Any, make_engine: Any) -> None:
    """pytest, ruff and black report on stdout; noise on stderr must not hide that."""

    def answer(plan: list[Field]) -> Any:
        command = calls(plan, "withExec")[-1]["args"] if calls(plan, "withExec") else []
        if plan[-1].name == "sync" and command[:1] == ["pytest"] and "-m" not in command:
            failure = "FAILED test/model/test_train.py::test_peak - assert 3 > 4"
            raise exec_error(command, "DeprecationWarning: noise on stderr", stdout=failure)
        return default_answer(plan)

    make_engine(answer)
    with pytest.raises(CiFailed) as failed:
        await pipeline.ci()
    assert "FAILED test/model/test_train.py::test_peak - assert 3 > 4" in str(failed.value)
    assert "noise on stderr" in str(failed.value)


def test_the_module_takes_its_images_as_arguments(pipeline: Any) -> None:
    """An air-gapped registry or mirror can serve every image; nothing needs a test-only edit."""
    local = bikeshare_ci.BikeshareCi(
        source=dag.host().directory(str(ROOT)),
        base_image="127.0.0.1:5001/library/python:3.11-slim",
        actionlint_image="127.0.0.1:5001/rhysd/actionlint:1.7.12",
        terraform_image="127.0.0.1:5001/hashicorp/terraform:1.13.3",
    )
    (build,) = calls(steps(local.tools()), "dockerBuild")
    assert build["buildArgs"] == [
        {"name": "BASE_IMAGE", "value": "127.0.0.1:5001/library/python:3.11-slim"}
    ]
    assert calls(steps(local.terraform_validate()), "from") == [
        {"address": "127.0.0.1:5001/hashicorp/terraform:1.13.3"}
    ]


def test_an_empty_base_image_is_the_pinned_default() -> None:
    """What the workflows pass when their BASE_IMAGE variable is unset."""
    unset = bikeshare_ci.BikeshareCi(source=dag.host().directory(str(ROOT)), base_image="")
    (build,) = calls(steps(unset.tools()), "dockerBuild")
    assert build["buildArgs"] == [{"name": "BASE_IMAGE", "value": containers.PYTHON_BASE}]


def dockerfile_env(stage: str) -> dict[str, str]:
    """The ENV a Dockerfile stage sets (its own lines; stages inherit from the ones before)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    body = text.split(f" AS {stage}\n", 1)[1].split("\nFROM ", 1)[0]
    found: dict[str, str] = {}
    for line in body.splitlines():
        if line.startswith("ENV "):
            found.update(pair.split("=", 1) for pair in line[4:].split())
    return found


def test_installers_in_the_images_trust_the_systems_certificate_store() -> None:
    """Found on the first engine build: uv's bundled roots refused the proxy CA that the engine
    installs into the system store ("invalid peer certificate: UnknownIssuer")."""
    assert dockerfile_env("uv")["UV_SYSTEM_CERTS"] == "1"
    assert dockerfile_env("tools")["REQUESTS_CA_BUNDLE"] == "/etc/ssl/certs/ca-certificates.crt"


# ---- replay ------------------------------------------------------------------------------------


def _keyed(pipeline: Any) -> Any:
    return pipeline.with_aws_keys(
        access_key_id=dag.set_secret("i", "AKIAEXAMPLE"),
        secret_access_key=dag.set_secret("k", "key"),
        region="ca-central-1",
        endpoint_url=ENDPOINT,
    )


def _probe_answer(exit_code: int, said: str) -> Any:
    """An engine whose replay probe exits `exit_code` saying `said`; all else as usual."""

    def answer(plan: list[Field]) -> Any:
        probe = last_command(plan)[:1] == ["python3"]
        if probe and plan[-1].name == "exitCode":
            return exit_code
        if probe and plan[-1].name == "stdout":
            return said
        return default_answer(plan)

    return answer


async def test_replay_serves_the_release_as_sagemaker_does(pipeline: Any, engine: Any) -> None:
    """The image by digest, the model at /opt/ml/model, `ENTRYPOINT serve`, the model's own
    serving example, and the probe's two files from src/ (standard library only)."""
    ran = await _keyed(pipeline).replay(
        image_uri=f"{REPOSITORY_URL}@{DIGEST}", model_data=MODEL_DATA
    )
    plan = steps(ran)
    assert calls(plan, "from")[-1]["address"] == f"{REPOSITORY_URL}@{DIGEST}"
    assert calls(plan, "withRegistryAuth")[-1]["address"] == REPOSITORY_URL.partition("/")[0]
    mounted = {c["path"] for c in calls(plan, "withDirectory")}
    assert {release.SAGEMAKER_MODEL_DIR, release.REPLAY_PROBE_DIR} <= mounted
    probe = [f"{release.REPLAY_PROBE_DIR}/replay.py", "--payload", release.SERVING_EXAMPLE]
    assert last_command(plan) == ["python3", *probe, "--", *dockerfile_entrypoint(), "serve"]
    execs = [
        args["args"] for item in nested_objects(plan) for args in calls(steps(item), "withExec")
    ]
    fetched = [argv for argv in execs if argv[1:2] == ["fetch-model"]]
    assert fetched, "the model archive is fetched (and its sha256 checked) by bikeshare"
    assert parse_bikeshare(fetched[0][1:]).model_data == MODEL_DATA
    for path in ("deploy/replay.py", "serving/answers.py"):
        text = (ROOT / "src/bikeshare" / path).read_text()
        assert "import bikeshare" not in text.replace("from bikeshare.serving.answers", "")


async def test_a_failed_replay_fails_with_the_step_and_the_log(
    pipeline: Any, make_engine: Any
) -> None:
    said = "replay failed at start: the server exited with status 1\n--- log ---\nTraceback"
    make_engine(_probe_answer(1, said))
    with pytest.raises(release.ReplayFailed, match="replay failed at start") as failed:
        await _keyed(pipeline).replay(endpoint_name="bikeshare-staging")
    assert "Traceback" in str(failed.value)
    assert f"{REPOSITORY_URL}@{DIGEST}" in str(failed.value), "resolved from the endpoint"
    kept = await _keyed(pipeline).replay(endpoint_name="bikeshare-staging", keep_failed=True)
    assert last_command(steps(kept))[0] == "python3", "the container, to explore"


async def test_a_failed_cd_run_prints_the_replay_line_of_its_release(
    pipeline: Any, make_engine: Any
) -> None:
    def answer(plan: list[Field]) -> Any:
        if plan[-1].name == "exitCode" and last_command(plan)[:2] == ["bikeshare", "deploy"]:
            return 1
        return default_answer(plan)

    make_engine(answer)
    kwargs = {**RELEASE_CALLS["cd_staging"][0]}
    run = await _keyed(pipeline).cd_staging(**kwargs)
    summary = {f.args["path"]: f.args["contents"] for f in steps(run)
               if f.name == "withNewFile"}[SUMMARY_FILE]  # fmt: skip
    rehearse, replay_line = reproduce_lines(summary)
    assert rehearse.endswith(" rehearse")
    assert dagger_call_problems(replay_line) == []
    assert f"--image-uri={REPOSITORY_URL}@{DIGEST}" in replay_line
    assert f"--model-data={MODEL_DATA}" in replay_line
    assert f"--endpoint-url={ENDPOINT}" in replay_line
