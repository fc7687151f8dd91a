"""The release subcommands of `bikeshare`: upload-model, deploy, smoke, rollback, status."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess  # nosec B404 - git, to name the checkout's commit
from pathlib import Path
from typing import Any

from bikeshare.deploy.names import check_endpoint_name
from bikeshare.errors import BikeshareError


def input_file(text: str) -> Path:
    """An argparse type for a file the command reads: it must exist as a regular file.

    It raises BikeshareError, not ArgumentTypeError, so the value is refused by the CLI's one
    rule (one line, exit 1) before anything runs, rather than by argparse's usage dump.
    """
    path = Path(text)
    if not path.exists():
        raise BikeshareError(f"{text!r} does not exist")
    if not path.is_file():
        raise BikeshareError(f"{text!r} is not a regular file")
    return path


def endpoint_name(text: str) -> str:
    """An argparse type: a name SageMaker accepts for an endpoint, else one line (exit 1)."""
    return check_endpoint_name(text)


class _Renamed(argparse.Action):
    """`--role-arn` named two roles; it fails with the names that replaced it."""

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        parser.error(
            "--role-arn was renamed --execution-role-arn (the SageMaker execution role); the "
            "role the pipeline assumes is --deployer-role-arn"
        )


def _aws_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--region", required=True, help="AWS region, e.g. ca-central-1")
    parser.add_argument(
        "--endpoint-url",
        default=None,
        help="AWS API endpoint (the local stand-in, a VPC endpoint); default: $AWS_ENDPOINT_URL "
        "or AWS itself",
    )
    parser.add_argument(
        "--deployer-role-arn",
        default=None,
        help="the deployer role, assumed with GitHub OIDC when ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN "
        "are set (default $BIKESHARE_DEPLOYER_ROLE_ARN); otherwise the usual AWS credential chain",
    )


def _target(args: argparse.Namespace) -> Any:
    from bikeshare.deploy.aws import AwsTarget
    from bikeshare.deploy.credentials import GithubOidc, oidc_session

    oidc = GithubOidc.from_environment(args.deployer_role_arn)
    session = oidc_session(oidc, args.region, args.endpoint_url) if oidc else None
    return AwsTarget(region=args.region, endpoint_url=args.endpoint_url, session=session)


def _clients(args: argparse.Namespace) -> Any:
    from bikeshare.deploy.release import Clients

    return Clients.of(_target(args))


def _git_sha(args: argparse.Namespace) -> str:
    return args.git_sha or os.environ.get("GITHUB_SHA") or _checkout_commit() or "unknown"


def _checkout_commit() -> str | None:
    """The commit of the git checkout the command runs in, so release names carry it."""
    try:
        found = subprocess.run(  # nosec B603 B607 - a fixed argv; git from PATH, as a user runs it
            ["git", "rev-parse", "--verify", "--quiet", "HEAD"],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = found.stdout.strip()
    return commit if found.returncode == 0 and commit else None


def _upload_model(args: argparse.Namespace) -> int:
    from bikeshare.deploy.artifacts import upload_model

    s3 = _target(args).client("s3")
    print(upload_model(s3, args.file, args.bucket, args.prefix, _git_sha(args)))
    return 0


def _request(args: argparse.Namespace, image_uri: str, model_data: str) -> Any:
    from bikeshare.deploy.release import DeployRequest
    from bikeshare.deploy.scaling import ScalingPolicy
    from bikeshare.deploy.smoke import read_payload

    scaling = None
    if args.min_instances is not None or args.max_instances is not None:
        low = args.min_instances or 1
        scaling = ScalingPolicy(low, args.max_instances or low, args.target_invocations)
    return DeployRequest(
        endpoint_name=args.endpoint_name,
        image_uri=image_uri,
        model_data=model_data,
        instance_type=args.instance_type,
        execution_role_arn=args.execution_role_arn,
        instance_count=args.instance_count,
        strategy=args.strategy,
        canary_percent=args.canary_percent,
        bake_seconds=args.bake_seconds,
        alarms=tuple(args.alarm),
        wait=args.wait,
        smoke=not args.no_smoke,
        dry_run=args.dry_run,
        git_sha=_git_sha(args),
        smoke_payload=read_payload(args.payload) if args.payload else None,
        keep_releases=args.keep_releases,
        poll_seconds=args.poll_seconds,
        timeout_seconds=args.timeout_seconds,
        scaling=scaling,
        allow_unlisted_instance_type=args.allow_unlisted_instance_type,
    )


def _report(outcome: Any) -> int:
    if outcome.dry_run:
        print("\n".join(outcome.plan))
    else:
        print(f"{outcome.endpoint_name} serves {outcome.serving}")
    return 0


def _record(args: argparse.Namespace, **asked: str | None) -> Any:
    from bikeshare.deploy.report import ReleaseRecord

    return ReleaseRecord(
        command=args.command,
        endpoint_name=args.endpoint_name,
        asked={name.replace("_", " "): value for name, value in asked.items() if value},
    )


def _deploy(args: argparse.Namespace) -> int:
    from bikeshare.deploy.release import deploy
    from bikeshare.deploy.report import recorded, serving_now

    clients = _clients(args)
    request = _request(args, args.image_uri, args.model_data)
    record = _record(
        args, image=args.image_uri, model_data=args.model_data, git_sha=request.git_sha
    )
    outcome = recorded(
        record,
        args.report,
        lambda say: deploy(clients, request, say),
        serving=lambda: serving_now(clients.sagemaker, args.endpoint_name),
    )
    return _report(outcome)


_PINS = ("--expect-config", "--expect-image", "--expect-model-data")


def _pinned(args: argparse.Namespace) -> Any:
    """The release the approved plan showed (all three --expect-* options), or None."""
    from bikeshare.deploy.promote import PinnedRelease

    given = [args.expect_config, args.expect_image, args.expect_model_data]
    if not any(given):
        return None
    if not all(given):
        missing = [flag for flag, value in zip(_PINS, given, strict=True) if not value]
        raise BikeshareError(
            f"{', '.join(_PINS)} pin the plan's release together; {', '.join(missing)} missing"
        )
    return PinnedRelease(*given)


def _promote(args: argparse.Namespace) -> int:
    from bikeshare.deploy.promote import promote
    from bikeshare.deploy.report import recorded, serving_now

    expected = _pinned(args)  # before any AWS call: a half-pinned plan pins nothing
    clients = _clients(args)
    request = _request(args, image_uri="", model_data="")
    record = _record(
        args,
        from_endpoint=args.from_endpoint,
        override_model_data=args.override_model_data,
        expect_config=args.expect_config,
        expect_image=args.expect_image,
        expect_model_data=args.expect_model_data,
    )
    outcome = recorded(
        record,
        args.report,
        lambda say: promote(
            clients, args.from_endpoint, request, args.override_model_data, say, expected
        ),
        serving=lambda: serving_now(clients.sagemaker, args.endpoint_name),
    )
    return _report(outcome)


def _smoke(args: argparse.Namespace) -> int:
    from bikeshare.deploy.artifacts import read_verified_archive
    from bikeshare.deploy.endpoint import describe_endpoint
    from bikeshare.deploy.smoke import read_payload, smoke_test

    clients = _clients(args)
    if args.payload:
        payload = read_payload(args.payload)
        source = f"the payload file {args.payload}"
    else:
        snapshot = describe_endpoint(clients.sagemaker, args.endpoint_name)
        if snapshot is None or not snapshot.variants:
            raise BikeshareError(f"endpoint {args.endpoint_name} does not exist")
        uri = snapshot.variants[0].model_data
        payload = read_verified_archive(clients.s3, uri)[1].serving_example
        if payload is None:
            raise BikeshareError(f"{uri} has no serving input example; pass --payload FILE")
        source = f"the model's own serving example ({uri})"
    print(smoke_test(clients.runtime, args.endpoint_name, payload, source).summary())
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from bikeshare.deploy.endpoint import TAG_PREVIOUS_CONFIG
    from bikeshare.deploy.release import Outcome, Polling, rollback
    from bikeshare.deploy.report import recorded, serving_now

    polling = Polling(seconds=args.poll_seconds, timeout=args.timeout_seconds)
    clients = _clients(args)

    def run(say: Any) -> Outcome:
        final = rollback(clients, args.endpoint_name, args.to_config, polling, say)
        # The report's "previous config" is the one rolled away from, as the record says.
        left = final.tags.get(TAG_PREVIOUS_CONFIG)
        return Outcome(args.endpoint_name, final.config_name, left, final.config_name)

    outcome = recorded(
        _record(args, to_config=args.to_config),
        args.report,
        run,
        serving=lambda: serving_now(clients.sagemaker, args.endpoint_name),
    )
    print(f"{outcome.endpoint_name} serves {outcome.serving}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from bikeshare.deploy import scaling
    from bikeshare.deploy.endpoint import describe_endpoint

    target = _target(args)
    snapshot = describe_endpoint(target.client("sagemaker"), args.endpoint_name)
    if snapshot is None:
        raise BikeshareError(f"endpoint {args.endpoint_name} does not exist")
    data = snapshot.to_json()
    autoscaling = target.client("application-autoscaling")
    data["scaling"] = {
        v.name: scaling.describe(autoscaling, snapshot.name, v.name) for v in snapshot.variants
    }
    if args.json:
        print(json.dumps(data, indent=2, default=str))
        return 0
    print(f"endpoint:        {snapshot.name} ({snapshot.status})")
    print(
        f"serving config:  {snapshot.config_name}"
        f"{' (verified by bikeshare)' if snapshot.verified else ' (NOT verified by bikeshare)'}"
    )
    print(f"previous config: {data['previous_config'] or '-'}")
    if snapshot.failure_reason:
        print(f"failure reason:  {snapshot.failure_reason}")
    for variant in snapshot.variants:
        print(
            f"variant {variant.name}: {variant.instance_count} x {variant.instance_type} "
            f"(running {variant.current_count}, weight {variant.current_weight})"
        )
        print(f"  image:      {variant.image}")
        print(f"  model data: {variant.model_data}")
        bounds = data["scaling"][variant.name]
        print(f"  scaling:    {_scaling_line(bounds)}")
    record = {k: v for k, v in snapshot.tags.items() if k.startswith("bikeshare:")}
    print(
        "deployment record: " + (", ".join(f"{k}={v}" for k, v in sorted(record.items())) or "none")
    )
    return 0


def _report_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--report",
        type=Path,
        help="write a Markdown report here, on failure too (the CD job summary)",
    )


def _release_options(parser: argparse.ArgumentParser) -> None:
    """The options deploy and promote share."""
    parser.add_argument("--endpoint-name", type=endpoint_name, required=True)
    parser.add_argument("--instance-type", required=True, help="e.g. ml.m5.large")
    parser.add_argument(
        "--allow-unlisted-instance-type",
        action="store_true",
        help="deploy an --instance-type the installed botocore does not list (one newer than "
        "it), with a warning, instead of refusing it",
    )
    parser.add_argument(
        "--execution-role-arn",
        required=True,
        help="the SageMaker execution role (Terraform output sagemaker_execution_role_arn)",
    )
    parser.add_argument("--role-arn", action=_Renamed, help=argparse.SUPPRESS)
    parser.add_argument("--instance-count", type=int, default=1)
    parser.add_argument(
        "--strategy",
        choices=["all-at-once", "canary", "linear"],
        default="all-at-once",
        help="blue/green traffic shifting",
    )
    parser.add_argument(
        "--canary-percent",
        type=int,
        default=10,
        help="canary size or linear step, percent of capacity (1-50)",
    )
    parser.add_argument(
        "--bake-seconds", type=int, default=300, help="wait between traffic shifts (canary/linear)"
    )
    parser.add_argument(
        "--alarm",
        action="append",
        default=[],
        help="CloudWatch alarm that rolls the update back (repeatable, 1-10)",
    )
    parser.add_argument(
        "--wait", action="store_true", help="wait for an in-progress endpoint instead of refusing"
    )
    parser.add_argument("--no-smoke", action="store_true", help="skip the smoke test")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    parser.add_argument(
        "--payload", type=input_file, help="smoke payload (default: the model's own)"
    )
    parser.add_argument(
        "--git-sha",
        help="commit being deployed (default $GITHUB_SHA, else the git checkout's HEAD)",
    )
    _report_argument(parser)
    parser.add_argument(
        "--keep-releases",
        type=int,
        default=5,
        help="older releases (model + config) to keep for rollback",
    )
    parser.add_argument(
        "--poll-seconds",
        type=float,
        default=15.0,
        help="how often to check the endpoint while waiting",
    )
    parser.add_argument(
        "--timeout-seconds", type=float, default=3600.0, help="give up waiting after this long"
    )
    parser.add_argument(
        "--min-instances",
        type=int,
        help="register auto scaling with this minimum after a verified deploy",
    )
    parser.add_argument("--max-instances", type=int, help="auto scaling maximum")
    parser.add_argument(
        "--target-invocations",
        type=float,
        default=100.0,
        help="auto scaling target: invocations per instance per minute",
    )


def _ecr_login(args: argparse.Namespace) -> int:
    from bikeshare.deploy.ecr import registry_login, write_secret

    login = registry_login(_target(args).client("ecr"))
    write_secret(args.password_file, login.password)
    print(login.registry)
    return 0


def _image_digest(args: argparse.Namespace) -> int:
    from bikeshare.deploy.ecr import existing_digest, registry_login

    target = _target(args)
    ecr = target.client("ecr")
    digest = existing_digest(ecr, args.repository, args.tag)
    if digest is None:
        raise BikeshareError(f"{args.repository} has no image tagged {args.tag}; push it first")
    print(f"{registry_login(ecr).registry}/{args.repository}@{digest}")
    return 0


def _fetch_model(args: argparse.Namespace) -> int:
    from bikeshare.deploy.artifacts import read_verified_archive, unpack_model

    data, _ = read_verified_archive(_target(args).client("s3"), args.model_data)
    unpack_model(data, args.model_data, args.output)
    print(args.output)
    return 0


def _release_of(args: argparse.Namespace) -> int:
    from bikeshare.deploy.endpoint import describe_release

    release = describe_release(
        _target(args).client("sagemaker"), args.endpoint_name, args.config or None
    )
    print(json.dumps(release))
    return 0


def _logs(args: argparse.Namespace) -> int:
    from bikeshare.deploy.logs import tail

    with contextlib.suppress(KeyboardInterrupt):
        tail(_target(args).client("logs"), args.endpoint_name, args.since, args.follow)
    return 0


def _scaling_line(bounds: dict[str, Any] | None) -> str:
    if bounds is None:
        return "not registered"
    return (
        f"{bounds['min']}-{bounds['max']} instances, target "
        f"{bounds['target_invocations_per_instance']} invocations/instance/minute"
    )


def add_release_commands(commands: argparse._SubParsersAction) -> None:
    """Register the release subcommands on the main parser."""
    upload = commands.add_parser(
        "upload-model",
        help="upload model.tar.gz to S3 under its sha256 (idempotent)",
        description="Upload a packaged model under <prefix>/<sha256>/model.tar.gz and print its "
        "s3:// URI. Refuses a file that is not a packaged MLflow model.",
    )
    upload.add_argument("file", type=input_file, metavar="FILE", help="model.tar.gz to upload")
    upload.add_argument("--bucket", required=True, help="S3 bucket for model artifacts")
    upload.add_argument("--prefix", default="models", help="key prefix (default: models)")
    upload.add_argument(
        "--git-sha",
        help="commit to tag the object with (default $GITHUB_SHA, else the checkout's HEAD)",
    )
    _aws_arguments(upload)
    upload.set_defaults(handler=_upload_model)

    deploy = commands.add_parser(
        "deploy",
        help="create or blue/green-update an endpoint, verify, smoke, roll back",
        description="Deploy an image (by digest) and model archive to a SageMaker endpoint. The "
        "endpoint is verified to serve the new config, smoke-tested with the model's own serving "
        "example, and rolled back to the recorded config on failure.",
    )
    deploy.add_argument("--image-uri", required=True, help="REGISTRY/REPO@sha256:DIGEST")
    deploy.add_argument("--model-data", required=True, help="s3:// URI of model.tar.gz")
    _release_options(deploy)
    _aws_arguments(deploy)
    deploy.set_defaults(handler=_deploy)

    promote = commands.add_parser(
        "promote",
        help="deploy to production exactly what staging serves now",
        description="Deploy to --endpoint-name the image (by digest) and model data that "
        "--from-endpoint serves now, unless --override-model-data. Refuses unless staging is "
        "InService on a release bikeshare verified, and, with --expect-*, unless it is still "
        "the release the plan showed. Same rollout, verification, smoke and rollback as deploy.",
    )
    promote.add_argument(
        "--from-endpoint", type=endpoint_name, required=True, help="the staging endpoint"
    )
    promote.add_argument(
        "--override-model-data", help="s3:// model.tar.gz to promote instead of staging's"
    )
    pins = promote.add_argument_group(
        "the approved plan's release",
        "Deploy exactly what the plan showed, or refuse and change nothing (all three or none; "
        "a --dry-run prints them)",
    )
    pins.add_argument(
        "--expect-config", metavar="CONFIG", help="the endpoint config staging served at the plan"
    )
    pins.add_argument(
        "--expect-image", metavar="IMAGE", help="the plan's image, REGISTRY/REPO@sha256:DIGEST"
    )
    pins.add_argument(
        "--expect-model-data",
        metavar="S3_URI",
        help="the plan's s3:// model data (the override, when given)",
    )
    _release_options(promote)
    _aws_arguments(promote)
    promote.set_defaults(handler=_promote)

    smoke = commands.add_parser(
        "smoke",
        help="invoke an endpoint with the model's serving example and check the answer",
        description="Smoke-test an endpoint: 200, JSON, one finite non-negative prediction per "
        "row. The payload is the served model's own serving input example unless --payload.",
    )
    smoke.add_argument("--endpoint-name", type=endpoint_name, required=True)
    smoke.add_argument("--payload", type=input_file, help="JSON payload file")
    _aws_arguments(smoke)
    smoke.set_defaults(handler=_smoke)

    back = commands.add_parser(
        "rollback",
        help="point an endpoint back at a previous config and verify it",
        description="Roll an endpoint back to --to-config, or to the previous release this tool "
        "recorded, and verify it serves it.",
    )
    back.add_argument("--endpoint-name", type=endpoint_name, required=True)
    back.add_argument("--to-config", help="endpoint config to serve (default: the previous one)")
    _report_argument(back)
    back.add_argument(
        "--poll-seconds",
        type=float,
        default=5.0,
        help="how often to check the endpoint while waiting",
    )
    back.add_argument(
        "--timeout-seconds", type=float, default=3600.0, help="give up waiting after this long"
    )
    _aws_arguments(back)
    back.set_defaults(handler=_rollback)

    login = commands.add_parser(
        "ecr-login",
        help="write the ECR registry password to a file and print the registry",
        description="Get an ECR authorization token, write the password to --password-file "
        "(mode 0600; never to stdout or logs) and print the registry address. Use it as "
        "`docker login --username AWS --password-stdin REGISTRY < FILE`.",
    )
    login.add_argument("--password-file", type=Path, required=True)
    _aws_arguments(login)
    login.set_defaults(handler=_ecr_login)

    digest = commands.add_parser(
        "image-digest",
        help="the digest an ECR tag already points at",
        description="Print REGISTRY/REPOSITORY@sha256:... for an existing tag, so a publish "
        "to an immutable repository reuses it instead of failing late; exit 1 if the tag was "
        "never pushed.",
    )
    digest.add_argument("--repository", required=True)
    digest.add_argument("--tag", required=True)
    _aws_arguments(digest)
    digest.set_defaults(handler=_image_digest)

    fetch = commands.add_parser(
        "fetch-model",
        help="download a model archive, check it, unpack it as SageMaker does",
        description="Download MODEL_DATA, check its sha256 against the one its key names "
        "(PREFIX/SHA256/model.tar.gz), and unpack it into --output, as SageMaker unpacks "
        "ModelDataUrl into /opt/ml/model.",
    )
    fetch.add_argument("--model-data", required=True, help="s3://bucket/key of a model.tar.gz")
    fetch.add_argument("--output", type=Path, required=True, help="directory to unpack into")
    _aws_arguments(fetch)
    fetch.set_defaults(handler=_fetch_model)

    release_of = commands.add_parser(
        "release-of",
        help="the image and model data an endpoint serves, or served in one config",
        description="Print JSON {image_uri, model_data, config} of what ENDPOINT serves now, "
        "or of --config CONFIG (one of its releases), for `replay`.",
    )
    release_of.add_argument("--endpoint-name", type=endpoint_name, required=True)
    release_of.add_argument("--config", default="", help="an endpoint config of this endpoint")
    _aws_arguments(release_of)
    release_of.set_defaults(handler=_release_of)

    logs = commands.add_parser(
        "logs",
        help="the endpoint's CloudWatch logs (the runbook's `aws logs tail`)",
        description="Print the endpoint's container logs since --since; --follow keeps "
        "printing new ones until interrupted.",
    )
    logs.add_argument("--endpoint-name", type=endpoint_name, required=True)
    logs.add_argument("--since", default="30m", help="how far back: 45s, 30m, 2h, 1d")
    logs.add_argument("--follow", action="store_true", help="keep printing new events")
    _aws_arguments(logs)
    logs.set_defaults(handler=_logs)

    status = commands.add_parser(
        "status",
        help="what an endpoint serves now and served before",
        description="Show the serving config, image, model data, variants, status, failure "
        "reason, previous config and deployment record of an endpoint.",
    )
    status.add_argument("--endpoint-name", type=endpoint_name, required=True)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    _aws_arguments(status)
    status.set_defaults(handler=_status)
