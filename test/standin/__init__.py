"""A local AWS stand-in: moto's server, extended where SageMaker behaviour matters to a deploy.

Start it with `uv run --all-extras python test/standin` (see docs/guide.md, "Rehearse a deploy
without AWS"); tests start it in-process with `StandIn().start()`.
"""

from standin.server import StandIn

__all__ = ["StandIn"]
