"""Each `test-AREA` check's inputs cover what its tests read, proved from the module's own table
(bikeshare_ci.checks.AREAS), offline and without an engine.

Dagger replays a check from its cache when its inputs did not change, so an input left out of an
area would let a change to it pass unseen. For every area this test derives, statically:

(a) imports: every repository module its test files import, transitively (src/bikeshare,
    test/support, test/standin, ci/src, sibling helpers), and every conftest.py above them;
(b) paths: repository paths named by string literals in those files, alone or joined with `/`
    (`ROOT / "docs" / "guide.md"`, "infra/terraform", "Dockerfile", "uv.lock");
(c) subprocesses: a path literal naming a directory with __main__.py, or a .py file (the tests
    run `python test/standin`), is an entry point whose imports are followed too; the checks'
    own command lines, which test/pipeline runs for real, need the lint and security inputs.

and requires each to be inside the area's inputs, the way Dagger's include patterns match.

What it cannot see: paths built at run time from data (a path read out of the guide, a glob's
result, an f-string). Those are guarded differently: an area that reads paths the docs name gets
the whole repository (`everything`), a glob is over a directory literal this test requires, and
a path missing at run time fails its test loudly (FileNotFoundError), in the check itself, never
as a silent pass: the check runs on exactly its inputs, so it cannot read a file outside them.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from bikeshare_ci import checks
from support.dagger_plans import ROOT

#: Where a module name is looked up, as in the tools container: pytest's pythonpath (test/,
#: ci/src) and the installed project (src/).
MODULE_ROOTS = ("test", "ci/src", "src")
#: What the repository holds at its top level: a string literal starting with one of these and
#: naming something that exists is a repository path.
TOP_LEVEL = frozenset(p.name for p in ROOT.iterdir()) - {".git", ".venv"}


# ---- matching: how Dagger's include patterns select paths ------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    parts = []
    for token in re.split(r"(\*\*/|\*\*|\*|\?)", pattern.strip("/")):
        parts.append(
            {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(token, re.escape(token))
        )
    return re.compile("".join(parts) + "(?:/.*)?")  # a matched directory brings its contents


def covered(patterns: Iterable[str], path: str) -> bool:
    """Whether `Directory.filter(include=patterns)` keeps the repository path `path`."""
    return any(_pattern_regex(p).fullmatch(path) for p in patterns)


# ---- what a Python file imports and names ----------------------------------------------------


def module_file(name: str, extra_roots: tuple[str, ...] = ()) -> str | None:
    """The repository file a module name imports, if it is one of ours."""
    parts = name.split(".")
    for root in (*extra_roots, *MODULE_ROOTS):
        base = ROOT / root / Path(*parts)
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate.relative_to(ROOT).as_posix()
    return None


def _package_of(path: str) -> str:
    """The dotted package a file is in (for relative imports), from its module root."""
    for root in MODULE_ROOTS:
        if path.startswith(root + "/"):
            parts = Path(path[len(root) + 1 :]).with_suffix("").parts
            return ".".join(parts[:-1])
    return ""


def _imported_names(tree: ast.Module, path: str) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                package = _package_of(path).split(".")
                package = package[: len(package) - node.level + 1]
                module = ".".join(p for p in [*package, module] if p)
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)  # submodules


def imports(path: str) -> set[str]:
    """Repository files `path` imports directly, with every package __init__ on the way.

    The file's own directory counts as a root too: a test may put it on sys.path."""
    tree = _tree(path)
    here = (Path(path).parent.as_posix(),)
    found = set()
    for name in _imported_names(tree, path):
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):
            file = module_file(".".join(parts[:depth]), here)
            if file is not None:
                found.add(file)
    return found


@functools.cache
def _tree(path: str) -> ast.Module:
    return ast.parse((ROOT / path).read_text(encoding="utf-8"), filename=path)


def _joined(node: ast.BinOp) -> str | None:
    """`ROOT / "docs" / "guide.md"` -> "docs/guide.md": the string parts right of the base."""
    parts: list[str] = []
    while isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        if not (isinstance(node.right, ast.Constant) and isinstance(node.right.value, str)):
            return None
        parts.insert(0, node.right.value)
        node = node.left  # type: ignore[assignment]
    return "/".join(parts) if parts else None


#: Assignments that declare inputs (the table itself) rather than read them.
DECLARATIONS = re.compile(r"^(AREAS|PYTEST_BASE|[A-Z_]+_INPUTS|[A-Z_]+_TESTS)$")


def _declarations(tree: ast.Module) -> set[int]:
    """ids of the nodes inside input declarations: their strings name inputs, not reads."""
    skipped: set[int] = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(isinstance(t, ast.Name) and DECLARATIONS.match(t.id) for t in targets):
            skipped |= {id(inner) for inner in ast.walk(node)}
    return skipped


