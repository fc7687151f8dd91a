"""`python test/standin` as people run it: started, reachable where it says, and stopped cleanly
by Ctrl-C or `kill`, leaving no registry child and no endpoint container behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from standin import registry as standin_registry
from standin.runners import OWNER_LABEL, exit_watcher, remove_owned_containers
from support import docker_or_skip, free_port
from support.account import admin_client
from support.images import docker, ensure_base_image

ROOT = Path(__file__).resolve().parents[2]


def children(pid: int) -> list[int]:
    """The process ids whose parent is `pid` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split() or ["Z"])[0]
    return state != "Z"


@pytest.mark.slow
@pytest.mark.parametrize(
    "stop_signals",
    [(signal.SIGINT,), (signal.SIGTERM,), (signal.SIGINT, signal.SIGINT)],
    # `uv run` forwards the terminal's Ctrl-C, so the stand-in may get it twice, the second
    # during its cleanup (found recording the README's day-one transcript).
    ids=["ctrl-c", "kill", "ctrl-c-through-uv-run"],
)
def test_the_standin_stops_its_registry_on_ctrl_c_and_on_kill(
    stop_signals: tuple[int, ...],
) -> None:
    if not standin_registry.available():
        pytest.skip("docker-registry and htpasswd are not installed")
    port = free_port()
    command = [sys.executable, str(ROOT / "test/standin"), "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--host", "0.0.0.0", "--advertise", "127.0.0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # As a script's background job starts it: SIGINT ignored (bash does that), which is how
        # the suite ran in CI; Ctrl-C must still stop it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        lines = []
        for line in process.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if "export AWS_ENDPOINT_URL" in line:  # printed last, once it listens
                break
        registry_line = next(line for line in lines if line.startswith("ECR stand-in registry"))
        assert f"export AWS_ENDPOINT_URL=http://127.0.0.1:{port} " in "".join(lines)
        advertised = registry_line.split()[4]
        assert advertised.startswith("127.0.0.1:"), registry_line
        assert httpx.get(f"http://{advertised}/v2/", timeout=5).status_code == 401
        assert httpx.get(f"http://127.0.0.1:{port}/moto-api/", timeout=5).status_code == 200
        # started from the command line, it is the account Terraform leaves
        iam = admin_client("iam", f"http://127.0.0.1:{port}", "ca-central-1")
        role = iam.get_role(RoleName="bikeshare-deployer-staging")["Role"]
        assert "token.actions.githubusercontent.com" in str(role["AssumeRolePolicyDocument"])
        registries = children(process.pid)
        assert registries, "the registry runs as a child process"
        for stop_signal in stop_signals:
            process.send_signal(stop_signal)
            time.sleep(0.05)
        assert process.wait(timeout=30) == 0
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in registries) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(alive(pid) for pid in registries), "the registry child outlived it"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.docker
def test_stopping_removes_every_endpoint_container_it_started(monkeypatch) -> None:
    """Even one whose runner never registered (a rollout thread still starting it)."""
    docker_or_skip()
    from standin import runners

    container = docker(
        "run", "-d", "--label", OWNER_LABEL, ensure_base_image(), "sleep", "300"
    ).stdout.strip()
    monkeypatch.setattr(runners, "_STARTED_CONTAINERS", ["AllTraffic"])
    try:
        assert remove_owned_containers() == [container[:12]]
        assert docker("ps", "-aq", "--filter", f"id={container}").stdout.strip() == ""
    finally:
        docker("rm", "-f", container, check=False)


@pytest.mark.docker
def test_an_endpoint_containers_exit_is_seen_without_polling_docker() -> None:
    """One `docker wait` per container, not a `docker inspect` per /ping poll: that load made
    slow starts under a full suite miss the health deadline (a flaky promote test)."""
    docker_or_skip()
    container = docker("run", "-d", ensure_base_image(), "sleep", "2").stdout.strip()
    try:
        watcher = exit_watcher(container)
        assert watcher.poll() is None, "running"
        assert watcher.wait(timeout=30) == 0, "exited, and seen"
    finally:
        docker("rm", "-f", container, check=False)
