"""What a Dagger plan's containers hold, path by path, and what each command in them needs.

The offline engine answers leaf queries without running anything, so on its own it would answer
`file("/anything").contents()` too. This model replays a container plan step by step: the image
provides some directories (checked against the real images with Docker), `withDirectory` and
friends add paths, and each `withExec` is checked against the program it runs: a `bikeshare`
command line must pass `bikeshare`'s own argparse parser, its input paths must exist, and the
directory of every output path must exist (the command creates the file, not its directory).
Reading a path nobody created is a problem, as it is for the engine.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import os
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagger.client._core import Field
from dagger.client._guards import is_id_type

from bikeshare.cli import build_parser
from bikeshare.deploy.cli import input_file

#: Directories the Dockerfile's `tools` target provides (test/pipeline/test_check_commands.py
#: checks each in the image built with Docker): / and the usual FHS ones, /build (the uv stage's
#: WORKDIR), the two virtualenvs and /workspace (the tools stage's WORKDIR).
TOOLS_IMAGE_DIRS = ("/tmp", "/root", "/run", "/build", "/opt/venv", "/opt/uv", "/workspace")
#: The `serving` target (test/serving/test_image.py checks each): its virtualenv, and no /opt/ml
#: (the service mounts the model there).
SERVING_IMAGE_DIRS = ("/tmp", "/run", "/opt/venv")
#: Images pulled by address (actionlint, Terraform): nothing beyond / is assumed.
PULLED_IMAGE_DIRS: tuple[str, ...] = ()

#: `bikeshare` options (subcommand, argparse dest) that name what the command writes: the
#: directory must exist before it runs. Every Path-typed option is in this table or INPUTS
#: (test/pipeline/test_contracts.py keeps it complete).
OUTPUT_FILES = {
    ("ecr-login", "password_file"),
    ("deploy", "report"),
    ("promote", "report"),
    ("rollback", "report"),
    ("package", "output"),
}
OUTPUT_DIRS = {("train", "output"), ("fetch-model", "output")}
#: Options that name what the command reads: the path must exist.
INPUT_FILES = {
    ("upload-model", "file"),
    ("probe", "model_archive"),
    ("probe", "payload"),
    ("deploy", "payload"),
    ("promote", "payload"),
    ("smoke", "payload"),
    ("runtime-versions", "lock"),
    ("train", "data"),
}
INPUT_DIRS = {("package", "model_dir"), ("serve", "model_dir")}


@dataclass
class Filesystem:
    """The paths a container has at one step of its plan."""

    dirs: set[str] = field(default_factory=lambda: {"/"})
    files: dict[str, str | None] = field(default_factory=dict)  # path -> contents, if known
    opaque: set[str] = field(default_factory=set)  # directories whose contents are not known
    workdir: str = "/"

    def resolve(self, path: str) -> str:
        return posixpath.normpath(posixpath.join(self.workdir, path))

    def add_dir(self, path: str) -> None:
        path = self.resolve(path)
        while path not in self.dirs:
            self.dirs.add(path)
            path = posixpath.dirname(path)

    def add_file(self, path: str, contents: str | None = None) -> None:
        path = self.resolve(path)
        self.add_dir(posixpath.dirname(path))
        self.files[path] = contents

    def _in_opaque(self, path: str) -> bool:
        return any(path.startswith(root.rstrip("/") + "/") for root in self.opaque)

    def has_dir(self, path: str) -> bool:
        path = self.resolve(path)
        return path in self.dirs or self._in_opaque(path)

    def has_file(self, path: str) -> bool:
        path = self.resolve(path)
        return path in self.files or self._in_opaque(path)

    def mount(self, path: str, directory: Any) -> None:
        """Put a Dagger Directory at `path`: its real files when the host is its origin."""
        path = self.resolve(path)
        self.add_dir(path)
        listing = host_listing(directory)
        if listing is None:
            self.opaque.add(path)
            return
        for relative, is_dir in listing:
            target = posixpath.join(path, relative)
            if is_dir:
                self.add_dir(target)
            else:
                self.add_file(target)


def host_listing(directory: Any) -> list[tuple[str, bool]] | None:
    """(relative path, is a directory) for a Directory read from the host or made empty; None
    when its contents come out of another container (not known offline)."""
    plan: list[Field] = list(directory._ctx.selections)
    names = [f.name for f in plan]
    if names == ["directory"]:  # dag.directory(): empty
        return []
    if names[:2] != ["host", "directory"] or any(n != "directory" for n in names[2:]):
        return None
    root = Path(plan[1].args["path"])
    for step in plan[2:]:
        root = root / step.args["path"]
    return list(_listing(str(root)))


#: What the module's source leaves out (SOURCE_IGNORE) and what no container step reads.
_NOT_IN_SOURCE = {".git", ".venv", "sdk", "__pycache__", ".pytest_cache", ".ruff_cache"}


@functools.cache
def _listing(root: str) -> tuple[tuple[str, bool], ...]:
    found = []
    for here, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in _NOT_IN_SOURCE]
        relative = os.path.relpath(here, root)
        found += [(os.path.normpath(os.path.join(relative, d)), True) for d in dirs]
        found += [(os.path.normpath(os.path.join(relative, f)), False) for f in files]
    return tuple(found)


def image_dirs(field_: Field) -> tuple[str, ...]:
    if field_.name == "dockerBuild":
        return TOOLS_IMAGE_DIRS if field_.args.get("target") == "tools" else SERVING_IMAGE_DIRS
    return PULLED_IMAGE_DIRS


def replay(plan: list[Field]) -> tuple[Filesystem, list[str]]:
    """Replay a plan's container steps; the filesystem at its end and every problem met."""
    fs, problems = Filesystem(), []
    for step in plan:
        args = step.args
        if step.name in ("dockerBuild", "from"):
            fs = Filesystem()
            for directory in image_dirs(step):
                fs.add_dir(directory)
        elif step.type_name != "Container":
            continue
        elif step.name in ("withDirectory", "withMountedDirectory"):
            fs.mount(args["path"], args.get("directory", args.get("source")))
        elif step.name in ("withMountedCache", "withMountedTemp", "withNewDirectory"):
            fs.add_dir(args["path"])
            fs.opaque.add(fs.resolve(args["path"]))
        elif step.name == "withNewFile":
            fs.add_file(args["path"], args.get("contents"))
        elif step.name in ("withFile", "withMountedFile", "withMountedSecret"):
            fs.add_file(args["path"])
        elif step.name == "withWorkdir":  # created when a process starts there (createCWD)
            fs.workdir = fs.resolve(args["path"])
        elif step.name == "withExec":
            fs.add_dir(fs.workdir)
            problems += run_command(fs, list(args["args"]))
        elif step.name == "asService":
            fs.add_dir(fs.workdir)
        elif step.name == "file" and not fs.has_file(args["path"]):
            problems.append(f"reads {fs.resolve(args['path'])}, which nothing created")
        elif step.name == "directory" and not fs.has_dir(args["path"]):
            problems.append(f"reads directory {fs.resolve(args['path'])}, which nothing created")
    return fs, problems


