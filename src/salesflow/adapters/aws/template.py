"""The deployable CloudFormation template: infra/template.yaml with its two markers filled.

- ``"__STATEMACHINE_ASL__"``, the first argument of the state machine's ``Fn::Sub``, becomes
  infra/statemachine.asl.json as a JSON string, so ``${ArchiveArn}`` and friends are filled
  in by CloudFormation (and by moto, which ignores ``DefinitionSubstitutions`` but evaluates
  ``Fn::Sub``);
- the line ``# __CATALOG_TABLES__`` becomes the lake's Glue tables, generated from the
  dataset, dead-letter and KPI definitions (``glue.py``), one JSON-valued YAML entry each.
"""

from __future__ import annotations

import json
from pathlib import Path

from salesflow.errors import TerminalError

ASL_MARKER = '"__STATEMACHINE_ASL__"'
CATALOG_MARKER = "  # __CATALOG_TABLES__\n"
TEMPLATE = "template.yaml"
ASL = "statemachine.asl.json"


def infra_dir() -> Path:
    """Where the template and the ASL live: packaged as ``salesflow/infra`` in a wheel, or
    the repository's ``infra/`` in a source checkout."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[2] / "infra", here.parents[4] / "infra"):
        if (candidate / TEMPLATE).is_file():
            return candidate
    raise TerminalError(
        "infra/template.yaml was not found next to the salesflow package",
        hint="run from a salesflow source checkout, or install a wheel that ships salesflow/infra",
    )


def state_machine_definition(folder: Path | None = None) -> str:
    """The ASL, checked to be JSON and re-serialised compactly."""
    path = (folder or infra_dir()) / ASL
    try:
        return json.dumps(json.loads(path.read_text(encoding="utf-8")), separators=(",", ":"))
    except (OSError, ValueError) as exc:
        raise TerminalError(
            f"cannot read the state machine definition {path}: {exc}",
            hint="check that infra/statemachine.asl.json exists and is valid JSON",
        ) from exc


def template_text(folder: Path | None = None) -> str:
    """The CloudFormation template (YAML) to deploy, with the state machine inlined.

    >>> "AWS::StepFunctions::StateMachine" in template_text()  # doctest: +SKIP
    True
    """
    folder = folder or infra_dir()
    text = (folder / TEMPLATE).read_text(encoding="utf-8")
    if text.count(ASL_MARKER) != 1:
        raise TerminalError(
            f"{folder / TEMPLATE} must hold the marker {ASL_MARKER} exactly once",
            hint="restore the state machine's DefinitionString in infra/template.yaml",
        )
    if text.count(CATALOG_MARKER) != 1:
        raise TerminalError(
            f"{folder / TEMPLATE} must hold the line {CATALOG_MARKER.strip()!r} exactly once",
            hint="restore the catalog marker under the LakeDatabase resource",
        )
    from salesflow.adapters.aws.glue import catalog_resources

    # A JSON value is also valid YAML (a flow mapping; a string is a double-quoted scalar).
    tables = "".join(
        f"  {name}: {json.dumps(body)}\n" for name, body in catalog_resources().items()
    )
    text = text.replace(CATALOG_MARKER, tables)
    return text.replace(ASL_MARKER, json.dumps(state_machine_definition(folder)))
