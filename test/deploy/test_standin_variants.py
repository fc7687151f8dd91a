"""The stand-in's variants without Docker: `bikeshare serve` forked from a fork server that has
imported the serving stack (standin.preloaded), so a deploy pays for its model, not for imports.

With Docker the release tests run variants as containers, so these tests keep the process
runner honest on every machine: it serves the real model, ships the server's own log lines,
notices a server that exits, and stops it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from standin import preloaded
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


def test_a_variant_whose_model_does_not_load_fails_its_ping_check_at_once(
    tmp_path: Path,
) -> None:
    archive = broken_model_archive(tmp_path).read_bytes()
    lines: list[str] = []
    runner = ProcessRunner("AllTraffic", archive, "unused", log_sink=lines.append)
    with pytest.raises(VariantFailed) as failed:
        runner.start()
    assert str(failed.value) == PING_FAILURE.format(variant="AllTraffic")
    assert runner._process is not None
    assert runner._process.exitcode not in (None, 0)
    assert "cannot load the MLflow model" in "".join(lines)  # its reason reaches CloudWatch


def test_the_fork_server_imports_every_module_and_starts_no_thread() -> None:
    # The fork server ignores a module it cannot import (variants would then import it each
    # time, seconds apiece), and forking a process that runs threads is unsafe.
    probe = (
        "import importlib, sys, threading\n"
        "for name in sys.argv[1:]: importlib.import_module(name)\n"
        "print(threading.active_count())\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", probe, *preloaded.IMPORTS],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "1"