def _literals(tree: ast.Module) -> Iterator[tuple[str, bool]]:
    """(text, joined) for each string literal and each `BASE / "a" / "b"` expression."""
    skipped = _declarations(tree)
    # `a / "b" / "c"` is one path: its inner `a / "b"` is not another one.
    skipped |= {
        id(node.left)
        for node in ast.walk(tree)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)
    }
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value, False
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            joined = _joined(node)
            if joined:
                yield joined, True


def repository_path(text: str, relative_to: str, joined: bool = False) -> str | None:
    """The repository path a string literal names, if it names one that exists: from the
    repository's root, or from the file's own directory (`Path(__file__).parent / NAME`).

    A bare word ("test", "src") is a path only when joined to a base (`ROOT / "src"`) or when it
    names a file: as a plain string it is far more often a name (a check called "test")."""
    text = text.strip()
    if not text or "\n" in text or len(text) > 200 or text.startswith(("/", "-")):
        return None
    clean = text.removeprefix("./").rstrip("/")
    if clean in (".", "") or "*" in clean:
        return None
    # A joined path's base is not known (ROOT or a temporary directory): only ROOT is assumed.
    bases = (ROOT,) if joined else (ROOT, (ROOT / relative_to).parent)
    for base in bases:
        candidate = base / clean
        if not candidate.exists() or not candidate.resolve().is_relative_to(ROOT):
            continue
        relative = candidate.relative_to(ROOT).as_posix()
        if base == ROOT and relative.split("/", 1)[0] not in TOP_LEVEL:
            continue
        if joined or "/" in clean or candidate.is_file():
            return relative
    return None


def named_paths(path: str) -> set[str]:
    """Repository paths named by the file's string literals."""
    found = {repository_path(text, path, joined) for text, joined in _literals(_tree(path))}
    return {p for p in found if p is not None}


def entry_point(path: str) -> str | None:
    """The Python file a named path runs as a program: a .py file or a package's __main__."""
    if path.endswith(".py") and (ROOT / path).is_file():
        return path
    main = ROOT / path / "__main__.py"
    return main.relative_to(ROOT).as_posix() if main.is_file() else None


# ---- an area's needs -------------------------------------------------------------------------


@dataclasses.dataclass
class Needs:
    """What an area's tests read: files (with why) and the command lines of checks they run."""

    files: dict[str, str] = dataclasses.field(default_factory=dict)  # path -> who needs it

    def add(self, path: str, why: str) -> bool:
        if path in self.files:
            return False
        self.files[path] = why
        return True


def area_test_files(area: checks.Area) -> list[str]:
    """The Python files of an area's test paths (what pytest collects, and helpers beside)."""
    found = []
    for entry in area.tests:
        target = ROOT / entry
        files = [target] if target.is_file() else sorted(target.rglob("*.py"))
        found += [f.relative_to(ROOT).as_posix() for f in files if "__pycache__" not in f.parts]
    return [path for path in found if path not in area.elsewhere]


def conftests(path: str) -> list[str]:
    """Every conftest.py pytest loads for a test file: at the root and each directory below."""
    parts = Path(path).parts
    found = []
    for depth in range(len(parts)):  # from the repository root's
        candidate = Path(*parts[:depth]) / "conftest.py"
        if (ROOT / candidate).is_file():
            found.append(candidate.as_posix())
    return found


def needs(area: checks.Area) -> Needs:
    """Everything the area's tests import or name, transitively."""
    found = Needs()
    queue = []
    for test in area_test_files(area):
        for start in (test, *conftests(test)):
            if found.add(start, "a test file or its conftest.py"):
                queue.append(start)
    while queue:
        current = queue.pop()
        for module in sorted(imports(current)):
            if found.add(module, f"imported by {current}"):
                queue.append(module)
        for named in sorted(named_paths(current)):
            if found.add(named, f"named in {current}"):
                program = entry_point(named)
                if program is not None and found.add(program, f"run by {current}"):
                    queue.append(program)
                if named.endswith(".py"):
                    queue.append(named)
    for path in list(found.files):
        for command, patterns in runs_check_commands(path).items():
            for pattern in patterns:
                found.add(f"pattern:{pattern}", f"{path} runs checks.{command} for real")
    return found


#: The checks' command lists a test can run for real, and what those commands read.
CHECK_COMMANDS = {
    "LINT": checks.LINT_INPUTS,
    "SECURITY": checks.SECURITY_INPUTS,
    "CHECKOV": ("infra/terraform", *checks.CHECKOV_CONFIGURATION),
}


