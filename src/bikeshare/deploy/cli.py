"""The release subcommands of `bikeshare`: upload-model, deploy, smoke, rollback, status."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from bikeshare.errors import BikeshareError


def _aws_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--region", required=True, help="AWS region, e.g. ca-central-1")
    parser.add_argument(
        "--endpoint-url",
        default=None,
        help="AWS API endpoint (the local stand-in, a VPC endpoint); default: $AWS_ENDPOINT_URL "
        "or AWS itself",
    )


def _target(args: argparse.Namespace) -> Any:
    from bikeshare.deploy.aws import AwsTarget

    return AwsTarget(region=args.region, endpoint_url=args.endpoint_url)


def _clients(args: argparse.Namespace) -> Any:
    from bikeshare.deploy.release import Clients

    target = _target(args)
    return Clients(
        target.client("sagemaker"), target.client("sagemaker-runtime"), target.client("s3")
    )


def _git_sha(args: argparse.Namespace) -> str:
    return args.git_sha or os.environ.get("GITHUB_SHA") or "unknown"


def _upload_model(args: argparse.Namespace) -> int:
    from bikeshare.deploy.artifacts import upload_model

    s3 = _target(args).client("s3")
    print(upload_model(s3, args.file, args.bucket, args.prefix, _git_sha(args)))
    return 0


def _deploy(args: argparse.Namespace) -> int:
    from bikeshare.deploy.release import DeployRequest, deploy
    from bikeshare.deploy.smoke import load_payload

    request = DeployRequest(
        endpoint_name=args.endpoint_name,
        image_uri=args.image_uri,
        model_data=args.model_data,
        instance_type=args.instance_type,
        role_arn=args.role_arn,
        instance_count=args.instance_count,
        strategy=args.strategy,
        canary_percent=args.canary_percent,
        bake_seconds=args.bake_seconds,
        alarms=tuple(args.alarm),
        wait=args.wait,
        smoke=not args.no_smoke,
        dry_run=args.dry_run,
        git_sha=_git_sha(args),
        smoke_payload=(
            load_payload(args.payload.read_text(), str(args.payload)) if args.payload else None
        ),
        keep_releases=args.keep_releases,
        poll_seconds=args.poll_seconds,
        timeout_seconds=args.timeout_seconds,
    )
    outcome = deploy(_clients(args), request)
    if outcome.dry_run:
        print("\n".join(outcome.plan))
    else:
        print(f"{outcome.endpoint_name} serves {outcome.serving}")
    return 0


def _smoke(args: argparse.Namespace) -> int:
    from bikeshare.deploy.artifacts import fetch_archive, read_model_archive
    from bikeshare.deploy.endpoint import describe_endpoint
    from bikeshare.deploy.smoke import load_payload, smoke_test

    clients = _clients(args)
    if args.payload:
        payload = load_payload(args.payload.read_text(), str(args.payload))
    else:
        snapshot = describe_endpoint(clients.sagemaker, args.endpoint_name)
        if snapshot is None or not snapshot.variants:
            raise BikeshareError(f"endpoint {args.endpoint_name} does not exist")
        uri = snapshot.variants[0].model_data
        payload = read_model_archive(fetch_archive(clients.s3, uri), uri).serving_example
        if payload is None:
            raise BikeshareError(f"{uri} has no serving input example; pass --payload FILE")
    print(smoke_test(clients.runtime, args.endpoint_name, payload).summary())
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from bikeshare.deploy.release import rollback

    final = rollback(_clients(args), args.endpoint_name, args.to_config)
    print(f"{final.name} serves {final.config_name}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from bikeshare.deploy.endpoint import describe_endpoint

    snapshot = describe_endpoint(_target(args).client("sagemaker"), args.endpoint_name)
    if snapshot is None:
        raise BikeshareError(f"endpoint {args.endpoint_name} does not exist")
    if args.json:
        print(json.dumps(snapshot.to_json(), indent=2, default=str))
        return 0
    data = snapshot.to_json()
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
    return 0


def add_release_commands(commands: argparse._SubParsersAction) -> None:
    """Register the release subcommands on the main parser."""
    upload = commands.add_parser(
        "upload-model",
        help="upload model.tar.gz to S3 under its sha256 (idempotent)",
        description="Upload a packaged model under <prefix>/<sha256>/model.tar.gz and print its "
        "s3:// URI. Refuses a file that is not a packaged MLflow model.",
    )
    upload.add_argument("file", type=Path, metavar="FILE", help="model.tar.gz to upload")
    upload.add_argument("--bucket", required=True, help="S3 bucket for model artifacts")
    upload.add_argument("--prefix", default="models", help="key prefix (default: models)")
    upload.add_argument("--git-sha", help="commit to tag the object with (default $GITHUB_SHA)")
    _aws_arguments(upload)
    upload.set_defaults(handler=_upload_model)

    deploy = commands.add_parser(
        "deploy",
        help="create or blue/green-update an endpoint, verify, smoke, roll back",
        description="Deploy an image (by digest) and model archive to a SageMaker endpoint. The "
        "endpoint is verified to serve the new config, smoke-tested with the model's own serving "
        "example, and rolled back to the recorded config on failure.",
    )
    deploy.add_argument("--endpoint-name", required=True)
    deploy.add_argument("--image-uri", required=True, help="REGISTRY/REPO@sha256:DIGEST")
    deploy.add_argument("--model-data", required=True, help="s3:// URI of model.tar.gz")
    deploy.add_argument("--instance-type", required=True, help="e.g. ml.m5.large")
    deploy.add_argument("--role-arn", required=True, help="SageMaker execution role ARN")
    deploy.add_argument("--instance-count", type=int, default=1)
    deploy.add_argument(
        "--strategy",
        choices=["all-at-once", "canary", "linear"],
        default="all-at-once",
        help="blue/green traffic shifting",
    )
    deploy.add_argument(
        "--canary-percent",
        type=int,
        default=10,
        help="canary size or linear step, percent of capacity (1-50)",
    )
    deploy.add_argument(
        "--bake-seconds", type=int, default=300, help="wait between traffic shifts (canary/linear)"
    )
    deploy.add_argument(
        "--alarm",
        action="append",
        default=[],
        help="CloudWatch alarm that rolls the update back (repeatable, 1-10)",
    )
    deploy.add_argument(
        "--wait", action="store_true", help="wait for an in-progress endpoint instead of refusing"
    )
    deploy.add_argument("--no-smoke", action="store_true", help="skip the smoke test")
    deploy.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    deploy.add_argument("--payload", type=Path, help="smoke payload (default: the model's own)")
    deploy.add_argument("--git-sha", help="commit being deployed (default $GITHUB_SHA)")
    deploy.add_argument(
        "--keep-releases",
        type=int,
        default=5,
        help="older releases (model + config) to keep for rollback",
    )
    deploy.add_argument(
        "--poll-seconds",
        type=float,
        default=15.0,
        help="how often to check the endpoint while waiting",
    )
    deploy.add_argument(
        "--timeout-seconds", type=float, default=3600.0, help="give up waiting after this long"
    )
    _aws_arguments(deploy)
    deploy.set_defaults(handler=_deploy)

    smoke = commands.add_parser(
        "smoke",
        help="invoke an endpoint with the model's serving example and check the answer",
        description="Smoke-test an endpoint: 200, JSON, one finite non-negative prediction per "
        "row. The payload is the served model's own serving input example unless --payload.",
    )
    smoke.add_argument("--endpoint-name", required=True)
    smoke.add_argument("--payload", type=Path, help="JSON payload file")
    _aws_arguments(smoke)
    smoke.set_defaults(handler=_smoke)

    back = commands.add_parser(
        "rollback",
        help="point an endpoint back at a previous config and verify it",
        description="Roll an endpoint back to --to-config, or to the previous release this tool "
        "recorded, and verify it serves it.",
    )
    back.add_argument("--endpoint-name", required=True)
    back.add_argument("--to-config", help="endpoint config to serve (default: the previous one)")
    _aws_arguments(back)
    back.set_defaults(handler=_rollback)

    status = commands.add_parser(
        "status",
        help="what an endpoint serves now and served before",
        description="Show the serving config, image, model data, variants, status, failure "
        "reason, previous config and deployment record of an endpoint.",
    )
    status.add_argument("--endpoint-name", required=True)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    _aws_arguments(status)
    status.set_defaults(handler=_status)
