"""The Dagger module, verified offline with the pinned dagger-io: what it registers, the plans it
builds, and the GraphQL those plans render to, validated against Dagger v0.21.8's schema.

Each rule is a small checker that returns the problems it finds; every checker is shown to catch
the mistake it exists for (a missing docstring, a cacheable deploy, a secret in plain env, OCI
media types on publish), so a green run means the rule is really enforced.
"""

from __future__ import annotations

import json
import re
from typing import Any

import dagger
import dagger.mod as dagger_mod
import pytest
from dagger import dag
from dagger.client._core import Field

import bikeshare_ci
from bikeshare_ci import checks, containers
from bikeshare_ci.main import CiFailed
from bikeshare_ci.release import ECR_LOGIN_DIR
from bikeshare_ci.report import FAILED, OUTCOME_FILE, SUCCEEDED, SUMMARY_FILE
from pipeline.conftest import DIGEST, ECR_PASSWORD, GIT_SHA, REPOSITORY_URL, default_answer
from support.dagger_plans import (
    ROOT,
    OfflineEngine,
    calls,
    dagger_functions,
    exec_error,
    nested_objects,
    steps,
    validation_errors,
)
from support.dagger_plans import (
    registered as registered_names,
)

AREA_CHECKS = {f"test_{name}" for name in checks.AREAS}
CHECKS = {"lint", "security", "terraform_validate", "image_test"} | AREA_CHECKS
SIDE_EFFECTS = {
    "publish", "upload_model", "deploy", "promote", "rollback", "smoke", "status", "logs",
    "cd_staging", "replay", "replay_service",
}  # fmt: skip
EXPECTED = CHECKS | {
    "ci", "test", "test_report", "rehearse", "build", "tools", "model", "serve",
    "with_aws_oidc", "with_aws_keys",
}  # fmt: skip
OBJECTS = ("BikeshareCi", "Release")
# Quick and engine-free: also the subset the suite runs inside the tools container.
pytestmark = [pytest.mark.anyio, pytest.mark.tools_container]
SECRET_NAMES = re.compile(r"SECRET|TOKEN|PASSWORD|ACCESS_KEY|CREDENTIAL", re.IGNORECASE)


def registered(name: str = "BikeshareCi") -> Any:
    return dagger_mod.default_module().get_object(name)


# ---- what the module registers ---------------------------------------------------------------


def doc_problems(obj: Any) -> list[str]:
    """Functions or arguments without a docstring (they are `dagger functions`' help text)."""
    problems = []
    for name, fn in obj.functions.items():
        if not (fn.doc or "").strip():
            problems.append(f"{name or 'constructor'} has no docstring")
        problems += [
            f"{name or 'constructor'}: argument {p.name} has no Doc"
            for p in fn.parameters.values()
            if not (p.doc or "").strip()
        ]
    return problems


def caching_problems(release: Any) -> list[str]:
    """Side-effecting functions that Dagger could replay from its cache."""
    return [
        f"{name} is cacheable (cache={release.functions[name].cache_policy!r})"
        for name in sorted(SIDE_EFFECTS)
        if release.functions[name].cache_policy != "never"
    ]


def fresh_problems(obj: Any) -> list[str]:
    """A function with --fresh whose result the engine keeps across sessions (7 days by
    default, core/modfunc.go): a second `--fresh` call would replay the first."""
    return [
        f"{name} takes --fresh but is cached across sessions (cache={fn.cache_policy!r})"
        for name, fn in sorted(obj.functions.items())
        if "fresh" in fn.parameters and fn.cache_policy not in ("session", "never")
    ]


def test_the_module_is_what_dagger_init_lays_out_and_is_pinned() -> None:
    config = json.loads((ROOT / "dagger.json").read_text())
    assert config == {
        "name": "bikeshare-ci",
        "engineVersion": "v0.21.8",
        "sdk": {"source": "python"},
        "source": "ci",
    }
    layout = ["pyproject.toml", ".gitignore", ".gitattributes", "src/bikeshare_ci/__init__.py",
              "src/bikeshare_ci/main.py"]  # fmt: skip
    assert all((ROOT / "ci" / path).is_file() for path in layout)
    assert (ROOT / "ci/.gitignore").read_text().split() == [
        "/.venv", "/**/__pycache__", "/sdk", "/.env",
    ]  # fmt: skip
    assert (
        'dagger-io = { path = "sdk", editable = true }' in (ROOT / "ci/pyproject.toml").read_text()
    )
    # The runtime installs exactly this lock (`uv sync`); without it, an unpinned `uv pip install`.
    module_lock = (ROOT / "ci/uv.lock").read_text()
    assert '[package.metadata]\nrequires-dist = [{ name = "dagger-io", editable = "sdk" }]' in (
        module_lock
    )
    lock = (ROOT / "uv.lock").read_text()
    assert re.search(r'name = "dagger-io"\nversion = "0\.21\.8"', lock), "SDK = engine = schema"


