"""A local AWS stand-in: moto's server, extended where SageMaker behaviour matters to a deploy.

Start it with `uv run --all-extras python test/standin` (see docs/guide.md, "Rehearse a deploy
without AWS"); tests start it in-process with `StandIn().start()`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["StandIn"]


def __getattr__(name: str) -> Any:
    """`StandIn` on first use: a variant's process imports standin.preloaded, not moto."""
    if name == "StandIn":
        from standin.server import StandIn

        return StandIn
    raise AttributeError(f"module 'standin' has no attribute {name!r}")
