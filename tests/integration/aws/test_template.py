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

# The Step Functions log-delivery actions and ecr:GetAuthorizationToken have no resource-level
# permissions: AWS documents Resource "*" for them. Nothing else may use a wildcard.
UNAVOIDABLE_STAR = {"LogDelivery", "RegistryToken"}
HANDLERS = {"detector", "archive", "mark_failed", "generator"}


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


def test_every_function_and_task_has_its_own_role_and_log_group(
    template: dict[str, Any],
) -> None:
    from salesflow.adapters.aws.package import HANDLERS as PACKAGED

    functions = resources(template, "AWS::Lambda::Function")
    handlers = {f["Properties"]["Handler"].rsplit(".", 1)[1] for f in functions.values()}
    assert handlers == HANDLERS == set(PACKAGED)
    tasks = resources(template, "AWS::ECS::TaskDefinition")
    roles = [f["Properties"]["Role"]["Fn::GetAtt"][0] for f in functions.values()]
    roles += [t["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0] for t in tasks.values()]
    assert len(set(roles)) == len(functions) + len(tasks) == 6
    groups = resources(template, "AWS::Logs::LogGroup")
    assert all(g["Properties"]["RetentionInDays"] == 30 for g in groups.values())
    assert len(groups) == len(functions) + len(tasks) + 1  # plus the state machine's
    for function in functions.values():
        env = function["Properties"]["Environment"]["Variables"]
        assert {
            "SALESFLOW_BACKEND",
            "SALESFLOW_AWS__BUCKET",
            "SALESFLOW_AWS__DLQ_URL",
            "SALESFLOW_AWS__TOPIC_ARN",
            "SALESFLOW_AWS__TABLE_PREFIX",
        } <= set(env)
        assert function["Properties"]["Architectures"] == [{"Ref": "Architecture"}]


def test_heavy_steps_are_fargate_tasks_of_one_image_run_locked_down(
    template: dict[str, Any],
) -> None:
    tasks = resources(template, "AWS::ECS::TaskDefinition")
    assert set(tasks) == {"ValidateLoadTaskDefinition", "AggregateTaskDefinition"}
    for task in tasks.values():
        props = task["Properties"]
        assert props["RequiresCompatibilities"] == ["FARGATE"]
        assert props["NetworkMode"] == "awsvpc"
        assert props["ExecutionRoleArn"] == {"Fn::GetAtt": ["TaskExecutionRole", "Arn"]}
        (container,) = props["ContainerDefinitions"]
        assert container["Image"] == {"Ref": "ImageUri"}
        assert container["ReadonlyRootFilesystem"] is True
        assert container["MountPoints"] == [{"SourceVolume": "tmp", "ContainerPath": "/tmp"}]
        names = {e["Name"] for e in container["Environment"]}
        assert {
            "SALESFLOW_BACKEND",
            "SALESFLOW_AWS__BUCKET",
            "SALESFLOW_AWS__TABLE_PREFIX",
        } <= names
        assert container["LogConfiguration"]["LogDriver"] == "awslogs"
    group = resources(template, "AWS::EC2::SecurityGroup")["TaskSecurityGroup"]["Properties"]
    assert "SecurityGroupIngress" not in group
    assert [r["FromPort"] for r in group["SecurityGroupEgress"]] == [443]
    endpoints = resources(template, "AWS::EC2::VPCEndpoint")
    assert all(e["Properties"]["VpcEndpointType"] == "Gateway" for e in endpoints.values())
    assert not resources(template, "AWS::EC2::NatGateway")


def test_failures_page_someone(template: dict[str, Any]) -> None:
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    assert set(alarms) == {
        "ExecutionsFailedAlarm",
        "TaskErrorsAlarm",
        "DeadLetterAlarm",
        "LostEventsAlarm",
        "StuckFilesAlarm",
    }
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "OpsTopic"}]

    def metrics(name: str) -> set[tuple[str, str]]:
        return {
            (q["MetricStat"]["Metric"]["Namespace"], q["MetricStat"]["Metric"]["MetricName"])
            for q in alarms[name]["Properties"]["Metrics"]
            if "MetricStat" in q
        }

    assert ("AWS/States", "ExecutionsFailed") in metrics("ExecutionsFailedAlarm")
    task_errors = metrics("TaskErrorsAlarm")
    assert ("AWS/Lambda", "Errors") in task_errors
    assert ("AWS/States", "ServiceIntegrationsFailed") in task_errors  # failed ECS tasks
    stuck = alarms["StuckFilesAlarm"]["Properties"]
    assert (stuck["Namespace"], stuck["MetricName"]) == ("salesflow", "FilesStuck")
    depth = alarms["DeadLetterAlarm"]["Properties"]
    assert depth["MetricName"] == "ApproximateNumberOfMessagesVisible"
    # CloudWatch publishes only to a topic whose customer-managed key lets it.
    topic = resources(template, "AWS::SNS::Topic")["OpsTopic"]["Properties"]
    assert topic["KmsMasterKeyId"] == {"Fn::GetAtt": ["OpsKey", "Arn"]}
    key = resources(template, "AWS::KMS::Key")["OpsKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    (cloudwatch,) = [
        s for s in key["KeyPolicy"]["Statement"]
        if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]  # fmt: skip
    assert {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(cloudwatch["Action"])


def test_no_event_for_the_detector_is_lost_silently(template: dict[str, Any]) -> None:
    rules = resources(template, "AWS::Events::Rule")
    dlq = {"Arn": {"Fn::GetAtt": ["DetectorDeadLetterQueue", "Arn"]}}
    for name in ("InboxRule", "BatchTimerRule", "SweepRule"):
        (target,) = rules[name]["Properties"]["Targets"]
        assert target["DeadLetterConfig"] == dlq, name
        assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0, name
    (sweep,) = rules["SweepRule"]["Properties"]["Targets"]
    assert json.loads(sweep["Input"]) == {"sweep": True}
    invoke = resources(template, "AWS::Lambda::EventInvokeConfig")["DetectorInvokeConfig"]
    assert invoke["Properties"]["DestinationConfig"]["OnFailure"]["Destination"] == dlq["Arn"]


def test_the_live_feed_is_off_unless_asked_for(template: dict[str, Any]) -> None:
    assert template["Parameters"]["LiveFeed"]["Default"] == "DISABLED"
    schedule = resources(template, "AWS::Events::Rule")["GeneratorSchedule"]["Properties"]
    assert schedule["State"] == {"Ref": "LiveFeed"}


def test_the_lake_is_described_for_athena(template: dict[str, Any]) -> None:
    from salesflow.datasets import SPECS
    from salesflow.kpis import AGGREGATES

    tables = resources(template, "AWS::Glue::Table")
    names = {t["Properties"]["TableInput"]["Name"] for t in tables.values()}
    assert names == {*SPECS, *AGGREGATES, "dead_letters"}
    for table in tables.values():
        body = table["Properties"]["TableInput"]
        assert body["PartitionKeys"] == [
            {"Name": "year", "Type": "int"},
            {"Name": "month", "Type": "int"},
        ]
        assert body["Parameters"]["projection.enabled"] == "true"
        parts = body["Parameters"]["storage.location.template"]["Fn::Join"][1]
        assert parts[-2:] == [f"/lake/{body['Name']}/", "year=${year}/month=${month}/"]
    group = resources(template, "AWS::Athena::WorkGroup")["QueryWorkGroup"]["Properties"]
    config = group["WorkGroupConfiguration"]
    assert config["EnforceWorkGroupConfiguration"] is True
    assert config["ResultConfiguration"]["EncryptionConfiguration"]["EncryptionOption"] == "SSE_S3"
    assert config["BytesScannedCutoffPerQuery"] > 0


def test_encryption_on_every_table_bucket_queue_and_topic(template: dict[str, Any]) -> None:
    tables = resources(template, "AWS::DynamoDB::Table")
    assert len(tables) == 6  # files, pending, aggregates, alerts, meta, letters
    for table in tables.values():
        props = table["Properties"]
        assert props["SSESpecification"] == {"SSEEnabled": True}
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    buckets = resources(template, "AWS::S3::Bucket")
    assert set(buckets) == {"DataBucket", "QueryResultsBucket"}
    for bucket in buckets.values():
        props = bucket["Properties"]
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert all(props["PublicAccessBlockConfiguration"].values())
    data = buckets["DataBucket"]["Properties"]
    assert data["VersioningConfiguration"] == {"Status": "Enabled"}
    assert data["NotificationConfiguration"]["EventBridgeConfiguration"] == {
        "EventBridgeEnabled": True
    }
    expiring = {r.get("Prefix") for r in data["LifecycleConfiguration"]["Rules"]}
    assert "work/runs/" in expiring  # execution results are not kept forever
    queues = resources(template, "AWS::SQS::Queue")
    assert all(q["Properties"]["SqsManagedSseEnabled"] for q in queues.values())
    assert queues["DeadLetterQueue"]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["PoisonQueue", "Arn"]
    }
    topics = resources(template, "AWS::SNS::Topic")
    assert topics["AlertTopic"]["Properties"]["KmsMasterKeyId"] == "alias/aws/sns"
    assert topics["OpsTopic"]["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": ["OpsKey", "Arn"]}


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
    assert rules["SweepRule"]["Properties"]["ScheduleExpression"] == "rate(15 minutes)"


def test_outputs_name_every_resource_the_backend_needs(template: dict[str, Any]) -> None:
    assert {
        "BucketName",
        "DlqUrl",
        "TopicArn",
        "StateMachineArn",
        "TablePrefix",
        "FilesTable",
        "PendingTable",
        "AggregatesTable",
        "AlertsTable",
        "MetaTable",
        "OpsTopicArn",
        "TasksCluster",
        "LakeDatabase",
        "QueryWorkGroup",
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
