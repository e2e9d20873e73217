"""The whole pipeline on the emulated AWS stack, over HTTP, with the real state machine.

One run (module fixture ``run``) deploys the stack, uploads generated files of every dataset
(with faults) plus one file that is not JSON at all, delivers the S3 event shapes to the
detector, lets the state machine call our handlers, and waits. DynamoDB answers every third
batch write with ProvisionedThroughputExceeded meanwhile. The same files then go through the
local backend. Each test checks one promise against what the run left behind.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from polars.testing import assert_frame_equal

from salesflow.config import Settings
from salesflow.kpis import AGGREGATES
from salesflow.models import Alert, DeadLetter, FileRecord, FileStatus
from salesflow.ops.dlq import Filters, stream
from salesflow.pipeline.steps import process_file
from salesflow.ports import Backend
from salesflow.samples.generate import generate
from tests.e2e.aws.calls import CallCounter
from tests.e2e.aws.cost import estimate, per_thousand, seed_design
from tests.e2e.aws.harness import (
    Stack,
    Throttle,
    deploy_stack,
    drain,
    eventbridge_object_created,
    invoke,
    keys_under,
    lineage_rows,
    s3_notification,
    scheduled_event,
    set_function_variables,
    states_entered,
    subscribe_queue,
    wait_for_executions,
)
from tests.fixtures.iam_calls import Call, CallRecorder
from tests.fixtures.moto_ecs import TaskLog, TaskRun
from tests.fixtures.moto_lambda import Invocation, InvocationLog
from tests.fixtures.moto_server import MotoServer

pytestmark = pytest.mark.aws

TRIO = ("products", "orders", "order_items")
BROKEN = "inbox/orders_json/broken.json"
DUPLICATE = "inbox/orders_json/same-again.json"
QUIET_SECONDS = 1.0
# docs/aws.md's measurements: SALESFLOW_E2E_SCALE=20 SALESFLOW_COST_REPORT=out.json pytest ...
SCALE = int(os.environ.get("SALESFLOW_E2E_SCALE", "1"))
COST_REPORT = os.environ.get("SALESFLOW_COST_REPORT")


@dataclass
class Run:
    """What one end-to-end run left behind, read once, for the tests to look at."""

    stack: Stack
    files: dict[str, bytes]  # inbox key -> content
    statuses: list[str]
    detected: list[dict[str, Any]]  # what the detector did for each event, the timer's last
    states: list[str]
    calls: dict[str, Any]
    throttled: int
    invocations: list[Invocation]
    tasks: list[TaskRun]
    iam: list[Call]
    lineage: dict[str, FileRecord]
    aws: dict[str, Any]  # _state_of the AWS backend after the run
    local: dict[str, Any]  # _state_of the local backend on the same files
    after_duplicate: dict[str, Any]
    letters: list[DeadLetter]  # read from the DynamoDB table
    notices: list[DeadLetter]  # read straight from the SQS queue
    local_letters: list[DeadLetter]
    alerts: list[Alert]
    published: list[dict[str, Any]]  # read from an SQS queue subscribed to the topic
    inbox_after: list[str]
    processed: list[str]
    failed: list[str]

    @property
    def rows_in(self) -> int:
        return sum(r.rows_in for r in self.lineage.values() if r.status == FileStatus.SUCCESS)

    def of(self, handler: str) -> list[Invocation]:
        return [c for c in self.invocations if c.handler.endswith(f".{handler}")]

    def runs(self, step: str) -> list[TaskRun]:
        return [r for r in self.tasks if r.step == step]

    def cost_report(self) -> dict[str, Any]:
        """The measured run, as ``tests.e2e.aws.cost`` reads it."""
        files = len(self.files)
        return {
            **self.calls,
            "rows_in": self.rows_in,
            "files": files,
            "records_per_file": self.rows_in / files,
            "transitions": len(self.states),
            "invocations": dict(Counter(c.function for c in self.invocations)),
            "lambda_seconds": {
                f: sum(c.seconds for c in self.invocations if c.function == f)
                for f in {c.function for c in self.invocations}
            },
            "tasks": dict(Counter(r.step for r in self.tasks)),
            "task_seconds": {
                step: sum(r.seconds for r in self.runs(step))
                for step in {r.step for r in self.tasks}
            },
        }


def _generated(folder: Path) -> dict[str, bytes]:
    """Small files of every dataset with faults; the trio last, in reverse dependency order."""
    files: dict[str, bytes] = {}
    for dataset, rows, rate in (
        ("orders_json", 50 * SCALE, 0.05),
        ("online_retail", 50 * SCALE, 0.03),
        ("sale_events", 30 * SCALE, 0.05),
    ):
        (path,) = generate(dataset, rows, folder / dataset, invalid_rate=rate, seed=5).files
        files[f"inbox/{dataset}/{path.name}"] = path.read_bytes()
    files[BROKEN] = b"this is not JSON at all \x00\xff"
    thelook = generate("order_items", 100 * SCALE, folder / "thelook", invalid_rate=0.03, seed=11)
    by_name = {p.stem: p for p in thelook.files}
    for dataset in reversed(TRIO):
        files[f"inbox/{dataset}/{dataset}.csv"] = by_name[dataset].read_bytes()
    return files


def _deliver(stack: Stack, files: dict[str, bytes], counter: CallCounter) -> list[dict[str, Any]]:
    """Upload each file and hand its S3 event to the detector, as AWS would."""
    s3 = boto3.client("s3")
    results = []
    for i, (key, body) in enumerate(files.items()):
        s3.put_object(Bucket=stack.bucket, Key=key, Body=body)
        shape = s3_notification if i % 2 else eventbridge_object_created
        with counter.including_main():
            results.append(invoke(stack.functions["detector"], shape(stack.bucket, key, body)))
    return results


def _state_of(backend: Backend) -> dict[str, Any]:
    """Records, aggregates, dead letters and lineage: what a duplicate must leave alone."""
    return {
        "records": {d: backend.records.read(d, columns=[]).height for d in _datasets()},
        "aggregates": {n: backend.tables.read_aggregates(s) for n, s in AGGREGATES.items()},
        "dead_letters": backend.letters.count(),
        "lineage": sorted((r.key, r.status.value) for r in backend.tables.list_files()),
    }


def _datasets() -> list[str]:
    return [*TRIO, "orders_json", "online_retail", "sale_events"]


def _local_run(folder: Path, files: dict[str, bytes]) -> tuple[dict[str, Any], list[DeadLetter]]:
    """The same files through the local backend, the trio first in dependency order."""
    from salesflow.adapters import build_backend

    settings = Settings(data_dir=folder, alerts={"sinks": ["log"]})
    backend = build_backend(settings)
    rank = {f"inbox/{d}/": i for i, d in enumerate(TRIO)}
    for key in sorted(files, key=lambda k: rank.get(k.rpartition("/")[0] + "/", len(rank))):
        backend.store.put_bytes(key, files[key])
        process_file(backend, settings, key)
    try:
        return _state_of(backend), list(stream(backend.letters, Filters(status=None)))
    finally:
        backend.close()


def _letters(queue_url: str) -> list[DeadLetter]:
    return [DeadLetter.from_dict(json.loads(body)) for body in drain(queue_url)]


@pytest.fixture(scope="module")
def run(
    moto_server: MotoServer,
    emulated: None,
    lambda_dispatch: InvocationLog,
    ecs_dispatch: TaskLog,
    iam_calls: CallRecorder,
    lambda_zip: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Run]:
    from salesflow.adapters import build_backend

    moto_server.reset()
    lambda_dispatch.clear()
    ecs_dispatch.clear()
    iam_calls.clear()
    folder = tmp_path_factory.mktemp("e2e")
    counter = CallCounter()
    throttle = Throttle(every=3)
    with pytest.MonkeyPatch.context() as patch:
        counter.install(patch)
        throttle.install(patch)
        stack = deploy_stack(package=lambda_zip)
        detector = stack.functions["detector"]
        set_function_variables(detector, SALESFLOW_BATCHING__QUIET_SECONDS=str(QUIET_SECONDS))
        # The archive step sends a stage's alerts within a budget (3 s; the timer retries the
        # rest a minute later). On a loaded test machine the emulated SNS can take longer, and
        # the run does not wait for the timer: give the budget room, every alert is checked.
        set_function_variables(
            stack.functions["archive"], SALESFLOW_ALERTS__INGEST_BUDGET_SECONDS="60"
        )
        alerts_queue = subscribe_queue(stack.outputs["TopicArn"], "alerts-probe")
        files = _generated(folder / "files")

        throttle.active = True
        detected = _deliver(stack, files, counter)
        time.sleep(QUIET_SECONDS + 0.1)
        with counter.including_main():
            detected.append(invoke(detector, scheduled_event()))
        statuses = wait_for_executions(stack.state_machine_arn, timeout=120.0 * SCALE)
        throttle.active = False
        counter.enabled = False
        states = states_entered(stack.state_machine_arn)

        aws = build_backend(stack.settings())
        before = _state_of(aws)
        _deliver(stack, {DUPLICATE: files["inbox/orders_json/orders_json.json"]}, counter)
        wait_for_executions(stack.state_machine_arn)
        after = _state_of(aws)
        lineage = {r.key: r for r in aws.tables.list_files()}
        alerts = aws.tables.list_alerts()
        letters = list(stream(aws.letters, Filters(status=None)))
        aws.close()
        local, local_letters = _local_run(folder / "local", files)
        yield Run(
            stack=stack,
            files=files,
            statuses=statuses,
            detected=detected,
            states=states,
            calls=counter.snapshot(),
            throttled=throttle.throttled,
            invocations=list(lambda_dispatch.calls),
            tasks=list(ecs_dispatch.runs),
            iam=iam_calls.snapshot(),
            lineage=lineage,
            aws=before,
            local=local,
            after_duplicate=after,
            letters=letters,
            notices=_letters(stack.outputs["DlqUrl"]),
            local_letters=local_letters,
            alerts=alerts,
            published=[json.loads(body) for body in drain(alerts_queue)],
            inbox_after=keys_under(stack.bucket, "inbox/"),
            processed=keys_under(stack.bucket, "processed/"),
            failed=keys_under(stack.bucket, "failed/"),
        )


def test_every_execution_succeeds_and_the_inbox_is_empty(run: Run) -> None:
    assert run.statuses and set(run.statuses) == {"SUCCEEDED"}
    assert run.inbox_after == []


def test_good_files_succeed_and_the_broken_one_fails(run: Run) -> None:
    succeeded = {k for k, r in run.lineage.items() if r.status == FileStatus.SUCCESS}
    assert succeeded == set(run.files) - {BROKEN}
    broken = run.lineage[BROKEN]
    assert broken.status == FileStatus.FAILED
    assert broken.error and broken.error.startswith(f"{BROKEN}: ")
    for record in run.lineage.values():
        if record.status == FileStatus.SUCCESS:
            assert record.rows_in == record.valid + record.rejected > 0


def test_files_are_archived_by_year_and_month_once_per_version(run: Run) -> None:
    """Every version has its own archive object, so the duplicate re-sent under the same key
    never overwrites the first version's archive."""
    expected_processed = []
    for record in lineage_rows(run.stack):
        month = f"year={record.started_at:%Y}/month={record.started_at:%m}"
        dataset, name = record.key.split("/")[1:]
        archived = f"{month}/{dataset}/{record.seq:012d}-{name}"
        if record.key == BROKEN:
            assert run.failed == [f"failed/{archived}"]
        else:
            expected_processed.append(f"processed/{archived}")
    assert run.processed == sorted(expected_processed)
    assert len(expected_processed) == len(run.lineage) - 1  # all but the broken file


