"""Serve a model in the test process through httpx's ASGI transport: HTTP-level tests, no socket."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from bikeshare.serving.app import ScoringApp
from bikeshare.serving.server import build_app


class AsgiClient:
    """HTTP requests to a ScoringApp in this process (httpx's ASGI transport, no socket).

    The app is warmed up first, as each gunicorn worker's lifespan startup does. An exception
    escaping the app is raised here rather than turned into a 500, so a test sees the crash.
    """

    def __init__(self, app: ScoringApp) -> None:
        self.app = app
        app.warm_up()

    def get(self, path: str) -> httpx.Response:
        return self.request("GET", path)

    def post(self, path: str, body: bytes | str, content_type: str | None) -> httpx.Response:
        headers = {"Content-Type": content_type} if content_type is not None else {}
        return self.request("POST", path, content=body, headers=headers)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://model") as client:
                return await client.request(method, path, timeout=60, **kwargs)

        return asyncio.run(send())

    def close(self) -> None:
        self.app.close()


def asgi_client(model_dir: Path) -> AsgiClient:
    """The model in model_dir served in this process the way `bikeshare serve` builds it."""
    return AsgiClient(build_app(model_dir))