def run_command(fs: Filesystem, argv: list[str]) -> list[str]:
    """Check one command against the container; record what it writes."""
    program = argv[0] if argv else ""
    if program == "bikeshare":
        return run_bikeshare(fs, argv[1:])
    if program == "mkdir":
        for path in (a for a in argv[1:] if not a.startswith("-")):
            fs.add_dir(path)
        return []
    if program == "tar":
        return tar(fs, argv[1:])
    if program == "actionlint":
        return actionlint(fs, [a for a in argv[1:] if not a.startswith("-")])
    if program == "pytest":
        outputs = [a.split("=", 1)[1] for a in argv if a.startswith("--junitxml=")]
        outputs += [a.removeprefix("--cov-report=xml:") for a in argv
                    if a.startswith("--cov-report=xml:")]  # fmt: skip
        return write_files(fs, "pytest", outputs)
    if argv[:2] == ["uv", "export"] and "--output-file" in argv:
        return write_files(fs, "uv export", [argv[argv.index("--output-file") + 1]])
    return []


def tar(fs: Filesystem, args: list[str]) -> list[str]:
    problems = []
    if "-C" in args and not fs.has_dir(args[args.index("-C") + 1]):
        problems.append(f"tar -C {args[args.index('-C') + 1]}: no such directory")
    archive = next((a for a in args if a.endswith((".tar.gz", ".tgz"))), None)
    if archive and not fs.has_file(archive):
        problems.append(f"tar reads {archive}, which nothing created")
    return problems


