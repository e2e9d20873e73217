"""The Lambda package: under Lambda's 250 MB, self-contained next to the runtime's boto3."""

from __future__ import annotations

import importlib.metadata as metadata
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from salesflow.adapters.aws.package import (
    LAMBDA_UNZIPPED_LIMIT,
    PROVIDED,
    _zip,
    build_lambda_package,
    imported_distributions,
    read_manifest,
    unzipped_size,
)
from salesflow.errors import TerminalError

pytestmark = pytest.mark.subprocess


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_lambda_package(tmp_path_factory.mktemp("package"))


def lambda_runtime_sdk(folder: Path) -> Path:
    """What the Lambda Python runtime brings: boto3 and friends, linked from this venv."""
    folder.mkdir()
    for name in PROVIDED:
        dist = metadata.distribution(name)
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops - {"__pycache__"}:
            source = Path(str(dist.locate_file(top)))
            if source.exists() and not top.endswith((".dist-info", ".pth")):
                (folder / top).symlink_to(source)
    return folder


def test_the_package_fits_lambda_and_leaves_out_what_lambda_provides(package: Path) -> None:
    size = unzipped_size(package)
    assert 0 < size < LAMBDA_UNZIPPED_LIMIT, f"{size / 1e6:.0f} MB unzipped"
    with zipfile.ZipFile(package) as zf:
        tops = {name.split("/", 1)[0] for name in zf.namelist()}
    assert {"salesflow", "polars", "pydantic", "pydantic_settings", "aws_lambda_powertools"} <= tops
    assert not tops & {"boto3", "botocore", "pyarrow", "pandas", "typer"}
    assert not any(name.endswith((".pyc", ".pyi")) or "/tests/" in name for name in zf.namelist())
    manifest = read_manifest(package)
    assert manifest["python"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert "polars" in manifest["distributions"]  # type: ignore[operator]


def test_zips_are_reproducible(tmp_path: Path) -> None:
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "src" / "pkg" / "a.py").write_text("x = 1\n")
    _zip(tmp_path / "src", tmp_path / "one.zip")
    os.utime(tmp_path / "src" / "pkg" / "a.py", (0, 0))  # a new mtime changes nothing
    _zip(tmp_path / "src", tmp_path / "two.zip")
    assert (tmp_path / "one.zip").read_bytes() == (tmp_path / "two.zip").read_bytes()


def test_broken_handlers_fail_the_build_with_the_import_error() -> None:
    with pytest.raises(TerminalError, match="no_such_module"):
        imported_distributions(["no_such_module"])


def test_the_handlers_import_from_the_package_alone(package: Path, tmp_path: Path) -> None:
    unpacked = tmp_path / "task"
    with zipfile.ZipFile(package) as zf:
        zf.extractall(unpacked)
    sdk = lambda_runtime_sdk(tmp_path / "runtime")
    probe = (
        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]];"
        "import salesflow.entrypoints.lambdas as h, salesflow.adapters.aws as aws, polars;"
        "assert polars.__file__.startswith(sys.argv[1]), polars.__file__;"
        "assert all(callable(getattr(h, n)) for n in "
        "('detector', 'validate_load', 'aggregate', 'archive', 'mark_failed', 'generator'));"
        "print('ok')"
    )
    # -S: no site-packages, so nothing from this environment leaks in beyond the runtime's SDK.
    result = subprocess.run(
        [sys.executable, "-S", "-c", probe, str(unpacked), str(sdk)],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"
