"""``salesflow aws``: print the template, deploy the stack, destroy it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from salesflow.entrypoints.cli.common import Json, console, emit_json, settings_for

app = typer.Typer(help="Deploy salesflow to AWS serverless (CloudFormation).", no_args_is_help=True)

StackName = Annotated[str | None, typer.Option("--stack-name", help="default: salesflow")]


@app.command()
def template() -> None:
    """Print the CloudFormation template. Example: salesflow aws template > stack.yaml"""
    from salesflow.adapters.aws.deploy import template_text

    typer.echo(template_text(), nl=False)


@app.command()
def package(
    out: Annotated[Path, typer.Option(help="folder for the zip")] = Path("dist"),
) -> None:
    """Build the Lambda zip from this environment. Example: salesflow aws package"""
    from salesflow.adapters.aws.deploy import build_lambda_package

    console.print(f"wrote {build_lambda_package(out)}")


@app.command()
def deploy(
    stack_name: StackName = None,
    alert_email: Annotated[str | None, typer.Option(help="gets the high-value alerts")] = None,
    json_out: Json = False,
) -> None:
    """Build the Lambda package and create or update the stack (honours AWS_ENDPOINT_URL).

    Example: salesflow aws deploy --alert-email ops@example.com
    """
    from salesflow.adapters.aws.deploy import deploy as run_deploy

    settings = settings_for(None, "aws")
    name = stack_name or settings.aws.stack_name
    outputs = run_deploy(settings, stack_name=name, alert_email=alert_email or "", package=None)
    if json_out:
        emit_json(outputs)
        return
    for key, value in sorted(outputs.items()):
        console.print(f"{key}: {value}")


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
