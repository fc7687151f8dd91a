from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from serving.asgi_client import AsgiClient, asgi_client
from support import ServeProcess, start_serve


@pytest.fixture(scope="session")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """One `bikeshare serve` (2 workers) on the session's model, shared by the HTTP tests."""
    process = start_serve(model_dir, tmp_path_factory.mktemp("serve-logs"))
    yield process
    assert process.stop() == 0, process.log()


@pytest.fixture(scope="session")
def in_process(model_dir: Path) -> Iterator[AsgiClient]:
    """The session's model served in this process, warmed up: for cheap HTTP-level tests."""
    client = asgi_client(model_dir)
    yield client
    client.close()
