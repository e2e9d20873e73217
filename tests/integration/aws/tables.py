"""Create the DynamoDB tables exactly as infra/template.yaml declares them (no CloudFormation),
so adapter tests run against the real key schemas and indexes in a fraction of a second."""

from __future__ import annotations

from typing import Any

from cfnlint.decode import decode_str

from salesflow.adapters.aws.dynamodb import TableNames
from salesflow.adapters.aws.template import infra_dir

TABLE_KEYS = (
    "AttributeDefinitions",
    "KeySchema",
    "GlobalSecondaryIndexes",
    "BillingMode",
    "SSESpecification",
)


def template_tables() -> dict[str, dict[str, Any]]:
    """``kind -> properties`` of every AWS::DynamoDB::Table in the template."""
    template, errors = decode_str((infra_dir() / "template.yaml").read_text())
    assert not errors, errors
    found = {}
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::DynamoDB::Table":
            props = resource["Properties"]
            kind = props["TableName"]["Fn::Sub"].removeprefix("${AWS::StackName}-")
            found[kind] = {k: v for k, v in props.items() if k in TABLE_KEYS}
            # CloudFormation spells it SSEEnabled, the DynamoDB API Enabled.
            found[kind]["SSESpecification"] = {"Enabled": props["SSESpecification"]["SSEEnabled"]}
    return found


def create_tables(client: Any, prefix: str = "sf-") -> TableNames:
    """Create every table under ``prefix`` and return their names."""
    for kind, props in template_tables().items():
        client.create_table(TableName=f"{prefix}{kind}", **props)
    return TableNames.from_prefix(prefix)
