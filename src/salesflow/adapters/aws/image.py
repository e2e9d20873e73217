"""The container image of the heavy steps: its build context, and building and pushing it.

``prepare_context`` lays out what ``infra/Dockerfile`` copies: ``wheels/`` (the closure of
what the heavy steps import, resolved for the image's Python, glibc and CPU by
``wheels.download``) and ``app/salesflow`` (the source). Its tag is a hash of that context,
so a rebuild of the same code is the same tag (the repository's tags are immutable).

``build_and_push`` runs the first container engine that answers (docker, podman or finch),
logs it in to ECR with a token from the ECR API, builds for the target platform and pushes.
Without a running engine, ``salesflow aws deploy --image-uri`` takes an image built
elsewhere (``salesflow aws image --context DIR`` prepares the same context for that).
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Any

from salesflow.adapters.aws.package import imported_distributions
from salesflow.adapters.aws.template import infra_dir
from salesflow.adapters.aws.wheels import Target, download, pinned
from salesflow.errors import TerminalError

ENGINES = ("docker", "podman", "finch")
ENTRYPOINT = ("python", "-m", "salesflow.entrypoints.tasks")
ROOTS = ("polars", "numpy", "pydantic-settings", "aws-lambda-powertools", "boto3")
TASK_MODULES = (
    "salesflow.entrypoints.tasks",
    "salesflow.pipeline.steps",
    "salesflow.pipeline.delivery",
    "salesflow.pipeline.routing",
    "salesflow.validation",
    "salesflow.datasets",
    "salesflow.kpis",
    "salesflow.adapters",
    "salesflow.adapters.alerts",
    "salesflow.adapters.aws",
    "salesflow.adapters.aws.catalog",
    "salesflow.adapters.aws.locks",
    "salesflow.adapters.lake",
    "salesflow.adapters.aws.dynamodb",
    "salesflow.adapters.aws.s3",
    "salesflow.adapters.aws.sns",
    "salesflow.adapters.aws.sqs",
)
DOCKERFILE = "Dockerfile"


def requirements() -> list[str]:
    """The pinned requirements of the image: what the heavy steps import, boto3 included."""
    return pinned((set(ROOTS) | imported_distributions(TASK_MODULES)) - {"salesflow"})


def prepare_context(folder: Path, target: Target, *, wheelhouse: Path | None = None) -> str:
    """Fill ``folder`` with the build context; return its content tag (16 hex digits)."""
    import salesflow

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(infra_dir() / DOCKERFILE, folder / DOCKERFILE)
    download(requirements(), target, folder / "wheels", wheelhouse=wheelhouse)
    source = Path(salesflow.__file__).resolve().parent
    shutil.copytree(
        source,
        folder / "app" / "salesflow",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "infra"),
        dirs_exist_ok=True,
    )
    digest = hashlib.sha256(target.arch.encode())
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def find_engine() -> str | None:
    """The first container engine that is installed *and* answers (its daemon runs)."""
    for engine in ENGINES:
        if shutil.which(engine) is None:
            continue
        try:
            answered = subprocess.run(
                [engine, "info"], capture_output=True, timeout=30, check=False
            ).returncode
        except (OSError, subprocess.TimeoutExpired):
            continue
        if answered == 0:
            return engine
    return None


def no_engine_error() -> TerminalError:
    return TerminalError(
        "no container engine is running to build the heavy steps' image "
        f"(looked for {', '.join(ENGINES)})",
        hint="start one, or build infra/Dockerfile elsewhere (`salesflow aws image --context "
        "DIR` prepares its context) and pass --image-uri <registry>/<repository>:<tag>",
    )


def ensure_repository(ecr: Any, name: str) -> str:
    """The ECR repository ``name`` (private, scanned on push, immutable tags, the last 20
    images kept), created unless it exists; returns its URI."""
    try:
        found = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
        return str(found["repositoryUri"])
    except ecr.exceptions.RepositoryNotFoundException:
        pass
    created = ecr.create_repository(
        repositoryName=name,
        imageTagMutability="IMMUTABLE",
        imageScanningConfiguration={"scanOnPush": True},
        encryptionConfiguration={"encryptionType": "AES256"},
    )["repository"]
    ecr.put_lifecycle_policy(
        repositoryName=name,
        lifecyclePolicyText=(
            '{"rules": [{"rulePriority": 1, "description": "keep the last 20 images",'
            ' "selection": {"tagStatus": "any", "countType": "imageCountMoreThan",'
            ' "countNumber": 20}, "action": {"type": "expire"}}]}'
        ),
    )
    return str(created["repositoryUri"])


def _run(command: list[str], *, what: str, stdin: str | None = None) -> None:
    result = subprocess.run(command, input=stdin, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise TerminalError(
            f"{what} failed ({' '.join(command[:3])} ...): {result.stderr.strip()[-800:]}",
            hint="see the engine's message; `salesflow aws deploy --image-uri` skips the build",
        )


def _already_pushed(ecr: Any, repository: str, tag: str) -> bool:
    try:
        ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
    except ecr.exceptions.ImageNotFoundException:
        return False
    return True


def build_and_push(
    engine: str,
    ecr: Any,
    repository: str,
    target: Target,
    *,
    wheelhouse: Path | None = None,
    workdir: Path,
) -> str:
    """Build the image for ``target`` with ``engine``, push it to ``repository`` (created if
    need be) and return its URI (``<registry>/<repository>:<content tag>``)."""
    context = workdir / "image"
    tag = prepare_context(context, target, wheelhouse=wheelhouse)
    uri = ensure_repository(ecr, repository)
    image = f"{uri}:{tag}"
    if _already_pushed(ecr, repository, tag):
        return image
    auth = ecr.get_authorization_token()["authorizationData"][0]
    user, _, password = base64.b64decode(auth["authorizationToken"]).decode().partition(":")
    registry = str(auth["proxyEndpoint"]).removeprefix("https://")
    _run([engine, "login", "--username", user, "--password-stdin", registry],
         what="logging in to ECR", stdin=password)  # fmt: skip
    platform = "linux/arm64" if target.arch == "arm64" else "linux/amd64"
    _run([engine, "build", "--platform", platform, "--tag", image, str(context)],
         what="building the image")  # fmt: skip
    _run([engine, "push", image], what="pushing the image")
    return image
