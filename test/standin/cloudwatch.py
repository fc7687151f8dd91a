"""Endpoint container output into the stand-in's CloudWatch Logs, where SageMaker puts it:
log group /aws/sagemaker/Endpoints/NAME, one stream per variant instance. So `bikeshare logs`
can be rehearsed, and a container that crashes leaves its last lines there, as on AWS."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable

from moto.logs.models import logs_backends

Sink = Callable[[str], None]
_GROUPS = threading.Lock()  # two variants of one endpoint may start at once


def endpoint_log_group(endpoint_name: str) -> str:
    return f"/aws/sagemaker/Endpoints/{endpoint_name}"


def endpoint_sink(account_id: str, region: str, endpoint_name: str, variant: str) -> Sink:
    """Where one variant container's lines go: a new stream in the endpoint's log group."""
    backend = logs_backends[account_id][region]
    group = endpoint_log_group(endpoint_name)
    stream = f"{variant}/{uuid.uuid4().hex[:17]}"  # SageMaker: VARIANT/INSTANCE-ID
    with _GROUPS:
        if group not in backend.groups:
            backend.create_log_group(group, tags={})
        backend.create_log_stream(group, stream)

    def put(line: str) -> None:
        event = {"timestamp": int(time.time() * 1000), "message": line.rstrip("\n")}
        backend.put_log_events(group, stream, [event])

    return put


def follow(lines: Iterable[str], sink: Sink) -> threading.Thread:
    """Copy `lines` into `sink` in the background until they end."""

    def copy() -> None:
        for line in lines:
            if line.strip():
                sink(line)

    thread = threading.Thread(target=copy, daemon=True)
    thread.start()
    return thread


def tail_file(path: str, done: Callable[[], bool]) -> Iterable[str]:
    """The lines of a growing file, until `done()` and nothing more is written."""
    with open(path, errors="replace") as handle:
        while True:
            line = handle.readline()
            if line:
                yield line
            elif done():
                yield from handle.readlines()
                return
            else:
                time.sleep(0.2)
