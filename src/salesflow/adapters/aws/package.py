"""The light Lambda zip: salesflow plus what the light handlers import, and nothing heavy.

The Lambda functions (detector and sweep, archive, mark-failed, live feed) only route events
and settle files; the heavy steps run in the container image (``image.py``). Their zip holds:

- the wheels of ``ROOTS`` and of every distribution the handlers really import (a fresh
  interpreter imports ``HANDLER_MODULES`` and reports ``sys.modules``), resolved for the
  Lambda runtime by ``wheels.download``, minus what the runtime provides (boto3 and its
  dependencies);
- salesflow's own source.

It must not hold Polars or numpy: if the handlers' imports reach either, the build stops with
the import chain to fix. The zip is a few MB (Lambda allows 250 MB unzipped), so cold starts
and the deploy stay fast.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
import zipfile
from collections.abc import Iterable
from pathlib import Path

from salesflow.adapters.aws.wheels import Target, canonical, download, pinned, wheel_name
from salesflow.errors import TerminalError

ROOTS = ("pydantic-settings", "aws-lambda-powertools")
PROVIDED = frozenset(
    {"boto3", "botocore", "s3transfer", "urllib3", "python-dateutil", "six", "jmespath"}
)
"""Distributions the Lambda Python runtime brings (jmespath too: botocore needs it)."""
HEAVY = frozenset({"polars", "numpy", "pyarrow", "pandas", "polars-runtime-32", "polars-lts-cpu"})
HANDLER_MODULES = (
    "salesflow.entrypoints.lambdas",
    "salesflow.entrypoints.runs",
    "salesflow.pipeline.steps",
    "salesflow.adapters",
    "salesflow.adapters.alerts",
    "salesflow.adapters.aws",
    "salesflow.adapters.aws.dynamodb",
    "salesflow.adapters.aws.s3",
    "salesflow.adapters.aws.sns",
    "salesflow.adapters.aws.sqs",
)
HANDLERS = ("detector", "archive", "mark_failed", "generator")
MANIFEST = "salesflow_package.json"
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
_EPOCH = (1980, 1, 1, 0, 0, 0)


def imported_distributions(modules: Iterable[str] = HANDLER_MODULES) -> set[str]:
    """Distributions whose modules importing ``modules`` loads (in a fresh interpreter)."""
    probe = (
        "import importlib, json, sys\n"
        "for name in sys.argv[1:]:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    # A coverage run (pytest --cov) starts coverage in every child through its environment:
    # the probe must see only what the handlers import.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COV_CORE_", "COVERAGE_"))}
    result = subprocess.run(
        [sys.executable, "-c", probe, *modules],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if result.returncode != 0:
        raise TerminalError(
            f"the Lambda handlers do not import here: {result.stderr.strip()[-500:]}",
            hint="fix the import error first; the package would fail on Lambda the same way",
        )
    owners = metadata.packages_distributions()
    return {canonical(d) for top in json.loads(result.stdout) for d in owners.get(top, [])}


def requirements() -> list[str]:
    """The pinned requirements of the zip (stops if the handlers reach a heavy library)."""
    imported = imported_distributions() - {"salesflow"}
    heavy = sorted(imported & HEAVY)
    if heavy:
        raise TerminalError(
            f"the light Lambda handlers import {', '.join(heavy)}",
            hint="import it inside the heavy step that needs it (python -X importtime "
            "-c 'import salesflow.entrypoints.lambdas' shows the chain)",
        )
    return pinned((set(ROOTS) | imported) - PROVIDED)


def _install(wheels: Iterable[Path], target: Target, folder: Path) -> None:
    """Unpack ``wheels`` into ``folder`` as pip would (no dependency resolution: the closure
    is complete), byte-code left to the runtime."""
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--no-deps", "--no-index", "--no-compile", "--target", str(folder),
        *target.pip_arguments(), *(str(w) for w in wheels),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise TerminalError(
            f"pip could not unpack the Lambda wheels: {result.stderr.strip()[-500:]}",
            hint="delete the wheelhouse and download it again with `salesflow aws wheels`",
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
            if "__pycache__" in path.parts or path.suffix in {".pyc", ".pyi"}:
                continue
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
    """What the package was built for (``python``, ``arch``, ``platforms``) and what it holds."""
    with zipfile.ZipFile(package) as zf:
        data: dict[str, object] = json.loads(zf.read(MANIFEST))
    return data


def build_lambda_package(out_dir: Path, target: Target, *, wheelhouse: Path | None = None) -> Path:
    """Build ``salesflow-lambda-<hash>.zip`` for ``target`` in ``out_dir``; return its path.

    Wheels come from the package index, or only from ``wheelhouse`` when given (offline).
    """
    pins = requirements()
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="salesflow-package-") as tmp:
        wheels = [
            w
            for w in download(pins, target, Path(tmp) / "wheels", wheelhouse=wheelhouse)
            if wheel_name(w) not in PROVIDED
        ]
        heavy = sorted({wheel_name(w) for w in wheels} & HEAVY)
        if heavy:
            raise TerminalError(
                f"the Lambda requirements pull in {', '.join(heavy)}",
                hint="a light handler's dependency needs it: see `pip show` of the roots",
            )
        folder = Path(tmp) / "package"
        _install(wheels, target, folder)
        _copy_salesflow(folder)
        manifest = {
            "python": target.python,
            "arch": target.arch,
            "platforms": target.platforms,
            "handlers": [f"salesflow.entrypoints.lambdas.{h}" for h in HANDLERS],
            "wheels": sorted(w.name for w in wheels),
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
    size = unzipped_size(package)
    if size > LAMBDA_UNZIPPED_LIMIT:
        raise TerminalError(
            f"the Lambda package is {size / 1e6:.0f} MB unzipped, over Lambda's 250 MB",
            hint="something heavy reached the light handlers; see the package manifest",
        )
    return package