def runs_check_commands(path: str) -> dict[str, tuple[str, ...]]:
    """The checks' command lists a file uses (`checks.LINT`, or `from bikeshare_ci.checks
    import CHECKOV`): it runs them on the source."""
    if not (path.startswith("test/") and path.endswith(".py")):  # the module only names them
        return {}
    used = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "checks":
                used.add(node.attr)
        elif isinstance(node, ast.ImportFrom) and node.module == "bikeshare_ci.checks":
            used.update(alias.name for alias in node.names)
    return {name: patterns for name, patterns in CHECK_COMMANDS.items() if name in used}


def problems(area: checks.Area, patterns: tuple[str, ...] | None = None) -> list[str]:
    """What the area needs that its inputs leave out, one line each."""
    if area.everything and patterns is None:
        return []
    inputs = area.inputs() if patterns is None else patterns
    missing = []
    for path, why in sorted(needs(area).files.items()):
        if path.startswith("pattern:"):
            pattern = path.removeprefix("pattern:")
            literal = not any(c in pattern for c in "*?[")
            if pattern not in inputs and not (literal and covered(inputs, pattern)):
                missing.append(f"{pattern} ({why}) is not an input")
        elif not covered(inputs, path):
            missing.append(f"{path} ({why}) is not an input")
        elif path in area.elsewhere:  # excluded from the area's container
            missing.append(f"{path} ({why}) runs in another area, so it is not mounted")
    return missing


def dead_reads(area: checks.Area) -> list[str]:
    """Entries of `reads` that nothing the area needs falls under: each one is a cache miss for
    changes the area cannot see, and a sign the analysis above does not look where it should."""
    needed = needs(area).files
    return [
        read
        for read in area.reads
        if not any(covered([read], p) or p == f"pattern:{read}" for p in needed)
    ]


# ---- the tests -------------------------------------------------------------------------------

pytestmark = pytest.mark.tools_container  # quick and engine-free
NARROW = sorted(name for name, area in checks.AREAS.items() if not area.everything)


@pytest.mark.parametrize("name", sorted(checks.AREAS))
def test_the_inputs_of_each_area_cover_its_imports_and_named_paths(name: str) -> None:
    assert problems(checks.AREAS[name]) == []


@pytest.mark.parametrize("name", NARROW)
def test_every_input_an_area_declares_is_one_it_reads(name: str) -> None:
    """So each is a real dependency, and dropping any one of them fails the test above."""
    assert dead_reads(checks.AREAS[name]) == []


def test_every_test_file_is_in_exactly_one_area() -> None:
    collected = sorted(
        p.relative_to(ROOT).as_posix()
        for pattern in ("test_*.py", "*_test.py")  # pytest's default python_files
        for p in (ROOT / "test").rglob(pattern)
        if "__pycache__" not in p.parts
    )
    owners = {
        path: [n for n, a in checks.AREAS.items() if path in area_test_files(a)]
        for path in collected
    }
    assert {path: names for path, names in owners.items() if len(names) != 1} == {}


def test_the_rehearsal_runs_in_the_release_areas_inputs() -> None:
    """`rehearse` gets the release area's inputs: pytest collects those test files for it."""
    assert tuple(checks.REHEARSAL[-len(checks.AREAS["release"].tests) :]) == (
        checks.AREAS["release"].tests
    )


REHEARSAL_MARK = re.compile(r"^(pytestmark = .*|\s*@)pytest\.mark\.rehearsal\b", re.MULTILINE)


def test_the_release_area_runs_every_rehearsal_test() -> None:
    """Each file marked `rehearsal` is among the release area's tests.

    That is why `ci` has no `rehearse` row: `test-release` runs them."""
    release = checks.AREAS["release"]
    marked = [
        path.relative_to(ROOT).as_posix()
        for pattern in ("test_*.py", "*_test.py")
        for path in sorted((ROOT / "test").rglob(pattern))
        if REHEARSAL_MARK.search(path.read_text())
    ]
    assert marked, "no test is marked rehearsal"
    assert set(marked) <= set(area_test_files(release))


# ---- each rule catches what it exists for (mutations of the real table) ----------------------


def without(area: checks.Area, dropped: str) -> tuple[str, ...]:
    inputs = area.inputs()
    assert dropped in inputs, f"{dropped} is not an input to drop"
    return tuple(p for p in inputs if p != dropped)


def test_dropping_a_named_path_is_caught() -> None:
    """(b): support/terraform_iam.py reads `parents[2] / "infra" / "terraform"`."""
    found = problems(checks.AREAS["infra"], without(checks.AREAS["infra"], "infra/terraform"))
    assert "infra/terraform (named in test/support/terraform_iam.py) is not an input" in found