def test_every_function_is_registered_with_its_docs() -> None:
    assert set(registered().functions) - {""} == EXPECTED
    assert set(registered("Release").functions) == SIDE_EFFECTS
    for name in OBJECTS:
        assert doc_problems(registered(name)) == [], name
    assert dagger_mod.default_module().get_object("AwsAccess")  # state type of with-aws-*


def test_release_functions_cannot_be_called_without_credentials() -> None:
    """They live on Release, which only with-aws-oidc and with-aws-keys return."""
    assert not SIDE_EFFECTS & set(registered().functions)
    for name in ("with_aws_oidc", "with_aws_keys"):
        assert "Release" in str(registered().functions[name].return_type), name


def summary_line_problems(obj: Any) -> list[str]:
    """`dagger call --help` shows a docstring's first line alone: it must be a whole sentence."""
    return [
        f"{name}: {first!r} is not a sentence on its own"
        for name, fn in obj.functions.items()
        if name and not (first := (fn.doc or "").strip().splitlines()[0]).endswith((".", ")"))
    ]


def test_every_summary_line_stands_alone() -> None:
    for name in OBJECTS:
        assert summary_line_problems(registered(name)) == [], name


def test_a_summary_line_cut_mid_sentence_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    fn = registered().functions["rehearse"]
    cut = "The release engine's whole CD path against the local AWS stand-in, inside the tools\n"
    monkeypatch.setattr(fn.wrapped, "__doc__", cut + "container: ...")
    assert summary_line_problems(registered()) == [
        "rehearse: \"The release engine's whole CD path against the local AWS stand-in, inside "
        'the tools" is not a sentence on its own'
    ]


def test_a_missing_docstring_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    fn = registered("Release").functions["deploy"]
    monkeypatch.setattr(fn.wrapped, "__doc__", None)
    assert doc_problems(registered("Release")) == ["deploy has no docstring"]


def test_checks_need_no_arguments_and_are_checks() -> None:
    obj = registered()
    for name in CHECKS:
        fn = obj.functions[name]
        assert fn.check, f"{name} is not a @check"
        assert all(p.has_default or p.is_nullable for p in fn.parameters.values()), name
        assert "Container" in str(fn.return_type), f"{name} must return the container it ran"
    assert not obj.functions["ci"].check, "ci runs the checks; it is not one"
    assert not obj.functions["test"].check, "test runs the area checks; it is not one"
    assert not obj.functions["rehearse"].check, "test-release runs the rehearsal; not twice"


def test_side_effects_are_never_cached() -> None:
    assert caching_problems(registered("Release")) == []
    assert registered().functions["build"].cache_policy is None  # pure: cached by the engine


def test_a_cacheable_deploy_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registered("Release").functions["deploy"], "cache_policy", None)
    assert caching_problems(registered("Release")) == ["deploy is cacheable (cache=None)"]


def test_fresh_runs_are_never_replayed_from_the_function_cache() -> None:
    assert fresh_problems(registered()) == []
    assert {"ci", "lint", "rehearse"} <= {
        name for name, fn in registered().functions.items() if "fresh" in fn.parameters
    }


def test_a_fresh_function_cached_across_sessions_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(registered().functions["ci"], "cache_policy", None)
    assert fresh_problems(registered()) == [
        "ci takes --fresh but is cached across sessions (cache=None)"
    ]


