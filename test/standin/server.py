"""The stand-in's HTTP server: moto's WSGI app plus a small control API under /_standin/."""

from __future__ import annotations

import argparse
import io
import json
import logging
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape as xml_escape

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server

from standin import iam, sagemaker
from standin.registry import LocalRegistry
from standin.registry import available as registry_available
from standin.runners import DockerRunner

CONTROL_PREFIX = "/_standin/"


class ControlApp:
    """WSGI: /_standin/faults (POST JSON), /_standin/state, /_standin/authorization (GET),
    /_standin/reset (POST)."""

    def __init__(self, moto_app: Callable[..., Iterable[bytes]]) -> None:
        self.moto_app = moto_app
        self.after_reset: Callable[[], None] | None = None  # the command line re-provisions

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if not path.startswith(CONTROL_PREFIX):
            if "Credential=EXPIRED" in environ.get("HTTP_AUTHORIZATION", ""):
                return self._expired(environ, start_response)
            denied = self._denied(environ, start_response)
            if denied is not None:
                return denied
            if _is_bucket_policy_call(environ):
                return _bucket_policy(environ, start_response)
            if self._throttled(environ):
                body = b'{"__type": "ThrottlingException", "message": "Rate exceeded"}'
                start_response(
                    "400 Bad Request",
                    [
                        ("Content-Type", "application/x-amz-json-1.1"),
                        ("Content-Length", str(len(body))),
                    ],
                )
                return [body]
            return self.moto_app(environ, start_response)
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0) or 0)
        status, answer = self.control(
            path.removeprefix(CONTROL_PREFIX),
            environ["REQUEST_METHOD"],
            json.loads(body) if body else {},
        )
        data = json.dumps(answer).encode()
        start_response(
            status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        )
        return [data]

    @staticmethod
    def _expired(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        """Access keys starting with EXPIRED stand for credentials whose session has ended."""
        message = "The security token included in the request is expired"
        return _error(environ, start_response, "400 Bad Request", "ExpiredToken", message)

    @staticmethod
    def _denied(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes] | None:
        """Refuse what the calling role's policies do not allow, as AWS words it."""
        body = b""
        if environ.get("HTTP_X_AMZ_TARGET") or environ.get("CONTENT_TYPE", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0) or 0)
            environ["wsgi.input"] = io.BytesIO(body)
        try:
            if _is_web_identity_login(environ, body):
                refused = iam.refuse_web_identity(body)
                if refused:
                    return _error(environ, start_response, "403 Forbidden", "AccessDenied", refused)
                return None
            failed = iam.authorize(environ, body)
        except iam.Unmodelled as error:
            return _error(
                environ, start_response, "403 Forbidden", "AccessDenied", f"{error} (stand-in)"
            )
        except Exception as error:  # a stand-in bug must not read as a retryable 500
            reason = f"the stand-in could not authorize this call: {error!r} (stand-in)"
            return _error(environ, start_response, "403 Forbidden", "AccessDenied", reason)
        if failed is None:
            return None
        return _error(
            environ, start_response, "403 Forbidden", "AccessDenied", iam.denial_message(*failed)
        )

    @staticmethod
    def _throttled(environ: dict[str, Any]) -> bool:
        """Answer ThrottlingException while an injected budget for this action lasts."""
        action = environ.get("HTTP_X_AMZ_TARGET", "").rpartition(".")[2]
        budget = sagemaker.STATE.faults.throttle
        with sagemaker.STATE.lock:
            if budget.get(action, 0) > 0:
                budget[action] -= 1
                return True
        return False

    def control(self, action: str, method: str, payload: dict[str, Any]) -> tuple[str, Any]:
        state = sagemaker.STATE
        if action == "faults" and method == "POST":
            faults = state.faults
            faults.fail_updates += list(payload.get("fail_updates", []))
            faults.transition_seconds = float(
                payload.get("transition_seconds", faults.transition_seconds)
            )
            faults.config_not_visible += int(payload.get("config_not_visible", 0))
            for action, count in payload.get("throttle", {}).items():
                faults.throttle[action] = int(count)
            for endpoint, statuses in payload.get("invoke_errors", {}).items():
                faults.invoke_errors.setdefault(endpoint, []).extend(statuses)
            if "health_timeout" in payload:
                state.health_timeout = float(payload["health_timeout"])
            return "200 OK", {"faults": faults.__dict__, "health_timeout": state.health_timeout}
        if action == "state" and method == "GET":
            with state.lock:
                running = {
                    name: [r.base_url for r in runners] for name, runners in state.runners.items()
                }
            return "200 OK", {"faults": state.faults.__dict__, "running": running}
        if action == "authorization" and method == "GET":
            return "200 OK", iam.report()
        if action == "reset" and method == "POST":
            state.stop_all()
            _reset_moto()
            iam.USAGE.clear()
            iam.BUCKET_POLICIES.clear()
            if self.after_reset is not None:
                self.after_reset()
            return "200 OK", {"reset": True}
        return "404 Not Found", {"error": f"unknown control call {method} {action}"}


