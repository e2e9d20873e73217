"""The light Lambda zip: salesflow and what the light handlers import, with no Polars or numpy,
self-contained next to the runtime's boto3. Built offline from the wheelhouse ``make`` fills."""

from __future__ import annotations

import importlib.metadata as metadata
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from salesflow.adapters.aws.package import (
    HEAVY,
    LAMBDA_UNZIPPED_LIMIT,
    PROVIDED,
    _zip,
    build_lambda_package,
    imported_distributions,
    read_manifest,
    requirements,
    unzipped_size,
)
from salesflow.errors import TerminalError

pytestmark = pytest.mark.subprocess

LIGHT_LIMIT = 30 * 1024 * 1024
"""The light zip stays far below Lambda's 250 MB: a few MB of pydantic and powertools."""


@pytest.fixture(scope="module")
def local_zip(wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The zip for the Lambda runtime of this interpreter's version, to import it here."""
    from salesflow.adapters.aws.wheels import lambda_target

    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    out = tmp_path_factory.mktemp("lambda-local")
    return build_lambda_package(out, lambda_target("x86_64", version), wheelhouse=wheelhouse)


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


def test_the_light_zip_holds_no_polars_or_numpy_and_leaves_out_what_lambda_provides(
    lambda_zip: Path,
) -> None:
    size = unzipped_size(lambda_zip)
    assert 0 < size < LIGHT_LIMIT < LAMBDA_UNZIPPED_LIMIT, f"{size / 1e6:.1f} MB unzipped"
    with zipfile.ZipFile(lambda_zip) as zf:
        names = zf.namelist()
    tops = {name.split("/", 1)[0] for name in names}
    assert {"salesflow", "pydantic", "pydantic_settings", "aws_lambda_powertools"} <= tops
    assert not tops & {"polars", "numpy", "pyarrow", "pandas", "boto3", "botocore", "typer"}
    assert not any(name.endswith((".pyc", ".pyi")) for name in names)
    manifest = read_manifest(lambda_zip)
    assert (manifest["python"], manifest["arch"]) == ("3.12", "x86_64")
    wheels = " ".join(manifest["wheels"])  # type: ignore[arg-type]
    assert "cp312" in wheels and "polars" not in wheels and "numpy" not in wheels


def test_the_light_handlers_import_nothing_heavy() -> None:
    imported = imported_distributions()
    assert {"pydantic", "pydantic-settings"} <= imported
    assert not imported & HEAVY
    assert not {r.split("==")[0] for r in requirements()} & (HEAVY | PROVIDED)


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


def test_the_light_handlers_import_and_fail_a_file_from_the_zip_alone(
    local_zip: Path, tmp_path: Path
) -> None:
    """Only the zip and the runtime's SDK on the path: the handlers import, the steps the
    light functions run (``fail_key``) import, and Polars cannot be imported at all."""
    unpacked = tmp_path / "task"
    with zipfile.ZipFile(local_zip) as zf:
        zf.extractall(unpacked)
    sdk = lambda_runtime_sdk(tmp_path / "runtime")
    probe = (
        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]];"
        "import salesflow.entrypoints.lambdas as h, salesflow.adapters.aws as aws;"
        "from salesflow.pipeline.steps import fail_key;"
        "assert all(callable(getattr(h, n)) for n in "
        "('detector', 'archive', 'mark_failed', 'generator'));"
        "assert 'polars' not in sys.modules and 'numpy' not in sys.modules;"
        "import importlib.util as u;"
        "assert u.find_spec('polars') is None and u.find_spec('numpy') is None;"
        "print('ok')"
    )
    # -S: no site-packages, so nothing from this environment leaks in beyond the runtime's SDK.
    result = subprocess.run(
        [sys.executable, "-S", "-c", probe, str(unpacked), str(sdk)],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"