async def test_the_type_definitions_render_and_validate(
    engine: OfflineEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = dagger_mod.default_module()
    # The engine sets DAGGER_MAIN_OBJECT=BikeshareCi before the SDK is imported; the same here.
    monkeypatch.setattr(module, "_main_name", "BikeshareCi")
    monkeypatch.setattr(module, "_main", module.get_object("BikeshareCi"))
    await module._typedefs()  # what `dagger functions` reads
    (plan,) = engine.plans_ending_with("id")
    functions = [f.args["name"] for f in plan if f.name == "function"] + [
        a["name"] for obj in nested_objects(plan) for a in calls(steps(obj), "function")
    ]
    assert {"cdStaging", "ci", "publish"} <= {_camel(n) for n in functions}
    assert validation_errors(plan) == []


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


# ---- the plans -------------------------------------------------------------------------------


def pinned_image_problems(plan: list[Field]) -> list[str]:
    addresses = [a["address"] for a in calls(plan, "from")]
    addresses += [
        a["value"] for a in calls(plan, "dockerBuild") for a in a.get("buildArgs", [])
        if a["name"] == "BASE_IMAGE"
    ]  # fmt: skip
    pinned = re.compile(
        r"^[\w./-]+:(\d+\.\d+\.\d+)(-[\w.]+)?(@sha256:[0-9a-f]{64})?$|@sha256:[0-9a-f]{64}$"
    )
    return [f"{address} is not pinned" for address in addresses if not pinned.search(address)]


def secret_problems(plan: list[Field], plaintexts: list[str]) -> list[str]:
    """Secrets must reach containers through withSecretVariable/withMountedSecret only."""
    problems = []
    for env in calls(plan, "withEnvVariable"):
        if SECRET_NAMES.search(env["name"]):
            problems.append(f"{env['name']} is plain environment")
        if any(secret in env["value"] for secret in plaintexts):
            problems.append(f"{env['name']} carries a secret's value")
    for exec_args in calls(plan, "withExec"):
        if any(secret in arg for secret in plaintexts for arg in exec_args["args"]):
            problems.append("a command line carries a secret's value")
    return problems


def side_effect_plan_problems(plan: list[Field]) -> list[str]:
    """Every bikeshare release command runs after a per-call cache-buster."""
    names = [f.name for f in plan]
    if "withExec" not in names:
        return []
    buster = [i for i, f in enumerate(plan) if f.name == "withEnvVariable"
              and f.args["name"] == containers.RUN_TOKEN_VARIABLE]  # fmt: skip
    last_exec = max(i for i, name in enumerate(names) if name == "withExec")
    return [] if buster and buster[0] < last_exec else ["no cache-buster before the command"]


def publish_problems(plan: list[Field]) -> list[str]:
    publishes = calls(plan, "publish")
    return [
        f"publish uses {p.get('mediaTypes', 'OCIMediaTypes (the default)')}"
        for p in publishes
        if p.get("mediaTypes") != "DockerMediaTypes"
    ]


def test_the_tools_container_installs_the_lock_before_the_source(pipeline: Any) -> None:
    plan = steps(pipeline.tools())
    names = [f.name for f in plan]
    (build,) = calls(plan, "dockerBuild")
    assert build["target"] == "tools"
    assert {"name": "BASE_IMAGE", "value": containers.PYTHON_BASE} in build["buildArgs"]
    assert names.index("dockerBuild") < names.index("withDirectory") < names.index("withExec")
    assert calls(plan, "withMountedCache")[0]["path"] == containers.UV_CACHE
    assert calls(plan, "withExec")[-1]["args"] == ["uv", "sync", "--locked", "--all-extras"]


def workspace_includes(plan: list[Field]) -> list[str] | None:
    """The include patterns of the directory a tools container gets at /workspace (None: the
    whole source, unfiltered)."""
    (mounted,) = [c["source"] for c in calls(plan, "withDirectory")
                  if c["path"] == containers.WORKSPACE]  # fmt: skip
    filters = calls(steps(mounted), "filter")
    return filters[-1]["include"] if filters else None


def workspace_excludes(plan: list[Field]) -> list[str]:
    """The exclude patterns of the directory a tools container gets at /workspace."""
    (mounted,) = [c["source"] for c in calls(plan, "withDirectory")
                  if c["path"] == containers.WORKSPACE]  # fmt: skip
    filters = calls(steps(mounted), "filter")
    return list(filters[-1].get("exclude", [])) if filters else []


def image_context_includes(plan: list[Field]) -> list[str]:
    """The include patterns of the build context of the plan's dockerBuild."""
    before = plan[: [f.name for f in plan].index("dockerBuild")]
    return calls(before, "filter")[-1]["include"]


@pytest.mark.parametrize("area", sorted(checks.AREAS))
def test_each_area_runs_its_tests_on_only_its_inputs(pipeline: Any, area: str) -> None:
    spec = checks.AREAS[area]
    plan = steps(getattr(pipeline, f"test_{area}")())
    expected = None if spec.everything else list(spec.inputs())
    assert workspace_includes(plan) == expected
    assert workspace_excludes(plan) == (list(spec.elsewhere) if expected else [])
    command = calls(plan, "withExec")[-1]["args"]
    assert command == list(checks.pytest_command(paths=spec.pytest_paths()))
    assert image_context_includes(plan) == list(checks.TOOLS_IMAGE_INPUTS)
    assert validation_errors(plan) == []


def test_the_checks_get_narrow_inputs_and_one_tools_image(pipeline: Any) -> None:
    """Every check's tools image comes from the same few files, so it is built once and no
    source change rebuilds it; each workspace is only what the check reads."""
    assert workspace_includes(steps(pipeline.lint())) == list(checks.LINT_INPUTS)
    assert workspace_includes(steps(pipeline.rehearse())) == list(checks.AREAS["release"].inputs())
    model = steps(pipeline.model())
    assert workspace_includes(model) == list(checks.PROJECT_INPUTS)
    for plan in (steps(pipeline.lint()), steps(pipeline.rehearse()), model):
        assert image_context_includes(plan) == list(checks.TOOLS_IMAGE_INPUTS)


async def test_security_gets_its_inputs_and_the_serving_image_its_context(
    pipeline: Any, engine: OfflineEngine
) -> None:
    assert workspace_includes(steps(await pipeline.security())) == list(checks.SECURITY_INPUTS)
    served = steps(await pipeline.build())
    assert image_context_includes(served) == list(checks.SERVING_IMAGE_INPUTS)
    probe = steps(await pipeline.image_test())
    assert workspace_includes(probe) == list(checks.PROJECT_INPUTS), "a docs edit replays it"


def test_the_tools_image_inputs_are_what_its_dockerfile_stages_copy() -> None:
    """The `tools` target (and the `uv` stage it builds on) COPYs these; a new COPY there
    would be left out of the build context and fail the build, so it must be added here."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = dockerfile.split("FROM uv AS build")[0]  # ARG, the uv stage, the tools stage
    copied = {name.rstrip("*") for line in re.findall(r"^COPY (.*) \S+$", stages, re.M)
              for name in line.split()}  # fmt: skip
    assert copied == {"pyproject.toml", "uv.lock", "build-ca"}
    assert {"pyproject.toml", "uv.lock", "build-ca.pem", "Dockerfile", ".dockerignore"} == set(
        checks.TOOLS_IMAGE_INPUTS
    )


async def test_test_runs_every_area_and_tables_each(pipeline: Any, make_engine: Any) -> None:
    def answer(plan: list[Field]) -> Any:
        command = _last_exec(plan)
        if plan[-1].name == "sync" and checks.AREAS["infra"].tests[0] in command:
            raise exec_error(command, "", stdout="FAILED test/infra/test_terraform.py::x")
        return default_answer(plan)

    make_engine(answer)
    with pytest.raises(CiFailed) as failed:
        await pipeline.test()
    message = str(failed.value)
    assert "| test-infra | FAILED |" in message
    assert "FAILED test/infra/test_terraform.py::x" in message
    for area in set(checks.AREAS) - {"infra"}:
        assert f"| test-{area} | passed |" in message


async def test_the_base_image_is_the_dockerfile_one_and_every_image_is_pinned(
    pipeline: Any, engine: OfflineEngine
) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"ARG BASE_IMAGE={containers.PYTHON_BASE}\n" in dockerfile
    await pipeline.security()
    plans = [*engine.executed, steps(pipeline.terraform_validate()), steps(pipeline.tools())]
    for plan in plans:
        assert pinned_image_problems(plan) == []
    assert pinned_image_problems([Field("Container", "from", {"address": "python:3.11"})])


def test_caches_are_volumes(pipeline: Any) -> None:
    terraform = steps(pipeline.terraform_validate())
    (cache,) = calls(terraform, "withMountedCache")
    assert cache["path"] == containers.TERRAFORM_PLUGIN_CACHE
    assert {"name": "TF_PLUGIN_CACHE_DIR", "value": cache["path"]} in calls(
        terraform, "withEnvVariable"
    )
    assert [c["args"] for c in calls(terraform, "withExec")] == [
        ["terraform", "fmt", "-check", "-recursive", "-diff"],
        ["terraform", "init", "-backend=false", "-input=false"],
        ["terraform", "validate"],
    ]


async def test_a_deploy_passes_secrets_only_through_secret_apis_with_a_cache_buster(
    with_oidc: Any, engine: OfflineEngine
) -> None:
    run = await with_oidc.deploy(
        endpoint_name="bikeshare-staging", image_uri=f"{REPOSITORY_URL}@{DIGEST}",
        model_data="s3://b/models/x/model.tar.gz", instance_type="ml.m5.large",
        execution_role_arn="arn:aws:iam::123456789012:role/exec", alarms=["a5xx", ""],
    )  # fmt: skip
    (plan,) = [p for p in engine.plans_ending_with("sync") if "deploy" in _last_exec(p)]
    assert {s["name"] for s in calls(plan, "withSecretVariable")} == {
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    }
    assert secret_problems(plan, ["actions-token-value", "token.actions.example"]) == []
    assert side_effect_plan_problems(plan) == []
    command = _last_exec(plan)
    assert command[command.index("--git-sha") + 1] == GIT_SHA
    assert command[command.index("--alarm") + 1] == "a5xx"
    assert command.count("--alarm") == 1, "empty alarm names (an unset variable) are dropped"
    assert validation_errors(plan) == []
    assert {f.name for f in steps(run)} >= {"withNewFile"}


async def test_a_secret_passed_as_plain_environment_is_caught(pipeline: Any) -> None:
    leaky = pipeline.tools().with_env_variable("AWS_SECRET_ACCESS_KEY", "plain")
    assert secret_problems(steps(leaky), []) == ["AWS_SECRET_ACCESS_KEY is plain environment"]
    copied = pipeline.tools().with_env_variable("TOKEN_COPY", "actions-token-value")
    assert "TOKEN_COPY carries a secret's value" in secret_problems(
        steps(copied), ["actions-token-value"]
    )


async def test_dropping_the_cache_buster_is_caught(pipeline: Any) -> None:
    plain = pipeline.tools().with_exec(["bikeshare", "rollback"])
    assert side_effect_plan_problems(steps(plain)) == ["no cache-buster before the command"]


async def test_two_calls_never_share_a_cache_key(with_oidc: Any, engine: OfflineEngine) -> None:
    await with_oidc.rollback(endpoint_name="bikeshare-staging")
    await with_oidc.rollback(endpoint_name="bikeshare-staging")
    tokens = [
        env["value"]
        for plan in engine.plans_ending_with("sync")
        for env in calls(plan, "withEnvVariable")
        if env["name"] == containers.RUN_TOKEN_VARIABLE
    ]
    assert len(tokens) == 2
    assert tokens[0] != tokens[1]


async def test_access_keys_go_in_as_secret_variables(pipeline: Any, engine: OfflineEngine) -> None:
    keyed = pipeline.with_aws_keys(
        access_key_id=dag.set_secret("id", "AKIAEXAMPLE"),
        secret_access_key=dag.set_secret("key", "secret-key-value"),
        session_token=dag.set_secret("session", "session-token-value"),
        region="ca-central-1",
    )
    await keyed.status(endpoint_name="bikeshare-staging")
    (plan,) = engine.plans_ending_with("stdout")
    assert {s["name"] for s in calls(plan, "withSecretVariable")} == {
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    }  # fmt: skip
    assert secret_problems(plan, ["AKIAEXAMPLE", "secret-key-value", "session-token-value"]) == []


async def test_publish_refuses_without_a_commit_or_tag(engine: OfflineEngine) -> None:
    unnamed = bikeshare_ci.BikeshareCi(source=dag.host().directory(str(ROOT))).with_aws_keys(
        access_key_id=dag.set_secret("id", "AKIAEXAMPLE"),
        secret_access_key=dag.set_secret("key", "secret-key-value"),
        region="ca-central-1",
    )
    with pytest.raises(ValueError, match=r"publish needs the commit: pass --git-sha=COMMIT"):
        await unnamed.publish(repository_url=REPOSITORY_URL)
    assert engine.executed == [], "refused before anything ran"
    tagged = await unnamed.publish(repository_url=REPOSITORY_URL, tag="v1.2.0")
    assert tagged == f"{REPOSITORY_URL}@{DIGEST}"
    (plan,) = engine.plans_ending_with("publish")
    assert calls(plan, "publish")[0]["address"] == f"{REPOSITORY_URL}:v1.2.0"


async def test_publish_pushes_docker_media_types_with_the_ecr_password_as_a_secret(
    with_oidc: Any, engine: OfflineEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets: list[tuple[str, str]] = []
    real_set_secret = dagger.Client.set_secret
    monkeypatch.setattr(
        dagger.Client,
        "set_secret",
        lambda self, name, plaintext: secrets.append((name, plaintext))
        or real_set_secret(self, name, plaintext),
    )
    reference = await with_oidc.publish(repository_url=REPOSITORY_URL)
    assert reference == f"{REPOSITORY_URL}@{DIGEST}", "the tag the engine keeps is dropped"
    (plan,) = engine.plans_ending_with("publish")
    assert publish_problems(plan) == []
    assert calls(plan, "publish")[0]["address"] == f"{REPOSITORY_URL}:{GIT_SHA[:12]}"
    (auth,) = calls(plan, "withRegistryAuth")
    assert auth["username"] == "AWS"
    assert isinstance(auth["secret"], dagger.Secret)
    assert [plaintext for _, plaintext in secrets] == [ECR_PASSWORD]
    login = next(p for p in engine.executed if "ecr-login" in _last_exec(p))
    assert "--password-file" in _last_exec(login)
    assert ECR_LOGIN_DIR in [d["path"] for d in calls(login, "withDirectory")]
    assert side_effect_plan_problems(login) == []
    (build,) = calls(plan, "dockerBuild")
    assert build["target"] == "serving"
    assert build["platform"] == "linux/amd64"
    assert {"name": "MODEL_RUNTIME", "value": "mlflow-skinny==3.17.2\nscikit-learn==1.9.1"} in (
        build["buildArgs"]
    )
    labels = {c["name"]: c["value"] for c in calls(plan, "withLabel")}
    assert labels["org.opencontainers.image.revision"] == GIT_SHA
    assert labels["org.opencontainers.image.version"]
    assert validation_errors(plan) == []


async def test_publishing_oci_media_types_is_caught(pipeline: Any, engine: OfflineEngine) -> None:
    image = pipeline.tools()
    await image.publish("registry.example/x:1")  # the SDK's default: OCI
    await image.publish("registry.example/x:2", media_types=dagger.ImageMediaTypes.OCIMediaTypes)
    default, explicit = engine.plans_ending_with("publish")
    assert publish_problems(default) == ["publish uses OCIMediaTypes (the default)"]
    # The SDK sends nothing for a default value, so asking for OCI explicitly is the same query.
    assert publish_problems(explicit) == publish_problems(default)


async def test_publish_reuses_the_digest_of_an_existing_tag(
    with_oidc: Any, make_engine: Any
) -> None:
    engine = make_engine(lambda plan: default_answer(plan, tag_exists=True))
    assert await with_oidc.publish(repository_url=REPOSITORY_URL) == f"{REPOSITORY_URL}@{DIGEST}"
    assert engine.plans_ending_with("publish") == []


async def test_the_service_runs_the_image_as_sagemaker_does(pipeline: Any, engine: OfflineEngine):
    service = await pipeline.serve()
    plan = steps(service)
    (as_service,) = calls(plan, "asService")
    assert as_service == {"args": ["serve"], "useEntrypoint": True}
    assert calls(plan, "withExposedPort")[0]["port"] == 8080
    assert calls(plan, "withDirectory")[-1]["path"] == containers.MODEL_DIR
    assert validation_errors(plan) == []


async def test_image_test_probes_the_service_over_http(pipeline: Any, engine: OfflineEngine):
    probe = await pipeline.image_test()
    plan = steps(probe)
    (binding,) = calls(plan, "withServiceBinding")
    assert binding["alias"] == "model"
    assert calls(plan, "withExec")[-1]["args"][:3] == ["bikeshare", "probe", "http://model:8080"]
    assert validation_errors(plan) == []


async def test_cd_staging_reports_success_with_a_safe_reproduce_line(
    with_oidc: Any, engine: OfflineEngine
) -> None:
    run = await with_oidc.cd_staging(
        repository_url=REPOSITORY_URL, endpoint_name="bikeshare-staging",
        instance_type="ml.m5.large", execution_role_arn="arn:aws:iam::1:role/exec",
        model_data="s3://bikeshare-models/models/x/model.tar.gz",
    )  # fmt: skip
    files = run_files(run)
    assert files[OUTCOME_FILE] == SUCCEEDED
    summary = files[SUMMARY_FILE]
    assert summary.startswith("## cd-staging to bikeshare-staging: succeeded")
    for step in ("build and publish image", "deploy, verify, smoke"):
        assert f"| {step} | passed |" in summary
    trained = [c for p in engine.executed for c in calls(p, "withExec")
               if c["args"][:2] == ["bikeshare", "train"]]  # fmt: skip
    assert not trained, "CD ships the model it is given and never trains one"
    line = f"dagger call -m github.com/example-org/bikeshare-delivery@{GIT_SHA}"
    assert f"{line} --git-sha={GIT_SHA} rehearse" in summary
    deploys = [p for p in engine.executed if "deploy" in _last_exec(p)[:2]]
    assert deploys, "the deploy ran"
    assert all(side_effect_plan_problems(p) == [] for p in deploys)


async def test_cd_staging_reports_a_failed_release_and_still_returns_the_report(
    with_oidc: Any, make_engine: Any
) -> None:
    def answer(plan: list[Field]) -> Any:
        command = _last_exec(plan)
        if command[:2] == ["bikeshare", "deploy"] and plan[-1].name == "exitCode":
            return 1
        if command[:2] == ["bikeshare", "deploy"] and plan[-1].name == "stderr":
            return "bikeshare deploy: error: smoke test failed; bikeshare-staging is serving v1"
        return default_answer(plan)

    make_engine(answer)
    run = await with_oidc.cd_staging(
        repository_url=REPOSITORY_URL, endpoint_name="bikeshare-staging",
        instance_type="ml.m5.large", execution_role_arn="arn:aws:iam::1:role/exec",
        model_data="s3://bikeshare-models/models/x/model.tar.gz",
    )  # fmt: skip
    files = run_files(run)
    assert files[OUTCOME_FILE] == FAILED
    assert "| deploy, verify, smoke | FAILED |" in files[SUMMARY_FILE]
    assert "bikeshare-staging is serving v1" in files[SUMMARY_FILE]
    assert "train and upload model" not in files[SUMMARY_FILE], "the given model is used"


@pytest.mark.parametrize("model_data", ["", "  "])
async def test_cd_staging_without_a_model_changes_nothing_and_says_what_to_set(
    with_oidc: Any, engine: OfflineEngine, model_data: str
) -> None:
    """The workflow passes an unset S3_MODEL_TAR as an empty string."""
    run = await with_oidc.cd_staging(
        repository_url=REPOSITORY_URL, endpoint_name="bikeshare-staging",
        instance_type="ml.m5.large", execution_role_arn="arn:aws:iam::1:role/exec",
        model_data=model_data,
    )  # fmt: skip
    files = run_files(run)
    assert files[OUTCOME_FILE] == FAILED
    summary = files[SUMMARY_FILE]
    assert "| model | FAILED |" in summary
    assert "no model to deploy, nothing was changed" in summary
    assert "S3_MODEL_TAR" in summary
    assert "CD never trains one" in summary
    assert "| build and publish image | skipped |" in summary
    assert "| deploy, verify, smoke | skipped |" in summary
    assert "Reproduce on a laptop" not in summary, "a missing variable is not reproduced"
    ran = [c["args"] for p in engine.executed for c in calls(p, "withExec")]
    assert ran == [], "nothing ran: no image built, pushed or deployed"


async def test_ci_runs_every_check_to_the_end_and_reports_every_failure(
    pipeline: Any, make_engine: Any
) -> None:
    def answer(plan: list[Field]) -> Any:
        command = _last_exec(plan)
        if plan[-1].name == "sync" and command[:1] in (["ruff"], ["black"]):
            raise exec_error(command, f"{command[0]}: would reformat src/x.py")
        if plan[-1].name == "sync" and command[:1] == ["terraform"]:
            raise exec_error(command, "Error: Unsupported argument")
        return default_answer(plan)

    engine = make_engine(answer)
    with pytest.raises(CiFailed) as failed:
        await pipeline.ci()
    message = str(failed.value)
    assert "| lint | FAILED |" in message
    assert "| terraform-validate | FAILED |" in message
    for passed in ("security", "image-test", *(f"test-{a}" for a in checks.AREAS)):
        assert f"| {passed} | passed |" in message
    assert "| rehearse |" not in message, "test-release runs the rehearsal; ci not twice"
    assert "black: would reformat src/x.py" in message or "ruff:" in message
    assert "Error: Unsupported argument" in message
    ran = {_last_exec(p)[0] for p in engine.plans_ending_with("sync") if _last_exec(p)}
    assert {"pytest", "bikeshare", "actionlint"} <= ran, "the other checks still ran"


async def test_the_weekly_run_busts_the_check_cache(pipeline: Any) -> None:
    fresh = calls(steps(pipeline.lint(fresh=True)), "withEnvVariable")
    assert containers.RUN_TOKEN_VARIABLE in {env["name"] for env in fresh}
    cached = calls(steps(pipeline.lint()), "withEnvVariable")
    assert containers.RUN_TOKEN_VARIABLE not in {env["name"] for env in cached}


async def test_plans_render_to_valid_graphql(pipeline: Any, engine: OfflineEngine) -> None:
    report = await pipeline.test_report()
    for plan in (steps(pipeline.lint()), steps(report), steps(pipeline.model())):
        assert validation_errors(plan) == []
    bad = [Field("Query", "container", {}), Field("Container", "withExec", {"argz": ["x"]})]
    assert validation_errors(bad), "the validator rejects a wrong argument"


def run_files(run: Any) -> dict[str, str]:
    """The files a release function's result directory is made of (summary.md, outcome)."""
    return {f.args["path"]: f.args["contents"] for f in steps(run) if f.name == "withNewFile"}


def _last_exec(plan: list[Field]) -> list[str]:
    execs = calls(plan, "withExec")
    return execs[-1]["args"] if execs else []


def test_module_functions_match_the_workflows() -> None:
    """Every function a workflow calls exists (in kebab-case, as the CLI names it)."""
    core_api = {"export", "file", "contents"}  # Directory.export, Host.file, File.contents
    names = registered_names() | core_api
    for workflow in (ROOT / ".github/workflows").glob("*.yml"):
        text = workflow.read_text()
        for called in re.findall(r"\| ([a-z][a-z-]+) --", text) + re.findall(
            r"call: .* ([a-z][a-z-]+) --fresh", text
        ):
            assert called in names, f"{workflow.name} calls {called}"
    assert bikeshare_ci.BikeshareCi.__doc__


async def test_release_reproduce_lines_are_complete_dry_runs(
    with_oidc: Any, engine: OfflineEngine
) -> None:
    run = await with_oidc.promote(
        from_endpoint="bikeshare-staging", endpoint_name="bikeshare-prod",
        instance_type="ml.m5.large", execution_role_arn="arn:aws:iam::1:role/exec",
        alarms=["bikeshare-prod-5xx", "bikeshare-prod-latency"],
    )  # fmt: skip
    summary = run_files(run)[SUMMARY_FILE]
    (line,) = [line for line in summary.splitlines() if line.startswith("dagger call -m ")]
    assert line == (
        f"dagger call -m github.com/example-org/bikeshare-delivery@{GIT_SHA} --git-sha={GIT_SHA} "
        "with-aws-keys --access-key-id=env://AWS_ACCESS_KEY_ID "
        "--secret-access-key=env://AWS_SECRET_ACCESS_KEY --region=ca-central-1 "
        "promote --from-endpoint=bikeshare-staging --endpoint-name=bikeshare-prod "
        "--instance-type=ml.m5.large --execution-role-arn=arn:aws:iam::1:role/exec "
        "--alarms=bikeshare-prod-5xx,bikeshare-prod-latency --strategy=all-at-once "
        "--instance-count=1 --dry-run"
    )
    assert set(dagger_functions(line)) <= registered_names(), "every function in it exists"
