"""Every external program the suite, and the code it runs, starts is in the tools image (the
Dockerfile's `tools` target, where the `test` check runs the whole suite), or the code that
starts it skips with a reason when it is absent (issue 20, item 16: `git` was missing and a
release test failed with FileNotFoundError inside the container).

Programs are found statically: the first element of a literal argv given to subprocess
(`run`, `Popen`, `check_output`, `check_call`, `call`), resolving `[*git, ...]` to the literal
`git = ["git", ...]` of the same file, and every `shutil.which("NAME")`. A guard is a call of
`shutil.which("NAME")` in the file, or of a function that (transitively) calls it, such as
`support.docker_or_skip`.
"""

from __future__ import annotations

import ast
import re
import sys
from collections import defaultdict
from pathlib import Path

from support.dagger_plans import ROOT

SCANNED = ("src", "test")
SUBPROCESS_CALLS = {"run", "Popen", "check_output", "check_call", "call"}
#: The programs each Debian package the tools stage installs provides (that the suite starts).
#: A package missing here fails the test: say what it is for.
PACKAGE_PROGRAMS = {
    "git": {"git"},
    "docker-registry": {"docker-registry"},
    "apache2-utils": {"htpasswd"},
}
#: What the base image (python:3.11-slim, Debian) has on PATH that the suite uses.
BASE_IMAGE_PROGRAMS = {"bash", "sh", "tar", "gzip", "python3", "python", "env"}


def tools_stage(dockerfile: str) -> str:
    """The text of the Dockerfile's `tools` stage."""
    stage = re.search(r"^FROM \S+ AS tools$(.*?)(?=^FROM |\Z)", dockerfile, re.M | re.S)
    assert stage, "the Dockerfile has no `tools` stage"
    return stage.group(1)


def apt_packages(stage: str) -> set[str]:
    """The Debian packages the stage's `apt-get install` lines install."""
    packages: set[str] = set()
    for command in re.findall(r"apt-get install(.*?)(?:>|;|$)", stage.replace("\\\n", " "), re.M):
        packages |= {word for word in command.split() if not word.startswith("-")}
    return packages


def provided(dockerfile: str) -> set[str]:
    """Programs on the tools image's PATH: apt packages, the locked venv's console scripts
    (the image installs the same lock with every extra), uv, and the base image's."""
    stage = tools_stage(dockerfile)
    unknown = apt_packages(stage) - PACKAGE_PROGRAMS.keys()
    assert not unknown, f"say in PACKAGE_PROGRAMS which programs {sorted(unknown)} provide"
    programs = set(BASE_IMAGE_PROGRAMS)
    for package in apt_packages(stage):
        programs |= PACKAGE_PROGRAMS[package]
    programs |= {path.name for path in Path(sys.executable).parent.iterdir()}
    if "/opt/uv/bin" in stage:
        programs.add("uv")
    return programs


class _Scan(ast.NodeVisitor):
    """One file: the programs it starts, the `which` names it checks, the functions it calls."""

    def __init__(self, tree: ast.Module) -> None:
        self.started: set[str] = set()
        self.which: set[str] = set()
        self.called: set[str] = set()
        self.guards_in: dict[str, set[str]] = defaultdict(set)  # function -> which() names
        self.calls_in: dict[str, set[str]] = defaultdict(set)  # function -> called names
        self.argv_names = {
            target.id: node.value.elts[0].value
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.List | ast.Tuple)
            and node.value.elts and isinstance(node.value.elts[0], ast.Constant)
            and isinstance(node.value.elts[0].value, str)
            for target in node.targets if isinstance(target, ast.Name)
        }  # fmt: skip
        for function in ast.walk(tree):
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                for node in ast.walk(function):
                    if isinstance(node, ast.Call):
                        name = _called_name(node)
                        self.calls_in[function.name].add(name)
                        if name == "which" and _literal(node.args[:1]):
                            self.guards_in[function.name].add(_literal(node.args[:1]))
        self.visit(tree)

    def visit_Call(self, node: ast.Call) -> None:
        name = _called_name(node)
        self.called.add(name)
        if name == "which" and _literal(node.args[:1]):
            self.which.add(_literal(node.args[:1]))
        if (
            name in SUBPROCESS_CALLS
            and node.args
            and isinstance(node.args[0], ast.List | ast.Tuple)
        ):
            program = self._program(node.args[0].elts)
            if program:
                self.started.add(program)
        self.generic_visit(node)

    def _program(self, argv: list[ast.expr]) -> str | None:
        if not argv:
            return None
        first = argv[0]
        if isinstance(first, ast.Starred) and isinstance(first.value, ast.Name):
            return self.argv_names.get(first.value.id)
        return _literal([first])


