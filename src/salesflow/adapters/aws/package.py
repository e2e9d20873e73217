"""The Lambda deployment package: salesflow plus what its handlers import, as one zip.

Which distributions: the closure of ``ROOTS`` plus every distribution whose modules the
handlers really import (a subprocess imports ``salesflow.entrypoints.lambdas`` and the AWS
adapters and reports ``sys.modules``), minus what the runtime provides. Test suites, type
stubs and C headers inside them are left out.

Two ways to fill it:

- offline (default): copy the installed distributions of this environment (polars and its
  runtime, pydantic, pydantic-settings, aws-lambda-powertools, and their dependencies). No
  network, so tests build it; the result runs on Lambda when this environment matches the
  runtime (Linux x86_64, the same Python minor version), which the zip's manifest records.
- for a real deploy from any machine, ``platform="manylinux2014_x86_64"`` (or ``..._aarch64``
  for arm64) runs ``pip install --platform <platform> --only-binary=:all: --python-version
  3.12 --target ...`` with the same pinned versions, i.e. wheels built for Lambda.

Left out: boto3, botocore, s3transfer and urllib3 (the Lambda Python runtime provides them),
and whatever the handlers do not import (pyarrow, pandas, the CLI's typer, rich, watchdog).
The test suite checks the unzipped size against Lambda's 250 MB limit.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import json
import platform as host
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import uuid
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from salesflow.errors import TerminalError

ROOTS = ("polars", "pydantic-settings", "aws-lambda-powertools")
PROVIDED = frozenset({"boto3", "botocore", "s3transfer", "urllib3", "python-dateutil", "six"})
TOOLING = frozenset({"pip", "setuptools", "wheel", "salesflow"})
HANDLER_MODULES = (
    "salesflow.entrypoints.lambdas",
    "salesflow.adapters",
    "salesflow.adapters.alerts",
    "salesflow.adapters.aws.dynamodb",
    "salesflow.adapters.aws.s3",
    "salesflow.adapters.aws.sns",
    "salesflow.adapters.aws.sqs",
)
SKIPPED_PARTS = frozenset({"__pycache__", "tests", "include"})
MANIFEST = "salesflow_package.json"
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
_EPOCH = (1980, 1, 1, 0, 0, 0)


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _requirements(dist: metadata.Distribution) -> Iterator[str]:
    """Names of the distributions ``dist`` needs at run time (extras skipped)."""
    from packaging.requirements import Requirement

    for line in dist.requires or []:
        requirement = Requirement(line)
        marker = requirement.marker
        if marker is not None and not marker.evaluate({"extra": ""}):
            continue
        yield _canonical(requirement.name)


def runtime_distributions(roots: Iterable[str] = ROOTS) -> dict[str, metadata.Distribution]:
    """The closure of ``roots`` over their requirements, minus what Lambda provides."""
    found: dict[str, metadata.Distribution] = {}
    todo = [_canonical(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in found or name in PROVIDED or name in TOOLING:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError as exc:
            raise TerminalError(
                f"the Lambda package needs {name!r}, which is not installed here",
                hint='pip install "salesflow[aws]"',
            ) from exc
        found[name] = dist
        todo.extend(_requirements(dist))
    return found


def imported_distributions(modules: Iterable[str] = HANDLER_MODULES) -> set[str]:
    """Distributions whose modules importing ``modules`` loads (in a fresh interpreter)."""
    probe = (
        "import importlib, json, sys\n"
        "for name in sys.argv[1:]:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, *modules], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise TerminalError(
            f"the Lambda handlers do not import here: {result.stderr.strip()[-500:]}",
            hint="fix the import error first; the package would fail on Lambda the same way",
        )
    owners = metadata.packages_distributions()
    return {_canonical(d) for top in json.loads(result.stdout) for d in owners.get(top, [])}


def _copy_installed(dists: dict[str, metadata.Distribution], target: Path) -> None:
    for dist in dists.values():
        base = Path(str(dist.locate_file("")))
        for file in dist.files or []:
            parts = Path(str(file)).parts
            if ".." in parts or SKIPPED_PARTS & set(parts[1:-1]) or file.suffix in {".pyc", ".pyi"}:
                continue
            source = base / file
            if source.is_file():
                destination = target / file
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, destination)


def _pip_install(
    dists: dict[str, metadata.Distribution], target: Path, platform: str, python: str
) -> None:
    pins = [f"{d.metadata['Name']}=={d.version}" for d in dists.values()]
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile",
        "--target", str(target), "--platform", platform, "--only-binary=:all:",
        "--python-version", python, "--implementation", "cp", *pins,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise TerminalError(
            f"pip could not fetch Lambda wheels for {platform}: {result.stderr.strip()[-500:]}",
            hint="check the network access to PyPI, or build offline on Linux with platform=None",
        )


def _copy_salesflow(target: Path) -> None:
    import salesflow

    source = Path(salesflow.__file__).resolve().parent
    shutil.copytree(
        source, target / "salesflow", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )


def _zip(folder: Path, out: Path) -> None:
    """A reproducible zip: sorted entries, fixed timestamps, so equal content, equal hash."""
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(path.relative_to(folder).as_posix(), date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with path.open("rb") as src, zf.open(info, "w") as dst:
                shutil.copyfileobj(src, dst, 1024 * 1024)


def unzipped_size(package: Path) -> int:
    """Bytes the package takes once Lambda unzips it (limit: 250 MB)."""
    with zipfile.ZipFile(package) as zf:
        return sum(info.file_size for info in zf.infolist())


def read_manifest(package: Path) -> dict[str, object]:
    """What the package was built for (``python``, ``platform``) and what it holds."""
    with zipfile.ZipFile(package) as zf:
        data: dict[str, object] = json.loads(zf.read(MANIFEST))
    return data


def build_lambda_package(
    out_dir: Path, *, platform: str | None = None, python_version: str = "3.12"
) -> Path:
    """Build ``salesflow-lambda-<hash>.zip`` in ``out_dir`` and return its path.

    ``platform=None`` copies this environment's distributions (offline); a pip platform tag
    fetches wheels for Lambda (``manylinux2014_x86_64`` or ``manylinux2014_aarch64``).
    """
    dists = runtime_distributions([*ROOTS, *imported_distributions()])
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="salesflow-package-") as tmp:
        folder = Path(tmp) / "package"
        folder.mkdir()
        if platform is None:
            _copy_installed(dists, folder)
            python = f"{sys.version_info.major}.{sys.version_info.minor}"
            built_for = sysconfig.get_platform()
        else:
            _pip_install(dists, folder, platform, python_version)
            python, built_for = python_version, platform
        _copy_salesflow(folder)
        manifest = {
            "python": python,
            "platform": built_for,
            "machine": host.machine() if platform is None else platform.rsplit("_", 1)[-1],
            "distributions": {d.metadata["Name"]: d.version for d in dists.values()},
        }
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        staging = out_dir / f".salesflow-lambda-{uuid.uuid4().hex}.zip"
        _zip(folder, staging)
    digest = hashlib.sha256()
    with staging.open("rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    package = out_dir / f"salesflow-lambda-{digest.hexdigest()[:16]}.zip"
    staging.replace(package)
    return package