def test_the_broken_file_is_failed_by_its_own_task(run: Run) -> None:
    assert "MarkFileAsFailed" not in run.states  # decided in the task, not retried
    assert [r.exit_code for r in run.runs("validate_load") if r.arg("--key") == BROKEN] == [0]
    assert not run.of("mark_failed")


def test_valid_records_are_stored_in_dynamodb(run: Run) -> None:
    for dataset, stored in run.aws["records"].items():
        valid = sum(r.valid for r in run.lineage.values() if r.dataset == dataset)
        assert stored == valid > 0, dataset
    assert run.aws["records"] == run.local["records"]


def test_rejected_records_are_kept_in_dynamodb_and_announced_once_on_sqs(run: Run) -> None:
    rejected = sum(r.rejected for r in run.lineage.values())
    assert len(run.letters) == len({letter.id for letter in run.letters}) == rejected > 0
    assert sorted(x.id for x in run.notices) == sorted(x.id for x in run.letters)
    seqs = {r.seq for r in run.lineage.values()}
    assert all(x.id == f"{x.seq}:{x.record}" and x.seq in seqs for x in run.letters)
    assert all(letter.reasons and letter.raw for letter in run.letters)
    assert {letter.source_file for letter in run.letters} < set(run.files)
    assert Counter(r for x in run.letters for r in x.rules) == Counter(
        r for x in run.local_letters for r in x.rules
    )


