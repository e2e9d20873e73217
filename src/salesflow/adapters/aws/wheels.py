"""Wheels for the machine that will run salesflow, resolved explicitly, never for this one.

The Lambda zip and the container image are built on a laptop or a CI runner, but run on
Amazon Linux (Lambda) or Debian (the image), for one Python and one CPU. pip is asked for
exactly that: ``--python-version``, ``--implementation cp``, ``--abi cp3XX`` and one
``--platform`` per glibc the target has or predates. pip does not widen ``manylinux_2_X``
tags by itself (it only widens ``manylinux2014``), and numpy >= 2.3 publishes only
``manylinux_2_27``/``2_28`` wheels, so every tag from the target's glibc down to 2.17 is
listed.

Versions are those of this environment (the ones the test suite ran with), as constraints.
``wheelhouse`` makes it offline: pip reads only that folder (``--no-index``), which
``salesflow aws wheels`` fills once (CI caches it; ``make`` fills ``.venv/wheelhouse``).
"""

from __future__ import annotations

import importlib.metadata as metadata
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from salesflow.errors import TerminalError

Arch = Literal["x86_64", "arm64"]
ARCHES: tuple[Arch, ...] = ("x86_64", "arm64")

LAMBDA_GLIBC = {"3.11": 26, "3.12": 34, "3.13": 34}
"""glibc 2.x of each Lambda Python runtime: python3.11 runs on Amazon Linux 2 (glibc 2.26),
python3.12 and 3.13 on Amazon Linux 2023 (glibc 2.34)."""
IMAGE_PYTHON = "3.12"
IMAGE_GLIBC = 36
"""The image's base (infra/Dockerfile) is Debian 12 "bookworm": glibc 2.36."""
OLDEST_GLIBC = 17
TOOLING = frozenset({"pip", "setuptools", "wheel", "salesflow"})


@dataclass(frozen=True)
class Target:
    """What a build runs on: CPU, Python ``major.minor`` and glibc ``2.<glibc>``."""

    arch: Arch
    python: str
    glibc: int

    @property
    def machine(self) -> str:
        return "aarch64" if self.arch == "arm64" else "x86_64"

    @property
    def platforms(self) -> list[str]:
        """Every manylinux tag a wheel may carry to run here, newest first."""
        tags = [f"manylinux_2_{m}_{self.machine}" for m in range(self.glibc, OLDEST_GLIBC - 1, -1)]
        tags.append(f"manylinux2014_{self.machine}")
        if self.machine == "x86_64":
            tags += ["manylinux2010_x86_64", "manylinux1_x86_64"]
        return tags

    def pip_arguments(self) -> list[str]:
        abi = "cp" + self.python.replace(".", "")
        args = ["--only-binary=:all:", "--implementation", "cp", "--python-version", self.python]
        args += ["--abi", abi, "--abi", "abi3", "--abi", "none"]
        for tag in self.platforms:
            args += ["--platform", tag]
        return args


def lambda_target(arch: Arch = "x86_64", python: str = "3.12") -> Target:
    """The Lambda Python runtime ``python<python>`` on ``arch``."""
    if python not in LAMBDA_GLIBC:
        raise TerminalError(
            f"there is no Lambda runtime python{python} salesflow can target",
            hint=f"choose one of {', '.join(sorted(LAMBDA_GLIBC))}",
        )
    return Target(arch, python, LAMBDA_GLIBC[python])


def image_target(arch: Arch = "x86_64") -> Target:
    """The container image (infra/Dockerfile's base) on ``arch``."""
    return Target(arch, IMAGE_PYTHON, IMAGE_GLIBC)


def canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def pinned(names: Iterable[str]) -> list[str]:
    """``name==version`` of each distribution as installed here."""
    pins = []
    for name in sorted({canonical(n) for n in names} - TOOLING):
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError as exc:
            raise TerminalError(
                f"the package needs {name!r}, which is not installed here",
                hint='pip install -e ".[aws]" (the versions installed are the ones deployed)',
            ) from exc
    return pins


def _constraints() -> str:
    """Every installed distribution's version: dependencies resolve as they were tested."""
    lines = set()
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and canonical(name) not in TOOLING:
            lines.add(f"{canonical(name)}=={dist.version}")
    return "\n".join(sorted(lines)) + "\n"


def download(
    requirements: Sequence[str],
    target: Target,
    dest: Path,
    *,
    wheelhouse: Path | None = None,
) -> list[Path]:
    """Download ``requirements`` and their dependencies as wheels for ``target`` into
    ``dest``; return the wheels. With ``wheelhouse``, nothing but that folder is read."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="salesflow-pip-") as tmp:
        constraints = Path(tmp) / "constraints.txt"
        constraints.write_text(_constraints())
        command = [
            sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
            "--dest", str(dest), "--constraint", str(constraints), *target.pip_arguments(),
        ]  # fmt: skip
        if wheelhouse is not None:
            command += ["--no-index", "--find-links", str(wheelhouse)]
        result = subprocess.run(
            [*command, *requirements], capture_output=True, text=True, check=False
        )
    if result.returncode != 0:
        where = f"the wheelhouse {wheelhouse}" if wheelhouse else "the package index"
        raise TerminalError(
            f"pip found no wheels for python{target.python} on {target.arch} "
            f"(glibc 2.{target.glibc}) in {where}: {result.stderr.strip()[-800:]}",
            hint="fill the wheelhouse with `salesflow aws wheels` while online"
            if wheelhouse
            else "check the access to PyPI, or pass --wheelhouse with the wheels downloaded",
        )
    return sorted(dest.glob("*.whl"))


def wheel_name(path: Path) -> str:
    """The canonical distribution name of a wheel file (``pydantic_core-2.1-...whl``)."""
    return canonical(path.name.split("-", 1)[0])
