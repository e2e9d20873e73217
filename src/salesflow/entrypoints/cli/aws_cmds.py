"""``salesflow aws``: build, deploy, smoke-test and destroy the stack."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from salesflow.entrypoints.cli.common import Json, console, emit_json, settings_for

app = typer.Typer(help="Deploy salesflow to AWS (CloudFormation).", no_args_is_help=True)

StackName = Annotated[str | None, typer.Option("--stack-name", help="default: salesflow")]
ArchOption = Annotated[
    Literal["x86_64", "arm64"], typer.Option("--arch", help="CPU of the functions and tasks")
]
Wheelhouse = Annotated[
    Path | None,
    typer.Option(help="read wheels only from this folder (offline; `salesflow aws wheels`)"),
]


@app.command()
def template() -> None:
    """Print the CloudFormation template. Example: salesflow aws template > stack.yaml"""
    from salesflow.adapters.aws.deploy import template_text

    typer.echo(template_text(), nl=False)


@app.command()
def package(
    out: Annotated[Path, typer.Option(help="folder for the zip")] = Path("dist"),
    arch: ArchOption = "x86_64",
    python: Annotated[str, typer.Option(help="the Lambda runtime's Python")] = "3.12",
    wheelhouse: Wheelhouse = None,
) -> None:
    """Build the light Lambda zip for the runtime. Example: salesflow aws package --arch arm64"""
    from salesflow.adapters.aws.package import build_lambda_package
    from salesflow.adapters.aws.wheels import lambda_target

    built = build_lambda_package(out, lambda_target(arch, python), wheelhouse=wheelhouse)
    console.print(f"wrote {built}")


@app.command()
def wheels(
    out: Annotated[Path, typer.Option(help="the wheelhouse folder")] = Path("wheelhouse"),
    arch: ArchOption = "x86_64",
    python: Annotated[
        list[str] | None, typer.Option(help="Lambda Pythons to fetch for (repeatable)")
    ] = None,
    lambda_only: Annotated[bool, typer.Option("--lambda-only", help="skip the image")] = False,
) -> None:
    """Download every wheel deploy needs into a folder, so later deploys run offline.

    Example: salesflow aws wheels --out wheelhouse && salesflow aws deploy --wheelhouse wheelhouse
    """
    from salesflow.adapters.aws import image, package
    from salesflow.adapters.aws.wheels import download, image_target, lambda_target

    for version in python or ["3.12"]:
        download(package.requirements(), lambda_target(arch, version), out)
    if not lambda_only:
        download(image.requirements(), image_target(arch), out)
    console.print(f"wheels in {out}")


@app.command()
def image(
    context: Annotated[Path, typer.Option(help="folder to lay the build context out in")],
    arch: ArchOption = "x86_64",
    wheelhouse: Wheelhouse = None,
) -> None:
    """Prepare the image's build context, to build it where a container engine runs.

    Example: salesflow aws image --context ctx && docker build --platform linux/amd64 ctx
    """
    from salesflow.adapters.aws.image import prepare_context
    from salesflow.adapters.aws.wheels import image_target

    tag = prepare_context(context, image_target(arch), wheelhouse=wheelhouse)
    console.print(f"context in {context}; tag it {tag}")


@app.command()
def deploy(
    stack_name: StackName = None,
    alert_email: Annotated[str | None, typer.Option(help="gets the high-value alerts")] = None,
    alarm_email: Annotated[str | None, typer.Option(help="gets the operations alarms")] = None,
    image_uri: Annotated[
        str | None, typer.Option(help="the tasks' image in ECR (default: build and push it)")
    ] = None,
    arch: ArchOption = "x86_64",
    python: Annotated[str, typer.Option(help="the Lambda runtime's Python")] = "3.12",
    wheelhouse: Wheelhouse = None,
    live_feed: Annotated[
        bool, typer.Option("--live-feed", help="one mock sale a minute (seed 003)")
    ] = False,
    json_out: Json = False,
) -> None:
    """Build the Lambda zip and the image, then create or update the stack (honours
    AWS_ENDPOINT_URL).

    Example: salesflow aws deploy --alert-email sales@example.com --alarm-email ops@example.com
    """
    from salesflow.adapters.aws.deploy import deploy as run_deploy

    settings = settings_for(None, "aws")
    outputs = run_deploy(
        settings,
        stack_name=stack_name or settings.aws.stack_name,
        alert_email=alert_email,
        alarm_email=alarm_email,
        image_uri=image_uri,
        arch=arch,
        python=python,
        wheelhouse=wheelhouse,
        live_feed=live_feed,
    )
    if json_out:
        emit_json(outputs)
        return
    for key, value in sorted(outputs.items()):
        console.print(f"{key}: {value}")


@app.command()
def smoke(
    stack_name: StackName = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the files")] = 900.0,
    json_out: Json = False,
) -> None:
    """Upload a valid file, the same file again and a broken one; wait for their lineage.

    Exits 1 if any ends otherwise than SUCCESS, DUPLICATE and FAILED; run it as the last
    deploy step. Example: salesflow aws smoke --stack-name salesflow
    """
    from salesflow.adapters import build_backend
    from salesflow.ops.smoke import run_smoke

    settings = settings_for(None, "aws")
    if stack_name:
        settings.aws.stack_name = stack_name
    backend = build_backend(settings)
    try:
        report = run_smoke(backend, timeout=timeout)
    finally:
        backend.close()
    if json_out:
        emit_json(report.to_dict())
    else:
        for check in report.checks:
            mark = "ok" if check.ok else "SURPRISE"
            console.print(f"{mark:8} {check.key}: {check.expected} -> {check.got}")
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def destroy(
    stack_name: StackName = None,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask")] = False,
) -> None:
    """Empty the bucket and delete the stack. Example: salesflow aws destroy --yes"""
    from salesflow.adapters.aws.deploy import destroy as run_destroy

    settings = settings_for(None, "aws")
    name = stack_name or settings.aws.stack_name
    if not yes and not typer.confirm(f"delete stack {name} and all its data?"):
        raise typer.Exit(1)
    run_destroy(settings, name)
    console.print(f"deleted {name}")