def actionlint(fs: Filesystem, files: list[str]) -> list[str]:
    """Named files must exist; without any, actionlint looks for a project from its working
    directory up: a directory holding both .git and .github/workflows (its project.go)."""
    if files:
        return [f"actionlint reads {fs.resolve(f)}: not there" for f in files if not fs.has_file(f)]
    here = fs.workdir
    while True:
        if fs.has_dir(posixpath.join(here, ".github/workflows")) and (
            fs.has_dir(posixpath.join(here, ".git")) or fs.has_file(posixpath.join(here, ".git"))
        ):
            return []
        if here == "/":
            return [f"actionlint in {fs.workdir}: no project was found in any parent directories"]
        here = posixpath.dirname(here)


def write_files(fs: Filesystem, who: str, paths: list[str]) -> list[str]:
    problems = []
    for path in paths:
        if not fs.has_dir(posixpath.dirname(fs.resolve(path))):
            problems.append(f"{who} writes {fs.resolve(path)}, but its directory does not exist")
        else:
            fs.add_file(path)
    return problems


@functools.cache
def bikeshare_parser() -> argparse.ArgumentParser:
    """`bikeshare`'s parser, built once: parsing does not change it, and building it was two
    fifths of the contract tests' time.

    Its `input_file` options check the HOST's filesystem while parsing; a command line here names
    paths in a container, which `run_bikeshare` checks against the plan's filesystem instead, so
    those options parse to a plain Path (every other type, the empty-value rule included, stays).
    """
    parser = build_parser()
    for _, option in _subcommand_options(parser):
        if option_type(option) is input_file:
            option.type = Path
    return parser


def option_type(option: argparse.Action) -> object:
    """The type an option converts with, under the CLI's wrapper that refuses empty values."""
    convert = option.type
    while hasattr(convert, "__wrapped__"):
        convert = convert.__wrapped__
    return convert


def _subcommand_options(
    parser: argparse.ArgumentParser,
) -> Iterator[tuple[str, argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                for option in sub._actions:
                    yield name, option


def parse_bikeshare(argv: list[str]) -> argparse.Namespace:
    """`bikeshare`'s real parser; a refused command line raises ValueError with its message."""
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            return bikeshare_parser().parse_args(argv)
    except SystemExit as exit_:
        message = errors.getvalue().strip().splitlines()[-1:] or [f"exit {exit_.code}"]
        raise ValueError(f"bikeshare refuses {argv}: {message[0]}") from None


def run_bikeshare(fs: Filesystem, argv: list[str]) -> list[str]:
    try:
        parsed = parse_bikeshare(argv)
    except ValueError as error:
        return [str(error)]
    problems = []
    for dest, value in sorted(vars(parsed).items()):
        if not isinstance(value, Path):
            continue
        key, path = (parsed.command, dest), str(value)
        if key in INPUT_FILES and not fs.has_file(path):
            problems.append(f"bikeshare {parsed.command} reads {fs.resolve(path)}: not there")
        elif key in INPUT_DIRS and not fs.has_dir(path):
            problems.append(f"bikeshare {parsed.command} reads {fs.resolve(path)}/: not there")
        elif key in OUTPUT_FILES:
            problems += write_files(fs, f"bikeshare {parsed.command}", [path])
        elif key in OUTPUT_DIRS:
            if fs.has_dir(posixpath.dirname(fs.resolve(path))):
                fs.add_dir(path)
            else:
                problems.append(f"bikeshare {parsed.command} creates {path}: no parent directory")
    return problems


def path_options(parser: argparse.ArgumentParser | None = None) -> Iterator[tuple[str, str]]:
    """(subcommand, dest) of every Path-typed option of `bikeshare`."""
    for name, option in _subcommand_options(parser or bikeshare_parser()):
        if option_type(option) in (Path, input_file):
            yield name, option.dest


def plan_problems(plan: list[Field]) -> list[str]:
    """Problems of a plan and of every plan it takes as an argument (a File from a container)."""
    problems = replay(plan)[1]
    for field_ in plan:
        for value in field_.args.values():
            for item in value if isinstance(value, list) else [value]:
                if is_id_type(item):
                    problems += plan_problems(list(item._ctx.selections))
    return problems
