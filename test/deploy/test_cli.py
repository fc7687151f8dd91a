"""The release commands as people and the pipeline run them: real processes, real HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bikeshare.model.features import FEATURE_NAMES
from support import run_cli
from support.aws import REGION, ROLE, Aws

ENDPOINT = "bikeshare-staging"


def aws_args(aws: Aws) -> list[str]:
    return ["--region", REGION, "--endpoint-url", aws.url]


def deploy_args(aws: Aws, model_uri: str, *extra: str) -> list[str]:
    return [
        "deploy",
        "--endpoint-name",
        ENDPOINT,
        "--image-uri",
        aws.image,
        "--model-data",
        model_uri,
        "--instance-type",
        "ml.m5.large",
        "--execution-role-arn",
        ROLE,
        "--poll-seconds",
        "0.2",
        "--git-sha",
        "cafebabe1234",
        *extra,
        *aws_args(aws),
    ]


def test_upload_is_content_addressed_and_idempotent(
    aws: Aws, model_uri: str, model_archive: Path
) -> None:
    again = run_cli(
        "upload-model", str(model_archive), "--bucket", "bikeshare-models", *aws_args(aws)
    )
    assert again.stdout.strip() == model_uri
    import hashlib

    assert hashlib.sha256(model_archive.read_bytes()).hexdigest() in model_uri


def test_upload_refuses_a_file_that_is_not_a_model(
    aws: Aws, model_uri: str, tmp_path: Path
) -> None:
    junk = tmp_path / "notes.tar.gz"
    junk.write_bytes(b"not a tarball")
    result = run_cli(
        "upload-model", str(junk), "--bucket", "bikeshare-models", *aws_args(aws), check=False
    )
    assert result.returncode == 1
    assert "is not a readable tar.gz model archive" in result.stderr


def test_deploy_status_smoke_and_the_aws_cli_agree(aws: Aws, model_uri: str) -> None:
    deployed = run_cli(*deploy_args(aws, model_uri))
    config = deployed.stdout.strip().removeprefix(f"{ENDPOINT} serves ")
    assert config.startswith(f"{ENDPOINT}-cafebab-")
    assert f"{ENDPOINT}: Creating (0:00)" in deployed.stderr
    assert "smoke test passed: 1 prediction(s)" in deployed.stderr

    status = json.loads(
        run_cli("status", "--endpoint-name", ENDPOINT, "--json", *aws_args(aws)).stdout
    )
    assert status["config_name"] == config
    assert status["status"] == "InService"
    assert status["verified"] is True
    assert status["variants"][0]["image"] == aws.image
    assert status["variants"][0]["model_data"] == model_uri

    smoke = run_cli("smoke", "--endpoint-name", ENDPOINT, *aws_args(aws))
    assert smoke.stdout.startswith("1 prediction(s) [")

    awscli = subprocess.run(
        [
            str(Path(sys.executable).with_name("aws")),
            "sagemaker",
            "describe-endpoint",
            "--endpoint-name",
            ENDPOINT,
            "--endpoint-url",
            aws.url,
            "--region",
            REGION,
            "--query",
            "[EndpointStatus,EndpointConfigName]",
            "--output",
            "text",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert awscli.stdout.split() == ["InService", config]


def test_dry_run_prints_the_plan_on_stdout(aws: Aws, model_uri: str) -> None:
    result = run_cli(*deploy_args(aws, model_uri, "--dry-run"))
    assert result.stdout.splitlines()[0] == f"plan for {ENDPOINT}: create endpoint"
    assert aws.sagemaker.list_endpoints()["Endpoints"] == []


def test_missing_credentials_fail_before_any_change(
    aws: Aws, model_uri: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    result = run_cli(*deploy_args(aws, model_uri), env=env, check=False)
    assert result.returncode == 1
    assert "no usable AWS credentials" in result.stderr
    assert "nothing was changed" in result.stderr
    assert aws.sagemaker.list_models()["Models"] == []


def test_expired_credentials_fail_before_any_change(aws: Aws, model_uri: str) -> None:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "EXPIRED0000000000000", "AWS_SESSION_TOKEN": "x"}
    result = run_cli(*deploy_args(aws, model_uri), env=env, check=False)
    assert result.returncode == 1
    assert "AWS rejected the credentials (ExpiredToken" in result.stderr
    assert "nothing was changed" in result.stderr
    assert aws.sagemaker.list_models()["Models"] == []


def test_rollback_without_history_says_what_to_pass(aws: Aws, model_uri: str) -> None:
    run_cli(*deploy_args(aws, model_uri, "--no-smoke"))
    result = run_cli("rollback", "--endpoint-name", ENDPOINT, *aws_args(aws), check=False)
    assert result.returncode == 1
    assert "has no recorded previous release; pass --to-config CONFIG" in result.stderr


def test_status_of_a_missing_endpoint_is_a_clear_error(aws: Aws) -> None:
    result = run_cli("status", "--endpoint-name", ENDPOINT, *aws_args(aws), check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == f"bikeshare status: error: endpoint {ENDPOINT} does not exist"


def test_status_of_an_endpoint_the_role_does_not_own_names_the_refusal(aws: Aws) -> None:
    result = run_cli("status", "--endpoint-name", "nope", *aws_args(aws), check=False)
    assert result.returncode == 1
    assert result.stderr.startswith(
        "bikeshare status: error: AWS refused the request (AccessDeniedException): User: "
        "arn:aws:sts::123456789012:assumed-role/bikeshare-deployer-staging/github-staging is not "
        "authorized to perform: sagemaker:DescribeEndpoint on resource: "
        "arn:aws:sagemaker:ca-central-1:123456789012:endpoint/nope"
    )


def test_aws_endpoint_url_from_the_environment_is_honoured(aws: Aws) -> None:
    env = {**os.environ, "AWS_ENDPOINT_URL": aws.url}
    result = run_cli(
        "status", "--endpoint-name", ENDPOINT, "--region", REGION, env=env, check=False
    )
    assert result.stderr.strip() == f"bikeshare status: error: endpoint {ENDPOINT} does not exist"


def test_smoke_names_a_signature_mismatch(aws: Aws, model_uri: str, tmp_path: Path) -> None:
    run_cli(*deploy_args(aws, model_uri))
    payload = tmp_path / "old-columns.json"
    # The seed's old names for two of the columns: the model must name what it misses.
    columns = ["station", "hour", "temp", "dow"]
    payload.write_text(
        json.dumps({"dataframe_split": {"columns": columns, "data": [["72", 8, 20.5, 2]]}})
    )
    result = run_cli(
        "smoke", "--endpoint-name", ENDPOINT, "--payload", str(payload), *aws_args(aws), check=False
    )
    assert result.returncode == 1
    assert "the model and the payload disagree on the signature" in result.stderr
    assert f"refused the payload file {payload}:" in result.stderr  # the user's file, by name
    assert "own serving example" not in result.stderr
    missing = [name for name in FEATURE_NAMES if name not in columns]
    assert f"missing column(s) {', '.join(missing)}" in result.stderr


def test_reports_say_what_was_deployed_and_what_serves_on_success_and_failure(
    aws: Aws, model_uri: str, tmp_path: Path
) -> None:
    first = tmp_path / "first.md"
    deployed = run_cli(*deploy_args(aws, model_uri, "--report", str(first)))
    good = deployed.stdout.strip().removeprefix(f"{ENDPOINT} serves ")
    report = first.read_text()
    assert report.startswith(f"### `bikeshare deploy` on `{ENDPOINT}`: succeeded")
    assert f"- image: `{aws.image}`" in report
    assert f"- model data: `{model_uri}`" in report
    assert "- previous config: `none (first deploy)`" in report
    assert f"- new config: `{good}`" in report
    assert "- smoke test: 1 prediction(s)" in report

    aws.faults(invoke_errors={ENDPOINT: [500]})
    second = tmp_path / "second.md"
    failed = run_cli(
        *deploy_args(aws, model_uri, "--report", str(second), "--git-sha", "badc0ffee"),
        check=False,
    )
    assert failed.returncode == 1
    report = second.read_text()
    assert report.startswith(f"### `bikeshare deploy` on `{ENDPOINT}`: failed")
    assert "**Error**" in report
    assert good in report.split("**Error**")[1], "the error says what serves now"
    assert f"rolling {ENDPOINT} back to {good}" in report  # the log is kept

    back = tmp_path / "rollback.md"
    run_cli("rollback", "--endpoint-name", ENDPOINT, "--to-config", good, "--report", str(back),
            "--poll-seconds", "0.2", *aws_args(aws))  # fmt: skip
    assert back.read_text().startswith(f"### `bikeshare rollback` on `{ENDPOINT}`: succeeded")
    assert f"- serving now: `{good}`" in back.read_text()


def test_a_dry_run_report_is_the_plan(aws: Aws, model_uri: str, tmp_path: Path) -> None:
    plan = tmp_path / "plan.md"
    run_cli(*deploy_args(aws, model_uri, "--dry-run", "--report", str(plan)))
    report = plan.read_text()
    assert ": planned (dry run, nothing changed)" in report.splitlines()[0]
    assert f"1. plan for {ENDPOINT}: create endpoint" in report


def test_the_old_role_flag_fails_naming_both_roles(aws: Aws, model_uri: str) -> None:
    """`--role-arn` meant the execution role here and the deployer role in the module."""
    argv = deploy_args(aws, model_uri)
    argv[argv.index("--execution-role-arn")] = "--role-arn"
    result = run_cli(*argv, check=False)
    assert result.returncode == 2
    assert "--role-arn was renamed --execution-role-arn" in result.stderr
    assert "--deployer-role-arn" in result.stderr
    assert aws.sagemaker.list_endpoints()["Endpoints"] == []


def test_a_deploy_from_a_checkout_names_its_release_after_the_commit(
    aws: Aws, model_uri: str, tmp_path: Path
) -> None:
    """Without --git-sha or $GITHUB_SHA, the commit of the checkout the command runs in."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    git = ["git", "-C", str(checkout), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    commit = subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    argv = deploy_args(aws, model_uri, "--dry-run")
    del argv[argv.index("--git-sha") : argv.index("--git-sha") + 2]
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_SHA", "GIT_DIR")}
    env["GIT_CEILING_DIRECTORIES"] = str(tmp_path)  # "outside" stays outside any enclosing repo
    bikeshare = Path(sys.executable).with_name("bikeshare")
    inside = subprocess.run(
        [str(bikeshare), *argv], cwd=checkout, env=env, capture_output=True, text=True, timeout=300
    )
    outside = subprocess.run(
        [str(bikeshare), *argv], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert inside.returncode == 0, inside.stderr
    assert f"{ENDPOINT}-{commit[:7]}-" in inside.stdout
    assert outside.returncode == 0, outside.stderr
    assert f"{ENDPOINT}-unknown-" in outside.stdout, "outside a checkout the commit is unknown"
