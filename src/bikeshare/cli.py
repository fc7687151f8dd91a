"""The `bikeshare` command line: one subcommand per thing the pipeline (or a person) does.

Heavy libraries are imported inside each command, so `--help` is instant and the deploy tools
container, which has no scikit-learn or MLflow, can run the release commands.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from bikeshare import __version__
from bikeshare.deploy.cli import add_release_commands
from bikeshare.errors import BikeshareError


def _train(args: argparse.Namespace) -> int:
    from bikeshare.model.data import read_rides_csv, synthetic_rides
    from bikeshare.model.train import train_model

    frame = read_rides_csv(args.data) if args.data else synthetic_rides(args.seed)
    report = train_model(frame, args.output, seed=args.seed)
    print(report.summary())
    return 0


def _package(args: argparse.Namespace) -> int:
    from bikeshare.model.package import package_model

    print(package_model(args.model_dir, args.output))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from bikeshare.serving.server import ServeOptions, serve

    options = ServeOptions(model_dir=args.model_dir, grace_seconds=args.grace_seconds)
    if args.port is not None:
        options = replace(options, port=args.port)
    if args.workers is not None:
        options = replace(options, workers=args.workers)
    serve(options)
    return 0


def _probe(args: argparse.Namespace) -> int:
    from bikeshare.deploy.artifacts import read_model_archive
    from bikeshare.deploy.smoke import load_payload
    from bikeshare.serving.probe import probe

    if args.payload:
        payload = load_payload(args.payload.read_text(), str(args.payload))
    else:
        archive = read_model_archive(args.model_archive.read_bytes(), str(args.model_archive))
        if archive.serving_example is None:
            raise BikeshareError(f"{args.model_archive} has no serving example; use --payload")
        payload = archive.serving_example
    print(probe(args.url, payload, args.startup_seconds).summary())
    return 0


def _add_probe(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "probe",
        help="check a running serving container over HTTP as SageMaker would",
        description="Wait until URL/ping answers 200 (each within SageMaker's 2 s), then POST the "
        "model's serving example to URL/invocations and check one finite, non-negative "
        "prediction per row. Exit 1 naming what failed.",
    )
    parser.add_argument("url", metavar="URL", help="the container, e.g. http://localhost:8080")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model-archive", type=Path, help="model.tar.gz whose example to send")
    source.add_argument("--payload", type=Path, help="JSON payload file")
    parser.add_argument(
        "--startup-seconds", type=float, default=180.0, help="how long the container may take"
    )
    parser.set_defaults(handler=_probe)


def _runtime_versions(args: argparse.Namespace) -> int:
    from bikeshare.model.runtime import as_requirements, installed_versions, locked_versions

    versions = locked_versions(args.lock) if args.lock else installed_versions()
    print(as_requirements(versions))
    return 0


def _add_runtime_versions(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "runtime-versions",
        help="the model runtime versions, for the serving image's MODEL_RUNTIME build arg",
        description="Print `name==version` for the packages a model needs at predict time, from "
        "a uv.lock (--lock) or from this environment. The serving image records them in its "
        "com.bikeshare.model-runtime label; deploy checks models against it.",
    )
    parser.add_argument("--lock", type=Path, help="read versions from this uv.lock")
    parser.set_defaults(handler=_runtime_versions)


def _add_train(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "train",
        help="train the demand model and save it as an MLflow pyfunc model",
        description="Train the demand model. Without --data it trains on a deterministic "
        "synthetic history; with --data it reads a CSV with columns station_id, hour, temp_c, "
        "dow and rides, checked row by row before anything is trained.",
    )
    parser.add_argument("--output", type=Path, required=True, help="new directory for the model")
    parser.add_argument("--data", type=Path, help="training CSV (default: synthetic data)")
    parser.add_argument("--seed", type=int, default=0, help="seed for data, split and trees")
    parser.set_defaults(handler=_train)


def _add_package(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "package",
        help="pack an MLflow model directory as SageMaker's model.tar.gz",
        description="Write a deterministic model.tar.gz with MLmodel at the archive root, "
        "the layout SageMaker unpacks into /opt/ml/model.",
    )
    parser.add_argument("model_dir", type=Path, metavar="MODEL_DIR", help="MLflow model dir")
    parser.add_argument("--output", type=Path, required=True, help="archive to write")
    parser.set_defaults(handler=_package)


def _add_serve(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "serve",
        help="serve a model the way SageMaker runs a container (GET /ping, POST /invocations)",
        description="Serve an MLflow pyfunc model with MLflow's scoring server behind strict "
        "input validation. Defaults follow SageMaker: model in /opt/ml/model, port "
        "$SAGEMAKER_BIND_TO_PORT or 8080, one worker per CPU. SIGTERM drains in-flight "
        "requests for the grace period, then exits.",
    )
    parser.add_argument(
        "--model-dir", type=Path, default=Path("/opt/ml/model"), help="MLflow model directory"
    )
    parser.add_argument("--port", type=int, help="port (default $SAGEMAKER_BIND_TO_PORT or 8080)")
    parser.add_argument("--workers", type=int, help="worker processes (default: CPU count)")
    parser.add_argument(
        "--grace-seconds",
        type=int,
        default=25,
        help="time in-flight requests get after SIGTERM (SageMaker kills at 30 s; default 25)",
    )
    parser.set_defaults(handler=_serve)


def build_parser() -> argparse.ArgumentParser:
    """The full parser; every subcommand has its own --help."""
    parser = argparse.ArgumentParser(
        prog="bikeshare",
        description="Train, package, serve and release the bikeshare demand model.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _add_train,
        _add_package,
        _add_serve,
        _add_probe,
        _add_runtime_versions,
        add_release_commands,
    ):
        add(commands)
    return parser


#: The extra (pyproject.toml) that installs each top-level package a command may import.
EXTRA_OF = {
    **dict.fromkeys(("numpy", "pandas", "sklearn", "mlflow", "skops"), "model"),
    **dict.fromkeys(("uvicorn", "gunicorn", "fastapi", "uvloop", "httptools"), "serve"),
    **dict.fromkeys(("boto3", "botocore"), "deploy"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; a BikeshareError becomes one line on stderr and exit status 1."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except BikeshareError as error:
        print(f"bikeshare {args.command}: error: {error}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as error:
        extra = EXTRA_OF.get((error.name or "").partition(".")[0])
        if extra is None:
            raise
        print(
            f"bikeshare {args.command}: error: needs the '{extra}' extra ({error.name} is not "
            f"installed): `uv sync --extra {extra}` (or --all-extras), or "
            f"`pip install 'bikeshare[{extra}]'`",
            file=sys.stderr,
        )
        return 1
    except Exception as error:
        from bikeshare.deploy.aws import error_code, error_message, explain_credentials_error

        if type(error).__name__ in ("NoCredentialsError", "PartialCredentialsError"):
            reason = str(explain_credentials_error(error))
        elif error_code(error):  # any other AWS refusal: its code and message, not a traceback
            reason = f"AWS refused the request ({error_code(error)}): {error_message(error)}"
        else:
            raise
        print(f"bikeshare {args.command}: error: {reason}", file=sys.stderr)
        return 1
