"""Train, package, serve and invoke a model, with whatever `bikeshare` is first on sys.path.

Run by test_adding_a_feature.py in a subprocess whose PYTHONPATH is a copy of src/ with a feature
added to features.py (so the whole package sees the edited feature list, as after a real edit):

    python added_feature_walkthrough.py WORK_DIR NEW_FEATURE

It follows the guide's day-one path with the real commands: synthetic history -> `bikeshare train`
-> `bikeshare package` -> the archive unpacked as SageMaker unpacks it -> the serving app, in
process over httpx's ASGI transport -> /ping and /invocations with and without the new column.
It trains on a 2,000-row sample of the synthetic history (written as a CSV, so the CSV reader
sees the new column too), which takes seconds. The last line of stdout is a JSON report.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import sys
import tarfile
from pathlib import Path
from typing import Any

import httpx

import bikeshare
from bikeshare.cli import main as bikeshare_main
from bikeshare.deploy.artifacts import safe_extract
from bikeshare.model.data import synthetic_rides
from bikeshare.model.features import EXAMPLE_ROW, FEATURE_NAMES, TARGET

SAMPLE_ROWS = 2000


def cli(*argv: str) -> str:
    """Run a `bikeshare` subcommand in this process; fail loudly unless it exits 0."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            status = bikeshare_main(list(argv))
        except SystemExit as done:  # --help exits through argparse
            status = done.code or 0
    if status != 0:
        raise SystemExit(f"bikeshare {' '.join(argv)} exited {status}:\n{out.getvalue()}")
    return out.getvalue()


def train_and_package(work: Path) -> Path:
    """The synthetic history sampled to a CSV, trained and packaged by the CLI; the archive."""
    rides = work / "rides.csv"
    synthetic_rides(0).sample(SAMPLE_ROWS, random_state=0).to_csv(rides, index=False)
    cli("train", "--data", str(rides), "--output", str(work / "model"))
    cli("package", str(work / "model"), "--output", str(work / "model.tar.gz"))
    return work / "model.tar.gz"


def unpack(archive: Path, target: Path) -> Path:
    """What SageMaker does with model data: unpack it into the directory the server loads."""
    # bikeshare's own extractor: `filter=` is missing from Debian bookworm's Python 3.11.2, which
    # the tools container runs on where no registry serves python:3.11-slim (found on an engine).
    with tarfile.open(archive) as tar:
        safe_extract(tar, target)
    return target


async def invoke(model_dir: Path, new_feature: str) -> dict[str, Any]:
    """Serve the model in process and send the example with and without the new column."""
    import mlflow.pyfunc

    from bikeshare.serving.app import ScoringApp

    app = ScoringApp(mlflow.pyfunc.load_model(str(model_dir)))
    app.warm_up()  # what the server's lifespan startup runs; the ASGI transport sends no lifespan
    with_it = {"dataframe_split": {"columns": list(FEATURE_NAMES), "data": [example_values()]}}
    without = {
        "dataframe_split": {
            "columns": [n for n in FEATURE_NAMES if n != new_feature],
            "data": [[v for n, v in EXAMPLE_ROW.items() if n != new_feature]],
        }
    }
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://model") as client:
        ping = await client.get("/ping")
        answers = {
            name: await client.post("/invocations", json=payload)
            for name, payload in (("with", with_it), ("without", without))
        }
    return {
        "ping": [ping.status_code, ping.json()],
        **{name: [r.status_code, r.json()] for name, r in answers.items()},
    }


def example_values() -> list[Any]:
    return [EXAMPLE_ROW[name] for name in FEATURE_NAMES]


def main(work: Path, new_feature: str) -> dict[str, Any]:
    """Everything the test asserts on, gathered in one process."""
    import mlflow.pyfunc

    archive = train_and_package(work)
    served = unpack(archive, work / "opt-ml-model")
    signature = mlflow.pyfunc.load_model(str(served)).metadata.get_input_schema()
    return {
        "package": bikeshare.__file__,
        "synthetic_columns": list(synthetic_rides(0).columns),
        "target": TARGET,
        "signature_columns": signature.input_names(),
        "train_help": cli("train", "--help"),
        **asyncio.run(invoke(served, new_feature)),
    }


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), sys.argv[2])))
