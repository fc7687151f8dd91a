"""The CLI contract: --help everywhere, 0 on success, one-line reason and non-zero on failure."""

import subprocess
import sys
from pathlib import Path

import pytest

from bikeshare.cli import build_parser
from support import run_cli


def _subcommands() -> list[str]:
    parser = build_parser()
    actions = [a for a in parser._actions if a.dest == "command"]
    return sorted(actions[0].choices)


def test_top_level_help_lists_every_subcommand() -> None:
    result = run_cli("--help")
    for name in _subcommands():
        assert name in result.stdout


@pytest.mark.parametrize("command", _subcommands())
def test_every_subcommand_has_help(command: str) -> None:
    result = run_cli(command, "--help")
    assert result.returncode == 0
    assert f"usage: bikeshare {command}" in result.stdout


def test_python_dash_m_runs_the_same_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bikeshare", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith("bikeshare ")


def test_train_then_package_then_tar_lists_mlmodel(model_dir: Path, tmp_path: Path) -> None:
    archive = tmp_path / "m.tar.gz"
    result = run_cli("package", str(model_dir), "--output", str(archive))
    assert result.stdout.strip() == str(archive)
    listing = subprocess.run(
        ["tar", "tzf", str(archive)], capture_output=True, text=True, check=True
    )
    assert "MLmodel" in listing.stdout.splitlines()


def test_bad_csv_fails_with_one_line_reason(tmp_path: Path) -> None:
    data = tmp_path / "bad.csv"
    data.write_text("station_id,hour,temp_c,dow,rides\n72,25,20,2,3\n")
    result = run_cli("train", "--data", str(data), "--output", str(tmp_path / "m"), check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"bikeshare train: error: {data}: line 2: hour must be an integer from 0 to 23, got 25"
    ]
    assert not (tmp_path / "m").exists()


def test_packaging_a_non_model_directory_fails_clearly(tmp_path: Path) -> None:
    result = run_cli("package", str(tmp_path), "--output", str(tmp_path / "x.tar.gz"), check=False)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "is not an MLflow model: no MLmodel file" in result.stderr


def test_usage_errors_exit_non_zero() -> None:
    result = run_cli("train", check=False)
    assert result.returncode == 2
    assert "--output" in result.stderr


def test_release_commands_import_no_model_or_web_libraries() -> None:
    """The deploy tools container carries only the `deploy` extra (boto3)."""
    probe = (
        "import sys, bikeshare.cli, bikeshare.deploy.release, bikeshare.deploy.promote, "
        "bikeshare.deploy.credentials, bikeshare.deploy.logs\n"
        "heavy = ('sklearn', 'mlflow', 'pandas', 'numpy', 'httpx', 'gunicorn', 'uvicorn')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(("module", "extra"), [("numpy", "model"), ("boto3", "deploy"),
                                               ("gunicorn.app", "serve")])  # fmt: skip
def test_a_missing_extra_is_one_line_that_names_it(
    module: str, extra: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`uv run` without --all-extras installs no extra: say which one, never a traceback."""
    from bikeshare import cli

    def missing(_: object) -> int:
        raise ModuleNotFoundError(f"No module named '{module}'", name=module)

    monkeypatch.setattr(cli, "_train", missing)
    assert cli.main(["train", "--output", "/nonexistent/m"]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"bikeshare train: error: needs the '{extra}' extra ({module} ")
    assert f"uv sync --extra {extra}" in line


def test_a_missing_module_that_no_extra_provides_is_not_hidden(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bikeshare import cli

    def missing(_: object) -> int:
        raise ModuleNotFoundError("No module named 'bikeshare.nope'", name="bikeshare.nope")

    monkeypatch.setattr(cli, "_train", missing)
    with pytest.raises(ModuleNotFoundError):
        cli.main(["train", "--output", "/nonexistent/m"])
