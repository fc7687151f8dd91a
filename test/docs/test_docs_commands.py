"""The guide and the README cannot silently rot: every `bikeshare ...` command they show exists
(its `--help` succeeds) and every function named in a `dagger call ...` line is registered in the
Dagger module (offline introspection, no engine)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from support import run_cli
from support.dagger_plans import dagger_functions, registered

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "docs" / "guide.md"]
#: Core Dagger API called on what a module function returns (Directory, Container, Service...).
CORE_API = {"export", "terminal", "up", "file", "contents", "stdout", "entries", "sync"}


def code(path: Path) -> list[str]:
    """The lines of every fenced block and inline code span."""
    text = path.read_text(encoding="utf-8")
    fenced = re.findall(r"^(`{3,})[^\n]*\n(.*?)^\1", text, flags=re.MULTILINE | re.DOTALL)
    prose = re.sub(r"^(`{3,})[^\n]*\n.*?^\1", "", text, flags=re.MULTILINE | re.DOTALL)
    lines = [line for _, block in fenced for line in block.splitlines()]
    return lines + re.findall(r"`([^`\n]+)`", prose)


def bikeshare_commands(path: Path) -> set[str]:
    return {
        m for line in code(path) for m in re.findall(r"(?:^|[\s$(])bikeshare ([a-z][a-z-]*)", line)
    }


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_every_bikeshare_command_shown_exists(path: Path) -> None:
    commands = bikeshare_commands(path)
    assert {"deploy", "rollback", "status"} <= commands, "the docs show the release commands"
    for command in sorted(commands):
        shown = run_cli(command, "--help", check=False)
        assert shown.returncode == 0, f"{path.name} shows `bikeshare {command}`: {shown.stderr}"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_every_dagger_call_names_registered_functions(path: Path) -> None:
    lines = [line for line in code(path) if re.search(r"dagger call \S", line)]
    assert lines, f"{path.name} shows no dagger call"
    for line in lines:
        names = dagger_functions(line)
        assert names, f"{path.name}: no function in {line!r}"
        assert names[0] in registered(), f"{path.name}: {names[0]} is not a module function"
        unknown = [n for n in names if n not in registered() | CORE_API]
        assert not unknown, f"{path.name}: {line!r} names {unknown} (write flags as --name=value)"


def test_the_checker_catches_a_renamed_function() -> None:
    assert dagger_functions("dagger call --git-sha=abc deploy-staging --x=1") == ["deploy-staging"]
    assert "deploy-staging" not in registered()
    assert bikeshare_commands(ROOT / "README.md") >= {"train", "probe"}


def test_the_guide_is_linked_from_the_top_of_the_readme() -> None:
    top = (ROOT / "README.md").read_text(encoding="utf-8").split("## ", 1)[0]
    assert "docs/guide.md" in top
