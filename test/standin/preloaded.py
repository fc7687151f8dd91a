"""What a variant's `bikeshare serve` imports, loaded once by the fork server that starts them.

A container image has its packages installed; a variant started from it pays for loading its
model, not for installing MLflow. A fresh `bikeshare serve` process spends ~5.5 s of CPU
importing MLflow, scikit-learn, skops and pandas before it loads a 100 KB model (in the tools
image: benchmarks/pipeline.md, section 7), and a release test starts a variant per deploy. So the
stand-in's process runner (standin.runners.ProcessRunner) forks each variant from a
multiprocessing fork server that imported IMPORTS once; the child then runs the real
`bikeshare serve` (`bikeshare.cli.main`) with the variant's arguments, loads the variant's own
model and serves it through gunicorn, as the console script would.

This module imports nothing heavy itself: the stand-in imports it for `serve`'s name, and each
child imports it again.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: Imported by the fork server before it forks (installed packages only: Python 3.11's fork
#: server ignores the parent's sys.path, so it cannot import from test/). With OMP_NUM_THREADS=1
#: (standin.runners sets it) none starts a thread, native ones included: forking is safe.
IMPORTS = (
    "pandas",
    "sklearn.ensemble",
    "skops.io",
    "mlflow.pyfunc",
    "mlflow.pyfunc.scoring_server",
    "gunicorn.app.base",
    "uvicorn_worker",
    "bikeshare.cli",
    "bikeshare.serving.server",
    "bikeshare.serving.app",
)


def serve(argv: list[str], log_path: str) -> None:
    """In a child of the fork server: `bikeshare serve ARGV`, stdout and stderr to log_path."""
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    from bikeshare.cli import main  # loaded by the fork server already

    sys.exit(main(["serve", *argv]))


def write_not_imported(path: str) -> None:
    """In a child of the fork server: write which of IMPORTS this process has not imported (none,
    when the fork server preloaded them), one per line."""
    missing = [name for name in IMPORTS if name not in sys.modules]
    Path(path).write_text("".join(f"{name}\n" for name in missing))