def _called_name(node: ast.Call) -> str:
    function = node.func
    if isinstance(function, ast.Attribute):
        return function.attr
    return function.id if isinstance(function, ast.Name) else ""


def _literal(nodes: list[ast.expr]) -> str | None:
    if nodes and isinstance(nodes[0], ast.Constant) and isinstance(nodes[0].value, str):
        return nodes[0].value
    return None


def scans(root: Path = ROOT) -> dict[str, _Scan]:
    """Every Python file of src/ and test/, scanned, by path relative to the repository."""
    return {
        str(path.relative_to(root)): _Scan(ast.parse(path.read_text(), str(path)))
        for top in SCANNED
        for path in sorted((root / top).rglob("*.py"))
    }


def guard_functions(found: dict[str, _Scan]) -> dict[str, set[str]]:
    """program -> names of functions that check for it with `which`, directly or through
    another such function (docker_or_skip -> docker_available -> which("docker"))."""
    guards: dict[str, set[str]] = defaultdict(set)
    calls: dict[str, set[str]] = defaultdict(set)
    for scan in found.values():
        for function, names in scan.guards_in.items():
            for program in names:
                guards[program].add(function)
        for function, called in scan.calls_in.items():
            calls[function] |= called
    changed = True
    while changed:
        changed = False
        for names in guards.values():
            more = {f for f, called in calls.items() if called & names} - names
            if more:
                names |= more
                changed = True
    return guards


def unprovided(dockerfile: str, found: dict[str, _Scan]) -> dict[str, list[str]]:
    """program -> files that start it although the tools image lacks it and nothing skips."""
    have = provided(dockerfile)
    guards = guard_functions(found)
    missing: dict[str, list[str]] = defaultdict(list)
    for path, scan in found.items():
        for program in sorted((scan.started | scan.which) - have):
            if program in scan.which or scan.called & guards.get(program, set()):
                continue  # the file checks for it (and skips, or falls back) when absent
            missing[program].append(path)
    return dict(missing)


def test_every_program_the_suite_starts_is_in_the_tools_image_or_skipped() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert unprovided(dockerfile, scans()) == {}


def test_the_rule_catches_a_program_the_tools_image_lacks() -> None:
    """Without git in the tools stage, the release test that makes a checkout is caught."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    stage = tools_stage(dockerfile)
    assert "git" in apt_packages(stage)
    without_git = dockerfile.replace(stage, re.sub(r"(?<=\s)git(?=\s)", "", stage))
    missing = unprovided(without_git, scans())
    assert "test/deploy/test_cli.py" in missing["git"]
    assert "src/bikeshare/deploy/cli.py" in missing["git"]


def test_the_scan_sees_argv_literals_starred_names_and_which() -> None:
    scan = _Scan(ast.parse(
        "import shutil, subprocess\n"
        "git = ['git', '-C', '.']\n"
        "subprocess.run([*git, 'init'])\n"
        "subprocess.check_output(('tar', 'tzf', 'x'))\n"
        "shutil.which('wrk')\n"
    ))  # fmt: skip
    assert scan.started == {"git", "tar"}
    assert scan.which == {"wrk"}
