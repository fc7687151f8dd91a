"""The `bikeshare` command line: one subcommand per thing the pipeline (or a person) does.

Heavy libraries are imported inside each command, so `--help` is instant and the deploy tools
container, which has no scikit-learn or MLflow, can run the release commands.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bikeshare import __version__
from bikeshare.deploy.cli import add_release_commands, input_file
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
    from bikeshare.deploy.smoke import read_payload
    from bikeshare.serving.probe import probe

    if args.payload:
        payload = read_payload(args.payload)
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
    source.add_argument(
        "--model-archive", type=input_file, help="model.tar.gz whose example to send"
    )
    source.add_argument("--payload", type=input_file, help="JSON payload file")
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
    parser.add_argument("--lock", type=input_file, help="read versions from this uv.lock")
    parser.set_defaults(handler=_runtime_versions)


def _add_train(commands: argparse._SubParsersAction) -> None:
    # Pure Python, no scikit-learn: cheap enough for --help, and the columns are never stale.
    from bikeshare.model.features import FEATURE_NAMES, TARGET

    parser = commands.add_parser(
        "train",
        help="train the demand model and save it as an MLflow pyfunc model",
        description="Train the demand model. Without --data it trains on a deterministic "
        f"synthetic history; with --data it reads a CSV with columns {', '.join(FEATURE_NAMES)} "
        f"and {TARGET}, checked row by row before anything is trained.",
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
    for command in commands.choices.values():
        _refuse_empty_values(command)
    return parser


def _refuse_empty_values(parser: argparse.ArgumentParser) -> None:
    """Every option value and positional of a subcommand must be non-empty.

    An empty `--region` or `--bucket` (an unset shell variable) otherwise travels to AWS and
    comes back as an HTML 500 or a traceback. An option whose default is "" (it means "not
    given") keeps accepting "".
    """
    for action in parser._actions:
        if action.nargs == 0 or isinstance(action, argparse._SubParsersAction):
            continue
        action.type = _non_empty(action, action.type or str)


def _non_empty(action: argparse.Action, convert: Callable[[str], Any]) -> Callable[[str], Any]:
    name = action.option_strings[0] if action.option_strings else action.metavar or action.dest
    may_be_empty = action.default == ""

    def check(text: str) -> Any:
        if not text.strip() and not may_be_empty:
            raise BikeshareError(f"{name} is empty (an unset variable?); give it a value")
        try:
            return convert(text)
        except BikeshareError as error:  # the type's own refusal, named after the option
            raise BikeshareError(f"{name} {error}") from None

    # argparse names the type in its own messages ("invalid int value: 'x'"): keep that name,
    # and the type itself, for what reads the parser (the pipeline's contract tests).
    check.__name__ = getattr(convert, "__name__", "value")
    check.__wrapped__ = convert  # type: ignore[attr-defined]
    return check


#: The extra (pyproject.toml) that installs each top-level package a command may import.
EXTRA_OF = {
    **dict.fromkeys(("numpy", "pandas", "sklearn", "mlflow", "skops"), "model"),
    **dict.fromkeys(("uvicorn", "gunicorn", "fastapi", "uvloop", "httptools"), "serve"),
    **dict.fromkeys(("boto3", "botocore"), "deploy"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand. Every failure the user can act on, a refused argument value included,
    is one line on stderr (`bikeshare COMMAND: error: ...`) and exit status 1; argparse's usage
    errors (a missing or unknown option) keep exit status 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except BikeshareError as error:  # raised by an argument type: the value, before anything ran
        return _fail(_command_in(argv), str(error))
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        # Ctrl-C is the user's own stop, not a bug: one line, the shell's 128+SIGINT status.
        _fail(args.command, _interrupted(args))
        return 130
    except Exception as error:
        reason = _reason(error)
        if reason is None:
            raise
        return _fail(args.command, reason)


_NEWLINES = re.compile(r"\s*\n\s*")


def _interrupted(args: argparse.Namespace) -> str:
    """What an interrupted command tells: where to look for what serves, when it had an endpoint
    (a release command's --report says it too)."""
    endpoint = getattr(args, "endpoint_name", None)
    if endpoint is None:
        return "interrupted (Ctrl-C)"
    return (
        f"interrupted (Ctrl-C); see what {endpoint} serves with "
        f"`bikeshare status --endpoint-name {endpoint}`"
    )


def _command_in(argv: Sequence[str]) -> str:
    """The subcommand named in argv: the top-level parser has no option that takes a value."""
    return next((word for word in argv if not word.startswith("-")), "")


def _fail(command: str, reason: str) -> int:
    # One line, whatever the message carries: a log reader or a job summary sees all of it.
    line = _NEWLINES.sub(" ", reason.strip())
    print(f"bikeshare {command}: error: {line}", file=sys.stderr)
    return 1


def _reason(error: Exception) -> str | None:
    """The one-line reason for a failure the user can act on, or None for a bug (a traceback)."""
    if isinstance(error, BikeshareError):
        return str(error)
    if isinstance(error, ModuleNotFoundError):
        return _missing_extra(error)
    botocore = _botocore_reason(error)
    if botocore is not None:
        return botocore
    if isinstance(error, OSError) and error.filename is not None:
        # A file the user named (--report, --password-file, --output ...): which, and why.
        return f"{error.filename}: {error.strerror or error}"
    return None


def _missing_extra(error: ModuleNotFoundError) -> str | None:
    extra = EXTRA_OF.get((error.name or "").partition(".")[0])
    if extra is None:
        return None
    return (
        f"needs the '{extra}' extra ({error.name} is not installed): `uv sync --extra {extra}` "
        f"(or --all-extras), or `pip install 'bikeshare[{extra}]'`"
    )


def _botocore_reason(error: Exception) -> str | None:
    """AWS refusals, missing credentials, an unreachable endpoint: botocore's, in one line."""
    exceptions = sys.modules.get("botocore.exceptions")
    if exceptions is None:  # botocore never loaded, so this cannot be one of its errors
        return None
    from bikeshare.deploy.aws import error_code, error_message, explain_credentials_error

    if isinstance(error, exceptions.NoCredentialsError | exceptions.PartialCredentialsError):
        return str(explain_credentials_error(error))
    if error_code(error):  # any other AWS refusal: its code and message, not a traceback
        return f"AWS refused the request ({error_code(error)}): {error_message(error)}"
    if isinstance(error, exceptions.ConnectionError | exceptions.HTTPClientError):
        return (
            f"cannot reach AWS: {error}; check --endpoint-url (or AWS_ENDPOINT_URL), --region "
            "and the network"
        )
    if isinstance(error, exceptions.BotoCoreError):
        return str(error)
    return None
