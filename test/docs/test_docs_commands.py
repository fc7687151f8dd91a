"""The guide and the README cannot silently rot: every `bikeshare ...` command they show exists
(its `--help` succeeds) and every function named in a `dagger call ...` line is registered in the
Dagger module (offline introspection, no engine)."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

from support import run_cli
from support.dagger_plans import dagger_functions, registered

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "docs" / "guide.md", ROOT / "docs" / "verified-on-engine.md"]
#: Core Dagger API called on what a module function returns (Directory, Container, Service...).
CORE_API = {"export", "terminal", "up", "file", "contents", "stdout", "entries", "sync"}


def code(path: Path) -> list[str]:
    """The lines of every fenced block and inline code span."""
    text = path.read_text(encoding="utf-8")
    fenced = FENCED.findall(text)
    prose = prose_of(text)
    lines = [line for _, block in fenced for line in block.splitlines()]
    return lines + re.findall(r"`([^`\n]+)`", prose)


def bikeshare_commands(path: Path) -> set[str]:
    return {
        m for line in code(path) for m in re.findall(r"(?:^|[\s$(])bikeshare ([a-z][a-z-]*)", line)
    }


def test_the_docs_show_the_release_commands() -> None:
    shown = set().union(*(bikeshare_commands(path) for path in DOCS))
    assert {"deploy", "promote", "rollback", "status", "upload-model"} <= shown


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_every_bikeshare_command_shown_exists(path: Path) -> None:
    commands = bikeshare_commands(path)
    for command in sorted(commands):
        shown = run_cli(command, "--help", check=False)
        assert shown.returncode == 0, f"{path.name} shows `bikeshare {command}`: {shown.stderr}"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_every_dagger_call_names_registered_functions(path: Path) -> None:
    lines = [line for line in code(path) if re.search(r"dagger call \S", line)]
    assert lines or path.name == "verified-on-engine.md", f"{path.name} shows no dagger call"
    for line in lines:
        names = dagger_functions(line)
        assert names, f"{path.name}: no function in {line!r}"
        assert names[0] in registered(), f"{path.name}: {names[0]} is not a module function"
        unknown = [n for n in names if n not in registered() | CORE_API]
        assert not unknown, f"{path.name}: {line!r} names {unknown} (write flags as --name=value)"


def test_the_checker_catches_a_renamed_function() -> None:
    assert dagger_functions("dagger call --git-sha=abc deploy-staging --x=1") == ["deploy-staging"]
    assert "deploy-staging" not in registered()
    assert bikeshare_commands(ROOT / "README.md") >= {"train", "package"}


def test_the_guide_is_linked_from_the_top_of_the_readme() -> None:
    top = (ROOT / "README.md").read_text(encoding="utf-8").split("## ", 1)[0]
    assert "docs/guide.md" in top


#: A fenced code block: its fence, then its body.
FENCED = re.compile(r"^(`{3,})[^\n]*\n(.*?)^\1", flags=re.MULTILINE | re.DOTALL)


def prose_of(text: str) -> str:
    """A Markdown text without its fenced code blocks."""
    return FENCED.sub("", text)


def bikeshare_invocations(path: Path) -> list[tuple[str, list[str]]]:
    """Each `bikeshare SUBCOMMAND --flag ...` shown, with its flags (continuations joined)."""
    text = path.read_text(encoding="utf-8")
    fenced = FENCED.findall(text)
    prose = prose_of(text)
    lines = [line for _, block in fenced for line in block.replace("\\\n", " ").splitlines()]
    found = []
    for line in lines + re.findall(r"`([^`\n]+)`", prose):
        for match in re.finditer(r"(?:^|[\s$(])bikeshare ([a-z][a-z-]*)(.*)", line):
            words = re.split(r"[|;)#&]", match[2].replace("\\|", " "), maxsplit=1)[0]
            flags = re.findall(r"(?:^|[\s\[(])(--[a-z][a-z-]*)", words)
            found.append((match[1], flags))
    return found


@functools.cache
def _help(command: str) -> str:
    return run_cli(command, "--help", check=False).stdout


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_every_flag_shown_is_one_the_command_takes(path: Path) -> None:
    """A renamed flag (`--role-arn`, `--oidc-role-arn`) left in the docs fails here."""
    unknown = sorted(
        {
            f"bikeshare {command} {flag}"
            for command, flags in bikeshare_invocations(path)
            for flag in flags
            if flag != "--help" and not re.search(rf"{flag}\b(?!-)", _help(command))
        }
    )
    assert not unknown, f"{path.name} shows flags the commands do not take: {unknown}"


def test_the_flag_checker_catches_a_renamed_flag(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("```bash\nuv run bikeshare deploy --endpoint-name E \\\n  --role-arn R\n```\n")
    assert bikeshare_invocations(doc) == [("deploy", ["--endpoint-name", "--role-arn"])]
    assert not re.search(r"--role-arn\b(?!-)", _help("deploy"))


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = prose_of(path.read_text(encoding="utf-8"))
    return {github_anchor(h) for h in re.findall(r"^#{1,6} (.+)$", text, flags=re.MULTILINE)}


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_every_link_into_the_docs_lands_on_a_heading(path: Path) -> None:
    text = prose_of(path.read_text(encoding="utf-8"))
    broken = []
    for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]+))?\)", text):
        if target.startswith(("http://", "https://")):
            continue
        linked = (path.parent / target).resolve() if target else path
        if not linked.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}#{anchor}")
    assert not broken, f"{path.name} links to missing files or headings: {broken}"


def test_the_anchor_rule_is_githubs() -> None:
    assert github_anchor("CD • Staging (`cd_staging.yml`)") == "cd--staging-cd_stagingyml"
    assert (
        github_anchor("Migration from the seed's workflows") == "migration-from-the-seeds-workflows"
    )
    assert github_anchor("Runbook: Roll back") == "runbook-roll-back"
