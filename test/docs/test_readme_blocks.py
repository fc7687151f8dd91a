"""The README's shell blocks, and the guide's day-one blocks, work as written.

Blocks that need only Python run here, for real. Blocks that need Docker or the AWS stand-in are
checked against a committed transcript (docs/transcripts/day-one.md, written by
test/docs/record_transcript.py in a fresh clone): each must appear there verbatim, followed by its
output and exit status 0, so a block edited without re-running it fails here. Blocks that need a
Dagger engine cannot run here or in the suite: the transcript says so and points at the record of
what ran on an engine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from day_one import (
    GUIDE_SECTIONS,
    NOT_RUN_DAGGER,
    RE_RECORD,
    ROOT,
    RUN_BY_CI,
    TRANSCRIPT,
    Block,
    bash_blocks,
    day_one_blocks,
    transcript_entries,
)

BLOCKS = day_one_blocks()


def _ids(blocks: list[Block]) -> list[str]:
    return [f"{b.source}:{b.heading}:{i}" for i, b in enumerate(blocks)]


def test_every_readme_block_is_accounted_for() -> None:
    kinds = {b.text: b.kind for b in bash_blocks("README.md")}
    assert kinds["dagger call ci"] == "dagger"
    assert kinds["uv run --locked --all-extras pytest"] == "ci"
    assert "run" in kinds.values(), "the README keeps a block a newcomer can run with Python only"


def test_the_day_one_sections_of_the_guide_exist() -> None:
    headings = {b.heading for b in BLOCKS if b.source == "docs/guide.md"}
    assert headings == set(GUIDE_SECTIONS)


RUN = [b for b in BLOCKS if b.kind == "run"]


@pytest.mark.slow
@pytest.mark.parametrize("block", RUN, ids=_ids(RUN))
def test_python_only_blocks_run_as_written(block: Block) -> None:
    if shutil.which("uv") is None:
        pytest.skip("the blocks run `uv run`, and uv is not on PATH")
    # OMP_NUM_THREADS=1 (test/conftest.py) reaches the blocks through the environment.
    ran = subprocess.run(
        block.argv,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert ran.returncode == 0, f"{block.title} failed:\n{ran.stdout[-2000:]}{ran.stderr[-3000:]}"
    if "tar tzf" in block.text:
        listed = ran.stdout.split()
        assert {"MLmodel", "model.skops", "requirements.txt"} <= set(listed), listed


RECORDED = [b for b in BLOCKS if b.kind != "run"]


@pytest.mark.parametrize("block", RECORDED, ids=_ids(RECORDED))
def test_other_blocks_are_in_the_transcript_as_written(block: Block) -> None:
    assert TRANSCRIPT.is_file(), f"{TRANSCRIPT} is missing; {RE_RECORD}"
    entries = transcript_entries(TRANSCRIPT.read_text(encoding="utf-8"))
    same = [e for e in entries if e.block == block.text]
    assert same, (
        f"{block.title}: this block is not in {TRANSCRIPT.relative_to(ROOT)} as written (edited "
        f"since it was recorded?); {RE_RECORD}"
    )
    entry = same[-1]
    if block.kind == "dagger":
        assert entry.body.strip() == NOT_RUN_DAGGER, f"{block.title}: {entry.body.strip()!r}"
    elif block.kind == "ci":
        assert entry.body.strip() == RUN_BY_CI, f"{block.title}: {entry.body.strip()!r}"
    else:
        assert entry.output is not None, f"{block.title}: no recorded output; {RE_RECORD}"
        if block.kind == "server":
            assert "Traceback" not in entry.output, (
                f"{block.title}: Ctrl-C did not stop it cleanly (a traceback, exit status "
                f"{entry.exit_status}); fix the stand-in's shutdown, then {RE_RECORD}"
            )
        assert entry.exit_status == 0, (
            f"{block.title}: recorded with exit status {entry.exit_status}; fix the block, then "
            f"{RE_RECORD}"
        )


def test_the_checker_catches_an_edited_block() -> None:
    entries = transcript_entries(TRANSCRIPT.read_text(encoding="utf-8"))
    recorded = {e.block for e in entries}
    block = next(b for b in BLOCKS if b.kind == "recorded")
    assert block.text in recorded
    assert block.text.replace("docker", "podman", 1) not in recorded
    assert block.text + "\necho extra" not in recorded