def test_high_value_sales_are_published_on_sns(run: Run) -> None:
    sent = [a for a in run.alerts if a.id.endswith("@sns")]
    assert sent and all(a.status == "SENT" and a.amount > a.threshold for a in sent)
    assert len(run.published) == len(sent)
    published = json.dumps(run.published)
    assert all(a.record_key in published for a in sent)


def test_kpis_and_totals_equal_the_local_backends(run: Run) -> None:
    for name, spec in AGGREGATES.items():
        aws = run.aws["aggregates"][name].sort(spec.columns)
        local = run.local["aggregates"][name].sort(spec.columns)
        assert aws.height == local.height > 0, name
        assert_frame_equal(aws, local, check_exact=False, rel_tol=1e-9)


def test_throttled_batch_writes_were_retried_and_nothing_was_lost(run: Run) -> None:
    assert run.throttled > 0
    for dataset, stored in run.aws["records"].items():
        assert stored == sum(r.valid for r in run.lineage.values() if r.dataset == dataset)


def test_the_trio_ran_as_ordered_stages_of_one_batch(run: Run) -> None:
    batches = [d["batch"] for d in run.detected if d["batch"]]
    assert batches == [[f"inbox/{d}/{d}.csv" for d in TRIO]]
    loads = [r.arg("--key") or "" for r in run.runs("validate_load")]
    assert [k.split("/")[1] for k in loads if k.split("/")[1] in TRIO] == list(TRIO)
    stages = [r.arg("--results") or "" for r in run.runs("aggregate")]
    batch = [p.split("/")[3] for p in stages if p.split("/")[2].startswith("batch-")]
    assert batch == ["00", "01", "02"]  # one KPI task per stage, in dependency order