def _is_bucket_policy_call(environ: dict[str, Any]) -> bool:
    """S3's Put/Get/DeleteBucketPolicy (`/bucket?policy`), path-style as boto3 sends it."""
    path = environ.get("PATH_INFO", "").strip("/")
    return (
        iam.credential_scope(environ).service == "s3"
        and bool(path)
        and "/" not in path
        and "policy" in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    )


def _bucket_policy(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """Keep a bucket's policy for iam.bucket_policy_denies (see iam.BUCKET_POLICIES)."""
    bucket = environ["PATH_INFO"].strip("/")
    method = environ["REQUEST_METHOD"]
    if method == "PUT":
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0) or 0)
        iam.BUCKET_POLICIES[bucket] = json.loads(body)
        start_response("204 No Content", [("Content-Length", "0")])
        return [b""]
    if method == "DELETE":
        iam.BUCKET_POLICIES.pop(bucket, None)
        start_response("204 No Content", [("Content-Length", "0")])
        return [b""]
    if bucket not in iam.BUCKET_POLICIES:
        message = "The bucket policy does not exist"
        return _error(environ, start_response, "404 Not Found", "NoSuchBucketPolicy", message)
    data = json.dumps(iam.BUCKET_POLICIES[bucket]).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    )
    return [data]


def _is_web_identity_login(environ: dict[str, Any], body: bytes) -> bool:
    """An STS AssumeRoleWithWebIdentity call: unsigned (as botocore sends it) or signed for
    STS, to "/"; a look-alike body sent to another service is authorized like any call."""
    signed = bool(environ.get("HTTP_AUTHORIZATION"))
    return (
        (iam.credential_scope(environ).service == "sts" or not signed)
        and environ.get("PATH_INFO", "/") == "/"
        and parse_qs(body.decode(errors="replace")).get("Action") == ["AssumeRoleWithWebIdentity"]
    )


def _error(
    environ: dict[str, Any],
    start_response: Callable[..., Any],
    status: str,
    code: str,
    message: str,
) -> list[bytes]:
    """An AWS error in the request's protocol, so botocore parses its code and message."""
    if environ.get("HTTP_X_AMZ_TARGET"):  # JSON protocol (SageMaker, ECR, Logs, ...)
        exception = "AccessDeniedException" if code == "AccessDenied" else code + "Exception"
        data = json.dumps({"__type": exception, "message": message}).encode()
        kind = "application/x-amz-json-1.1"
    elif environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        data = (  # query protocol (STS, IAM, CloudWatch)
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>"
            f"{xml_escape(message)}</Message></Error></ErrorResponse>"
        ).encode()
        kind = "text/xml"
    else:  # REST protocols: S3 (XML) and SageMaker Runtime (JSON error header)
        data = (
            f"<Error><Code>{code}</Code><Message>{xml_escape(message)}</Message></Error>".encode()
        )
        kind = "application/xml"
        if "/endpoints/" in environ.get("PATH_INFO", ""):
            exception = "AccessDeniedException" if code == "AccessDenied" else code
            data = json.dumps({"message": message}).encode()
            kind = "application/json"
            start_response(
                status,
                [
                    ("Content-Type", kind),
                    ("Content-Length", str(len(data))),
                    ("x-amzn-ErrorType", exception),
                ],
            )
            return [data]
    start_response(status, [("Content-Type", kind), ("Content-Length", str(len(data)))])
    return [data]


def _reset_moto() -> None:
    from moto.moto_api._internal.models import moto_api_backend

    moto_api_backend.reset()


