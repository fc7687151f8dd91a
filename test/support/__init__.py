"""Helpers shared by the test modules (importable because pytest puts test/ on sys.path)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real `bikeshare` console script (the one the containers run) and capture output."""
    bikeshare = Path(sys.executable).with_name("bikeshare")
    return subprocess.run(
        [str(bikeshare), *args], capture_output=True, text=True, check=check, timeout=300
    )