def test_a_reupload_of_the_same_content_is_a_duplicate_and_changes_nothing(run: Run) -> None:
    assert run.lineage[DUPLICATE].status == FileStatus.DUPLICATE
    assert DUPLICATE not in run.inbox_after
    before, after = run.aws, run.after_duplicate
    assert after["records"] == before["records"]
    assert after["dead_letters"] == before["dead_letters"]
    for name, frame in before["aggregates"].items():
        assert_frame_equal(after["aggregates"][name], frame)
    assert after["lineage"] == sorted([*before["lineage"], (DUPLICATE, "DUPLICATE")])


def test_records_are_batched_per_invocation_never_one_lambda_per_record(run: Run) -> None:
    files = len(run.files)
    calls, written = run.calls["calls"], run.calls["items_written"]
    assert len(run.runs("validate_load")) == files + 1  # and the duplicate
    assert calls["lambda:Invoke"] <= 3 * files < run.rows_in / 10
    assert calls.get("dynamodb:PutItem", 0) < run.rows_in / 5
    # records are Parquet fragments on S3 (a few objects per file), never one item per record
    assert written.get("dynamodb:BatchWriteItem", 0) < run.rows_in / 2


def test_requests_cost_a_fraction_of_one_lambda_per_record_tasks_are_paid_per_file(
    run: Run,
) -> None:
    """Transitions, Lambda requests and DynamoDB are paid per file or per batch, a fraction of
    the seeds' per-record design. The ECS tasks are paid per file too, but at least a Fargate
    minute each: at this run's ~50 records per file they cost about what the seeds' whole
    design does (docs/aws.md's table), so they are checked for being per file, not cheap."""
    report = run.cost_report()
    if COST_REPORT:
        Path(COST_REPORT).write_text(json.dumps(report, indent=2, sort_keys=True))
    ours, seed = estimate(report).cost(), seed_design().cost()
    assert ours["Step Functions transitions"] < seed["Step Functions transitions"] / 10
    assert ours["Lambda requests"] < seed["Lambda requests"] / 10
    assert ours["total"] - ours["Fargate tasks"] < seed["total"] / 5
    assert per_thousand(report)["lambda:Invoke"] < 100
    tasks = report["tasks"]
    assert tasks["validate_load"] == len(run.files) + 1  # one per file, and the duplicate
    assert tasks["aggregate"] <= len(run.files) + 1  # one per stage


def test_every_call_of_every_step_was_allowed_by_its_own_role(run: Run) -> None:
    from tests.fixtures.iam_calls import STATES, refused

    machine = boto3.client("stepfunctions").describe_state_machine(
        stateMachineArn=run.stack.state_machine_arn
    )
    roles = {call.role.rpartition("/")[2].split("-")[1] for call in run.iam if "/" in call.role}
    assert roles == {"DetectorRole", "ValidateLoadRole", "AggregateRole", "ArchiveRole"}
    assert any(call.role == STATES for call in run.iam)
    assert refused(run.iam, {STATES: machine["roleArn"]}) == []
