"""The stand-in's variants without Docker: `bikeshare serve` forked from a fork server that has
imported the serving stack (standin.preloaded), so a deploy pays for its model, not for imports.

Most deploy tests run their variants this way, with Docker or without (tests marked `containers`
run the image instead, where Docker is); these tests check the runner itself: it serves the real
model, ships the server's own log lines, notices a server that exits, and stops it.
"""

from __future__ import annotations

from multiprocessing import forkserver
from pathlib import Path

import httpx
import pytest

from standin import preloaded, runners
from standin.runners import PING_FAILURE, ProcessRunner, VariantFailed
from support import broken_model_archive
from support.rows import split_payload


def test_a_forked_variant_serves_its_model_logs_and_stops(model_archive: Path) -> None:
    lines: list[str] = []
    archive = model_archive.read_bytes()
    runner = ProcessRunner("AllTraffic", archive, "unused", log_sink=lines.append)
    runner.start()
    try:
        answer = httpx.post(f"{runner.base_url}/invocations", json=split_payload(), timeout=30)
        assert answer.status_code == 200, answer.text
        (prediction,) = answer.json()["predictions"]
        assert prediction >= 0  # a demand forecast
    finally:
        runner.stop()
    assert runner._process is not None
    assert not runner._process.is_alive()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{runner.base_url}/ping", timeout=2)
    logged = "".join(lines)
    assert "Booting worker with pid" in logged  # gunicorn's own lines, through the log sink
    assert "serving " in logged  # and bikeshare serve's


# A generous health timeout and a test timeout below it: the test fails if the runner waits for
# the timeout instead of noticing that the server exited.
@pytest.mark.timeout(120)
def test_a_variant_whose_model_does_not_load_fails_its_ping_check_at_once(
    tmp_path: Path,
) -> None:
    archive = broken_model_archive(tmp_path).read_bytes()
    lines: list[str] = []
    runner = ProcessRunner(
        "AllTraffic", archive, "unused", health_timeout=600, log_sink=lines.append
    )
    with pytest.raises(VariantFailed) as failed:
        runner.start()
    assert str(failed.value) == PING_FAILURE.format(variant="AllTraffic")
    assert runner._process is not None
    assert runner._process.exitcode == 1  # `bikeshare serve`'s status for a model it cannot load
    assert "cannot load the MLflow model" in "".join(lines)  # its reason reaches CloudWatch


def test_variants_fork_from_a_server_with_the_stack_imported_and_no_thread(
    model_archive: Path, tmp_path: Path
) -> None:
    # The fork server skips a module it cannot import (each variant would then import it, seconds
    # apiece), and forking a process that runs threads, native ones too, is unsafe.
    runner = ProcessRunner("AllTraffic", model_archive.read_bytes(), "unused")
    runner.start()  # the fork server runs from the first variant on
    runner.stop()
    report = tmp_path / "not-imported"
    child = runners._FORK_SERVER.Process(target=preloaded.write_not_imported, args=(str(report),))
    with runners._STATUS:  # start() polls the other children (standin.runners)
        child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    assert report.read_text() == ""
    server = forkserver._forkserver._forkserver_pid
    assert server is not None
    assert len(list(Path(f"/proc/{server}/task").iterdir())) == 1