def test_dropping_an_imported_package_is_caught() -> None:
    """(a): the workflows tests import the module (bikeshare_ci.release)."""
    found = problems(checks.AREAS["workflows"], without(checks.AREAS["workflows"], "ci/src"))
    assert any(line.startswith("ci/src/bikeshare_ci/release.py (imported by ") for line in found)


def test_dropping_a_conftest_or_the_support_package_is_caught() -> None:
    model = checks.AREAS["model"]
    found = problems(model, without(model, "test/conftest.py"))
    assert "test/conftest.py (a test file or its conftest.py) is not an input" in found
    found = problems(model, without(model, "test/support"))
    assert any(line.startswith("test/support/__init__.py (imported by ") for line in found)


def test_dropping_what_a_subprocess_runs_is_caught() -> None:
    """(c): test_standin_process runs `python test/standin`, whose __main__ imports the rest."""
    deploy = checks.AREAS["deploy"]
    found = problems(deploy, without(deploy, "test/standin"))
    assert (
        "test/standin/__main__.py (run by test/deploy/test_standin_process.py) is not an input"
        in (found)
    )


def test_excluding_a_file_the_area_reads_is_caught() -> None:
    """An area's `elsewhere` files are excluded from its container: none may be one it reads."""
    deploy = checks.AREAS["deploy"]
    wrong = dataclasses.replace(deploy, elsewhere=(*deploy.elsewhere, "test/deploy/conftest.py"))
    assert (
        "test/deploy/conftest.py (a test file or its conftest.py) runs in another area, "
        "so it is not mounted" in problems(wrong)
    )


def test_dropping_checkovs_configuration_is_caught() -> None:
    """test_terraform runs checkov (`from bikeshare_ci.checks import CHECKOV`) from the root,
    where checkov looks for .checkov.yaml: a file added there must re-run the infra area."""
    infra = checks.AREAS["infra"]
    found = problems(infra, without(infra, ".checkov.yaml"))
    assert (
        ".checkov.yaml (test/infra/test_terraform.py runs checks.CHECKOV for real) is not an input"
        in found
    )


def test_pytests_configuration_files_are_in_every_area() -> None:
    """pytest takes the first of these it finds over pyproject.toml: adding one (or a root
    conftest.py) changes every area's run, so none may replay from the cache."""
    for name, area in checks.AREAS.items():
        if not area.everything:
            assert set(checks.PYTEST_CONFIGURATION) <= set(area.inputs()), name
    for found in (
        "pytest.ini",
        "test/tox.ini",
        "test/deploy/pytest.ini",
        "setup.cfg",
        "conftest.py",
    ):
        assert covered(checks.PYTEST_CONFIGURATION, found), found


def test_dropping_what_the_check_commands_read_is_caught() -> None:
    """test_check_commands runs the lint commands on the pipeline area's source."""
    pipeline = checks.AREAS["pipeline"]
    found = problems(pipeline, without(pipeline, "**/*.pyi"))
    assert (
        "**/*.pyi (test/pipeline/test_check_commands.py runs checks.LINT for real) is not an input"
        in (found)
    )


def test_an_unneeded_input_is_caught() -> None:
    area = dataclasses.replace(checks.AREAS["cli"], reads=("infra/terraform", "benchmarks"))
    assert dead_reads(area) == ["benchmarks"]


@pytest.mark.parametrize(
    ("patterns", "path", "kept"),
    [
        (["src"], "src/bikeshare/cli.py", True),
        (["src"], "src", True),
        (["src"], "srcx/a.py", False),
        (["test/conftest.py"], "test/conftest.py", True),
        (["test/conftest.py"], "test/model/conftest.py", False),
        (["**/*.py"], "setup.py", True),
        (["**/*.py"], "test/model/test_data.py", True),
        (["**/*.py"], "docs/guide.md", False),
        (["*.py"], "test/x.py", False),
    ],
)
def test_patterns_match_as_dagger_includes_them(patterns: list[str], path: str, kept: bool) -> None:
    assert covered(patterns, path) is kept


@pytest.mark.parametrize(
    ("text", "joined", "found"),
    [
        ("docs/guide.md", True, "docs/guide.md"),  # ROOT / "docs" / "guide.md"
        ("infra/terraform", False, "infra/terraform"),
        ("Dockerfile", False, "Dockerfile"),
        ("src", True, "src"),  # ROOT / "src"
        ("test", False, None),  # a check named "test", not a path
        ("/docs", False, None),  # a URL path of the app
        ("no/such/file", False, None),
    ],
)
def test_literals_that_name_repository_paths(text: str, joined: bool, found: str | None) -> None:
    assert repository_path(text, "test/pipeline/test_area_inputs.py", joined) == found
