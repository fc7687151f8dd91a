"""The day-one shell blocks: which the docs show, how each is checked, and the transcript format.

Shared by test_readme_blocks.py (the check) and record_transcript.py (the recorder).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TRANSCRIPT = ROOT / "docs" / "transcripts" / "day-one.md"
#: Sections of the guide a newcomer runs on day one (besides every block of the README).
GUIDE_SECTIONS = ("Serving locally", "The local AWS stand-in", "Rehearse a deploy without AWS")
#: What the transcript says for a block that needs a Dagger engine, and nothing else.
NOT_RUN_DAGGER = (
    "Not run here: `dagger call` needs a Dagger engine. What ran on one: see "
    'docs/verified-on-engine.md, the "Verified on a real engine" table.'
)
#: What the transcript says for the README's test command, which CI runs on every submission.
RUN_BY_CI = (
    "Not run here: this is the test suite itself; `.ci/run` runs exactly this line on every "
    "submission (test/docs/test_readme.py checks that they are identical)."
)
RE_RECORD = (
    "re-record the transcript: uv run --locked --all-extras python test/docs/record_transcript.py"
)


@dataclass(frozen=True)
class Block:
    """One ```bash block of a document, under its nearest heading."""

    source: str  # "README.md" or "docs/guide.md"
    heading: str
    text: str

    @property
    def argv(self) -> list[str]:
        """The block as a reader's shell runs it, stopping at its first failure."""
        return ["bash", "-euo", "pipefail", "-c", self.text]

    @property
    def kind(self) -> str:
        """run (Python only, the suite runs it), ci, dagger, server (runs until stopped), or
        recorded (needs Docker or the stand-in: checked against the transcript)."""
        if re.search(r"^dagger |\bdagger call\b", self.text, flags=re.MULTILINE):
            return "dagger"
        if self.text.strip() == "uv run --locked --all-extras pytest":
            return "ci"
        if "python test/standin" in self.text:
            return "server"
        if re.search(r"\bdocker\b|AWS_ENDPOINT_URL", self.text):
            return "recorded"
        return "run"

    @property
    def title(self) -> str:
        return f"{self.source}: {self.heading}"


def bash_blocks(source: str) -> list[Block]:
    """Every ```bash block of a document, with the heading it sits under."""
    text = (ROOT / source).read_text(encoding="utf-8")
    blocks, heading = [], ""
    fence = re.compile(r"^(`{3,})(\w*)[^\n]*\n(.*?)^\1[ \t]*$", re.MULTILINE | re.DOTALL)
    position = 0
    for match in fence.finditer(text):
        for line in text[position : match.start()].splitlines():
            if line.startswith("#"):
                heading = line.lstrip("#").strip()
        position = match.end()
        if match.group(2) == "bash":
            blocks.append(Block(source, heading, match.group(3).rstrip("\n")))
    return blocks


def day_one_blocks() -> list[Block]:
    """The README's blocks and the guide's day-one sections' blocks, in reading order."""
    guide = [b for b in bash_blocks("docs/guide.md") if b.heading in GUIDE_SECTIONS]
    return bash_blocks("README.md") + guide


@dataclass(frozen=True)
class Entry:
    """One block as the transcript recorded it."""

    title: str
    block: str
    body: str  # everything after the block up to the next entry

    @property
    def exit_status(self) -> int | None:
        found = re.search(r"^Exit status: (-?\d+)", self.body, flags=re.MULTILINE)
        return int(found[1]) if found else None

    @property
    def output(self) -> str | None:
        found = re.search(r"^Output[^\n]*:\n\n````text\n(.*?)^````", self.body, re.M | re.S)
        return found[1] if found else None


def transcript_entries(text: str) -> list[Entry]:
    """The entries of a transcript: `## title`, the block, then its output and exit status."""
    entries = []
    for chunk in re.split(r"^## ", text, flags=re.MULTILINE)[1:]:
        title, _, rest = chunk.partition("\n")
        found = re.search(r"^````bash\n(.*?)\n^````\n", rest, flags=re.MULTILINE | re.DOTALL)
        if found:
            entries.append(Entry(title.strip(), found[1], rest[found.end() :]))
    return entries


def render_entry(block: Block, body: str) -> str:
    """One transcript entry (four-backtick fences: blocks and output may hold three)."""
    return f"## {block.title}\n\n````bash\n{block.text}\n````\n\n{body.rstrip()}\n\n"
