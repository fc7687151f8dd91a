"""Replay one release on a laptop: start its image's server as SageMaker does, then smoke it.

`dagger call ... replay` runs this file inside the release's own image, with the release's
model unpacked at /opt/ml/model, as `python3 replay.py --payload FILE -- ENTRYPOINT... serve`.
Standard library only (beside answers.py): that image's Python has whatever bikeshare version
the release carried.

It says which of three steps failed, with SageMaker's words for it and the server's last log
lines (what CloudWatch would show):
- start: the server process exited before /ping answered 200;
- ping: /ping never answered 200 in time;
- invoke: the smoke request was refused, or answered with something a healthy release does not.
"""

from __future__ import annotations

import argparse
import json
import subprocess  # nosec B404 - it starts the image's own server, by design
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass
from pathlib import Path

if __package__:
    from bikeshare.serving.answers import AnswerRejected, check_answer, expected_rows, model_error
else:  # a script inside the release's image, beside answers.py
    from answers import (  # type: ignore[no-redef]
        AnswerRejected,
        check_answer,
        expected_rows,
        model_error,
    )

# SageMaker's FailureReason when a variant's container never answers /ping (exited or slow).
PING_FAILURE = (
    "The primary container for production variant {variant} did not pass the ping health check. "
    "Please check CloudWatch logs for this endpoint."
)
LOG_LINES = 40
# Inside the throwaway replay container, where nothing else writes.
SERVER_LOG = Path("/tmp/replay/server.log")  # noqa: S108  # nosec B108


@dataclass(frozen=True)
class Outcome:
    """What the replay found: the failed step (None when it passed) and what to say."""

    failed_step: str | None
    message: str


def wait_for_ping(
    server: subprocess.Popen[bytes], url: str, timeout: float, variant: str
) -> Outcome | None:
    """None once /ping answers 200; the start or ping failure otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            return Outcome(
                "start",
                f"the server exited with status {server.returncode} before /ping answered "
                f"200. SageMaker: {PING_FAILURE.format(variant=variant)}",
            )
        try:
            ping = f"{url}/ping"
            with urllib.request.urlopen(ping, timeout=2) as answer:  # noqa: S310  # nosec B310
                if answer.status == 200:
                    return None
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    return Outcome(
        "ping",
        f"/ping did not answer 200 within {timeout:.0f} s while the server ran. SageMaker: "
        f"{PING_FAILURE.format(variant=variant)}",
    )


def invoke(url: str, payload: dict) -> Outcome:
    """The smoke request, with the same checks as `bikeshare smoke`."""
    try:
        rows = expected_rows(payload)
    except AnswerRejected as error:
        return Outcome("invoke", str(error))
    request = urllib.request.Request(  # noqa: S310  # nosec B310 - the local server only
        f"{url}/invocations",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310  # nosec B310
            body = answer.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as error:
        text = error.read().decode("utf-8", errors="replace")
        return Outcome("invoke", model_error(error.code, text))
    except (urllib.error.URLError, OSError) as error:
        return Outcome("invoke", f"the invocation did not complete: {error}")
    latency = (time.monotonic() - started) * 1000
    try:
        predictions = check_answer(body, rows)
    except AnswerRejected as error:
        return Outcome("invoke", str(error))
    shown = ", ".join(f"{p:.3f}" for p in predictions[:5])
    return Outcome(
        None, f"{len(predictions)} prediction(s) [{shown}] in {latency:.0f} ms (smoke passed)"
    )


def replay(serve: list[str], payload: dict, log: Path, timeout: float, variant: str) -> Outcome:
    """Start the server, wait for /ping, send the smoke request, stop the server."""
    url = "http://127.0.0.1:8080"
    with log.open("wb") as output:
        server = subprocess.Popen(  # noqa: S603  # nosec B603 - the image's entrypoint, as given
            serve, stdout=output, stderr=subprocess.STDOUT
        )
        try:
            failed = wait_for_ping(server, url, timeout, variant)
            return failed or invoke(url, payload)
        finally:
            if server.poll() is None:
                server.terminate()  # SIGTERM, as SageMaker stops an instance
                try:
                    server.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()


def last_lines(log: Path, count: int = LOG_LINES) -> list[str]:
    """The server's last lines, as its CloudWatch stream would end."""
    with log.open(errors="replace") as lines:
        return [line.rstrip("\n") for line in deque(lines, maxlen=count)]


def report(outcome: Outcome, log: Path) -> str:
    """What the person replaying reads: the verdict first, then the server's log."""
    verdict = (
        f"replay passed: {outcome.message}"
        if outcome.failed_step is None
        else f"replay failed at {outcome.failed_step}: {outcome.message}"
    )
    tail = last_lines(log)
    return "\n".join([verdict, f"--- the server's last {len(tail)} log line(s) ---", *tail])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="replay.py", description="Start a serving image's server and smoke-test it."
    )
    parser.add_argument("--payload", type=Path, required=True, help="smoke request (JSON)")
    parser.add_argument("--log", type=Path, default=SERVER_LOG, help="where the server writes")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds for /ping")
    parser.add_argument("--variant", default="AllTraffic", help="variant name for messages")
    parser.add_argument("serve", nargs="+", help="the image's entrypoint and `serve`")
    args = parser.parse_args(argv)
    payload = json.loads(args.payload.read_text())
    args.log.parent.mkdir(parents=True, exist_ok=True)
    outcome = replay(args.serve, payload, args.log, args.timeout, args.variant)
    print(report(outcome, args.log), flush=True)
    return 0 if outcome.failed_step is None else 1


if __name__ == "__main__":
    sys.exit(main())
