"""wait_for_ping, which every serving process and endpoint container start waits on, notices
readiness promptly: a start is not made slower by the probe's own pauses."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from support import PING_PAUSE_MAX, wait_for_ping

# The server under test turns healthy this long after it starts, as a model server does (~2 s).
READY_AFTER = 1.2


class _Pings:
    """What the server answered to each GET /ping, in order."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.answers: list[int] = []


@pytest.fixture
def slow_starter() -> Iterator[tuple[str, _Pings]]:
    """A real HTTP server whose /ping is 503 until READY_AFTER seconds, then 200."""
    pings = _Pings()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status = 200 if time.monotonic() - pings.started >= READY_AFTER else 503
            pings.answers.append(status)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:  # quiet: the test reads `pings`
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", pings
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_readiness_is_noticed_within_a_tenth_of_a_second(
    slow_starter: tuple[str, _Pings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pause before the poll that saw 200 bounds how late readiness is noticed. It is what
    the probe chose to sleep, not a measured time, so load on the machine cannot flake it."""
    base_url, pings = slow_starter
    pauses: list[float] = []
    real_sleep = time.sleep

    def recorded_sleep(seconds: float) -> None:
        pauses.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", recorded_sleep)
    waited = wait_for_ping(base_url, timeout=30)
    assert pings.answers[-1] == 200, pings.answers
    assert set(pings.answers[:-1]) == {503}, pings.answers
    assert len(pauses) == len(pings.answers) - 1  # one pause between polls, none after the 200
    assert waited >= READY_AFTER
    assert pauses[-1] <= PING_PAUSE_MAX <= 0.1, pauses
    assert max(pauses) <= 0.1, pauses
