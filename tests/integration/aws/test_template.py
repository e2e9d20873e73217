"""The CloudFormation template, offline: cfn-lint, least privilege, encryption, the ASL."""

from __future__ import annotations

import json
import re
from typing import Any

import cfnlint.api
import pytest
from cfnlint.decode import decode_str

from salesflow.adapters.aws.template import (
    ASL_MARKER,
    infra_dir,
    state_machine_definition,
    template_text,
)
from salesflow.errors import TerminalError

# The Step Functions log-delivery actions have no resource-level permissions: AWS documents
# Resource "*" for them. Nothing else may use a wildcard.
UNAVOIDABLE_STAR = {"LogDelivery"}
HANDLERS = {"detector", "validate_load", "aggregate", "archive", "mark_failed", "generator"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    decoded, errors = decode_str(template_text())
    assert not errors
    return decoded  # type: ignore[no-any-return]


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def test_the_deployable_template_passes_cfn_lint() -> None:
    assert [str(m) for m in cfnlint.api.lint(template_text())] == []


def test_no_wildcard_action_and_no_wildcard_resource_where_avoidable(
    template: dict[str, Any],
) -> None:
    statements = []
    for name, role in resources(template, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            statements += [(name, s) for s in policy["PolicyDocument"]["Statement"]]
    assert len(statements) > 20
    for name, statement in statements:
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        assert all(a != "*" and not a.endswith(":*") for a in actions), (name, statement)
        targets = (
            statement["Resource"]
            if isinstance(statement["Resource"], list)
            else [statement["Resource"]]
        )
        if statement.get("Sid") not in UNAVOIDABLE_STAR:
            assert "*" not in targets, (name, statement)


def test_every_function_has_its_own_role_and_log_group(template: dict[str, Any]) -> None:
    functions = resources(template, "AWS::Lambda::Function")
    handlers = {f["Properties"]["Handler"].rsplit(".", 1)[1] for f in functions.values()}
    assert handlers == HANDLERS
    roles = [f["Properties"]["Role"]["Fn::GetAtt"][0] for f in functions.values()]
    assert len(set(roles)) == len(functions)
    groups = resources(template, "AWS::Logs::LogGroup")
    assert all(g["Properties"]["RetentionInDays"] == 30 for g in groups.values())
    assert len(groups) == len(functions) + 1  # plus the state machine's
    validate = next(
        f for f in functions.values() if f["Properties"]["Handler"].endswith(".validate_load")
    )
    assert validate["Properties"]["MemorySize"] == 2048 and validate["Properties"]["Timeout"] == 900
    env = validate["Properties"]["Environment"]["Variables"]
    assert {
        "SALESFLOW_BACKEND",
        "SALESFLOW_AWS__BUCKET",
        "SALESFLOW_AWS__DLQ_URL",
        "SALESFLOW_AWS__TOPIC_ARN",
        "SALESFLOW_AWS__TABLE_PREFIX",
    } <= set(env)


def test_encryption_on_every_table_bucket_queue_and_topic(template: dict[str, Any]) -> None:
    tables = resources(template, "AWS::DynamoDB::Table")
    assert len(tables) == 7
    for table in tables.values():
        props = table["Properties"]
        assert props["SSESpecification"] == {"SSEEnabled": True}
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    for bucket in resources(template, "AWS::S3::Bucket").values():
        props = bucket["Properties"]
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}
        assert all(props["PublicAccessBlockConfiguration"].values())
        assert props["NotificationConfiguration"]["EventBridgeConfiguration"] == {
            "EventBridgeEnabled": True
        }
    queues = resources(template, "AWS::SQS::Queue")
    assert all(q["Properties"]["SqsManagedSseEnabled"] for q in queues.values())
    assert queues["DeadLetterQueue"]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["PoisonQueue", "Arn"]
    }
    for topic in resources(template, "AWS::SNS::Topic").values():
        assert topic["Properties"]["KmsMasterKeyId"] == "alias/aws/sns"


def test_the_state_machine_is_the_asl_with_every_substitution(template: dict[str, Any]) -> None:
    (machine,) = resources(template, "AWS::StepFunctions::StateMachine").values()
    body, variables = machine["Properties"]["DefinitionString"]["Fn::Sub"]
    assert json.loads(body) == json.loads(state_machine_definition())
    used = set(re.findall(r"\$\{(\w+)\}", body))
    assert used == set(variables), "the ASL and the template must name the same ARNs"


def test_schedules_and_the_inbox_rule(template: dict[str, Any]) -> None:
    rules = resources(template, "AWS::Events::Rule")
    pattern = rules["InboxRule"]["Properties"]["EventPattern"]
    assert pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"]["object"]["key"] == [{"prefix": "inbox/"}]
    assert rules["GeneratorSchedule"]["Properties"]["ScheduleExpression"] == "rate(1 minute)"
    alarm = resources(template, "AWS::CloudWatch::Alarm")["DeadLetterAlarm"]["Properties"]
    assert (alarm["MetricName"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
        "ApproximateNumberOfMessagesVisible",
        0,
        "GreaterThanThreshold",
    )


def test_outputs_name_every_resource_the_backend_needs(template: dict[str, Any]) -> None:
    assert {
        "BucketName",
        "DlqUrl",
        "TopicArn",
        "StateMachineArn",
        "TablePrefix",
        "RecordsTable",
        "FilesTable",
        "PendingTable",
        "AggregatesTable",
        "AlertsTable",
        "MetaTable",
    } <= set(template["Outputs"])


def test_a_template_without_the_marker_is_refused(tmp_path: Any) -> None:
    (tmp_path / "template.yaml").write_text(
        (infra_dir() / "template.yaml").read_text().replace(ASL_MARKER, '"x"')
    )
    (tmp_path / "statemachine.asl.json").write_text("{}")
    with pytest.raises(TerminalError, match="marker"):
        template_text(tmp_path)
    (tmp_path / "statemachine.asl.json").write_text("{not json")
    with pytest.raises(TerminalError, match="valid JSON"):
        state_machine_definition(tmp_path)