class StandIn:
    """The stand-in, run in this process on a free loopback port."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        quiet: bool = True,
        advertised_host: str = "",
        registry_port: int = 0,
    ) -> None:
        sagemaker.install()
        if quiet:  # one line per AWS call drowns test failure output
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self.app = app = ControlApp(DomainDispatcherApplication(create_backend_app))
        self.registry = (
            LocalRegistry(host, advertised_host, registry_port) if registry_available() else None
        )
        self._server: BaseWSGIServer = make_server(
            host, port, app, threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> StandIn:
        if self.registry is not None:
            self.registry.start()
            sagemaker.STATE.registry = self.registry.address
        self._thread.start()
        return self

    def stop(self) -> None:
        sagemaker.STATE.stop_all()
        self._server.shutdown()
        self._thread.join(timeout=10)
        if self.registry is not None:
            self.registry.stop()
            sagemaker.STATE.registry = None


def _serve_in_background(standin: StandIn) -> None:
    threading.Thread(target=standin._server.serve_forever, daemon=True).start()


def provision(url: str, region: str) -> None:
    """What `terraform apply` of infra/terraform creates (test support, python-hcl2)."""
    from support.account import provision as apply_terraform

    apply_terraform(url, region)


def _interrupt(signum: int, frame: object) -> None:
    """The first Ctrl-C or kill stops the stand-in; later ones (`uv run` forwards the terminal's
    Ctrl-C, so one press can arrive twice) must not interrupt its cleanup."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python test/standin",
        description="Local AWS stand-in (moto + SageMaker UpdateEndpoint, transitions, serving "
        "endpoints, fault injection). Point tools at it with AWS_ENDPOINT_URL.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port",
        type=int,
        default=5077,
        help="the API's port (not 5000: Debian's docker-registry service takes it)",
    )
    parser.add_argument(
        "--advertise",
        default="",
        metavar="HOST",
        help="the address ECR's login names for the registry (default: --host): with --host "
        "0.0.0.0, an address a Dagger engine's containers reach this machine at, e.g. 172.17.0.1",
    )
    parser.add_argument(
        "--registry-port", type=int, default=0, help="the registry's port (default: a free one)"
    )
    parser.add_argument(
        "--empty-account",
        action="store_true",
        help="start with nothing in the account (default: what infra/terraform creates)",
    )
    args = parser.parse_args()
    standin = StandIn(
        args.host,
        args.port,
        quiet=False,
        advertised_host=args.advertise,
        registry_port=args.registry_port,
    )
    # `kill` (SIGTERM) cleans up like Ctrl-C: endpoint containers and the registry child stop.
    # SIGINT is set too: a process started in the background of a script inherits it ignored,
    # and Python then installs no Ctrl-C handler (found when CI ran the suite that way).
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:  # from the registry's start on: a stop during start-up cleans up too
        if standin.registry is not None:
            standin.registry.start()
            sagemaker.STATE.registry = standin.registry.address
            print(f"ECR stand-in registry on {standin.registry.address} (user AWS)", flush=True)
        else:
            print(
                "no local registry: install docker-registry and apache2-utils for ECR", flush=True
            )
        if (
            shutil.which("docker")
            and subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0
        ):
            sagemaker.STATE.runner_factory = DockerRunner
            print("endpoints run their image with Docker, as SageMaker does", flush=True)
        else:
            print("no Docker: endpoints run as `bikeshare serve` processes", flush=True)
        if not args.empty_account:
            _serve_in_background(standin)

            def account() -> None:
                provision(standin.url, "ca-central-1")

            account()
            standin.app.after_reset = account
            print(
                "the account as `terraform apply` of infra/terraform leaves it: roles with their "
                "policies (enforced for role sessions), bucket bikeshare-models (KMS), repository "
                "bikeshare-serving, rollback alarms; `--empty-account` for none",
                flush=True,
            )
        print(f"AWS stand-in listening on {standin.url}", flush=True)
        reachable = f"http://{args.advertise}:{args.port}" if args.advertise else standin.url
        print(
            f"  export AWS_ENDPOINT_URL={reachable} AWS_ACCESS_KEY_ID=testing "
            "AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=ca-central-1",
            flush=True,
        )
        if args.empty_account:
            standin._server.serve_forever()
        else:
            threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # an exception, not a signal, brought us here
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sagemaker.STATE.stop_all()
        if standin.registry is not None:
            standin.registry.stop()
    return 0
