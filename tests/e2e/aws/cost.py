"""What a million records cost on AWS: our design against seeds 001/002's, from measured calls.

``estimate`` turns a measured end-to-end run (API calls, items written, read units, state
transitions, Lambda invocations, ECS tasks; see ``calls.py``) into usage per million records
and prices it; ``seed_design`` prices one Map iteration + one Lambda invocation + one PutItem
per record.
``python -m tests.e2e.aws.cost REPORT.json...`` prints the table in docs/aws.md from the
reports that ``SALESFLOW_COST_REPORT=path pytest tests/e2e/aws/test_pipeline.py`` writes.

Prices are public on-demand list prices for us-east-1 (x86_64 Lambda and Fargate, Step
Functions Standard, DynamoDB on-demand after the November 2024 cut), free tiers ignored.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PRICES = {
    "state_transition": 0.025 / 1_000,  # Step Functions Standard
    "lambda_request": 0.20 / 1_000_000,
    "lambda_gb_second": 0.0000166667,
    "fargate_vcpu_hour": 0.04048,  # Linux/x86, per second, one-minute minimum
    "fargate_gb_hour": 0.004445,
    "fargate_storage_gb_hour": 0.000111,  # ephemeral storage beyond the free 20 GB
    "dynamodb_wru": 0.625 / 1_000_000,  # on-demand write request unit (item <= 1 KB)
    "dynamodb_rru": 0.125 / 1_000_000,  # on-demand read request unit (4 KB, strongly consistent)
    "sqs_request": 0.40 / 1_000_000,  # standard queue, per 64 KB chunk
    "s3_put": 0.005 / 1_000,  # PUT, COPY, POST, LIST
    "s3_get": 0.0004 / 1_000,  # GET, HEAD and the rest
    "sns_publish": 0.50 / 1_000_000,
}

# Assumptions the emulator cannot measure.
# Items (lineage rows, letters, catalog entries, aggregate rows) are under 1 KB: 1 WRU each.
TRANSACT_WRU = 2  # TransactWriteItems bills two write units per item
LAMBDA_GB = 0.5  # the light functions: detector 256 MB, archive and mark-failed 512 MB
LAMBDA_SECONDS = 0.3  # per invocation: no Polars in the zip, a few DynamoDB and S3 calls
TASK_VCPU = 1.0  # the template's task definitions: 1 vCPU, 4 GB, 50 GB ephemeral storage
TASK_GB = 4.0
TASK_EXTRA_STORAGE_GB = 30.0
TASK_START_SECONDS = 40.0  # image pull (Polars and numpy) and start, billed by Fargate
TASK_SECONDS_PER_RECORD = 0.0003  # Polars validation, the lake's fragments, KPIs
TASK_MINIMUM_SECONDS = 60.0  # Fargate bills at least a minute per task
SEED_LAMBDA_GB = 0.128
SEED_LAMBDA_SECONDS = 0.1  # one small invocation per record
SEED_TRANSITIONS_PER_RECORD = 2  # the Map iteration's Lambda task and its PutItem/SQS task
SEED_REJECTED_SHARE = 0.05

S3_PUT_CLASS = {"PutObject", "CopyObject", "CreateMultipartUpload", "UploadPart", "ListObjectsV2"}


@dataclass(frozen=True)
class Usage:
    """Billable units for one million records."""

    transitions: float
    lambda_requests: float
    lambda_gb_seconds: float
    task_seconds: float
    wru: float
    rru: float
    sqs_requests: float
    s3_put: float
    s3_get: float
    sns_publishes: float

    def cost(self) -> dict[str, float]:
        """Dollars per line item, and the total."""
        lines = {
            "Step Functions transitions": self.transitions * PRICES["state_transition"],
            "Lambda requests": self.lambda_requests * PRICES["lambda_request"],
            "Lambda compute": self.lambda_gb_seconds * PRICES["lambda_gb_second"],
            "Fargate tasks": self.task_seconds * TASK_PRICE_PER_SECOND,
            "DynamoDB writes": self.wru * PRICES["dynamodb_wru"],
            "DynamoDB reads": self.rru * PRICES["dynamodb_rru"],
            "SQS": self.sqs_requests * PRICES["sqs_request"],
            "S3 requests": self.s3_put * PRICES["s3_put"] + self.s3_get * PRICES["s3_get"],
            "SNS": self.sns_publishes * PRICES["sns_publish"],
        }
        lines["total"] = sum(lines.values())
        return lines


TASK_PRICE_PER_SECOND = (
    TASK_VCPU * PRICES["fargate_vcpu_hour"]
    + TASK_GB * PRICES["fargate_gb_hour"]
    + TASK_EXTRA_STORAGE_GB * PRICES["fargate_storage_gb_hour"]
) / 3600


def _sum(counts: dict[str, int], service: str, ops: set[str] | None = None) -> int:
    return sum(
        n
        for name, n in counts.items()
        if name.split(":")[0] == service and (ops is None or name.split(":")[1] in ops)
    )


def task_seconds(report: dict[str, Any]) -> float:
    """Billed Fargate seconds of the run's tasks: each at least a minute; the records are
    spread evenly over the validate-load tasks, and the KPI tasks read them again."""
    tasks: dict[str, int] = report.get("tasks", {})
    billed = 0.0
    for n in tasks.values():
        if n:
            seconds = TASK_START_SECONDS + report["rows_in"] / n * TASK_SECONDS_PER_RECORD
            billed += n * max(TASK_MINIMUM_SECONDS, seconds)
    return billed


def estimate(report: dict[str, Any]) -> Usage:
    """Our usage per million records, scaled from one measured run.

    Per-file work (tasks, Lambda invocations, transitions, lineage) is spread over the run's
    records, so small test files overstate it; ``records_per_file`` is in the report.
    """
    scale = 1_000_000 / report["rows_in"]
    calls, written = report["calls"], report["items_written"]
    transact = written.get("dynamodb:TransactWriteItems", 0)
    wru = sum(written.values()) - transact + transact * TRANSACT_WRU
    return Usage(
        transitions=report["transitions"] * scale,
        lambda_requests=calls.get("lambda:Invoke", 0) * scale,
        lambda_gb_seconds=calls.get("lambda:Invoke", 0) * LAMBDA_SECONDS * LAMBDA_GB * scale,
        task_seconds=task_seconds(report) * scale,
        wru=wru * scale,
        rru=sum(report["read_units"].values()) * scale,
        sqs_requests=_sum(calls, "sqs") * scale,
        s3_put=_sum(calls, "s3", S3_PUT_CLASS) * scale,
        s3_get=(_sum(calls, "s3") - _sum(calls, "s3", S3_PUT_CLASS)) * scale,
        sns_publishes=_sum(calls, "sns") * scale,
    )


def seed_design(records: float = 1_000_000) -> Usage:
    """Seeds 001/002: a Map iteration, a Lambda invocation and a PutItem (or an SQS send for
    a rejected record) per record; one S3 GetObject per file is negligible."""
    return Usage(
        transitions=records * SEED_TRANSITIONS_PER_RECORD,
        lambda_requests=records,
        lambda_gb_seconds=records * SEED_LAMBDA_GB * SEED_LAMBDA_SECONDS,
        task_seconds=0,
        wru=records * (1 - SEED_REJECTED_SHARE),
        rru=0,
        sqs_requests=records * SEED_REJECTED_SHARE,
        s3_put=0,
        s3_get=0,
        sns_publishes=0,
    )


def per_thousand(report: dict[str, Any]) -> dict[str, float]:
    """Measured API calls per 1,000 records, by service:operation."""
    per = 1_000 / report["rows_in"]
    out = {name: round(n * per, 2) for name, n in sorted(report["calls"].items())}
    out["(state transitions)"] = round(report["transitions"] * per, 2)
    return out


def render(reports: list[dict[str, Any]]) -> str:
    """Markdown: calls per 1,000 records per run, then dollars per million records."""
    head = "| call | " + " | ".join(f"{r['records_per_file']:.0f} rec/file" for r in reports)
    lines = [head + " |", "|---" * (len(reports) + 1) + "|"]
    tables = [per_thousand(r) for r in reports]
    for name in sorted({k for t in tables for k in t}):
        lines.append(f"| {name} | " + " | ".join(f"{t.get(name, 0):g}" for t in tables) + " |")
    lines += ["", "| $ per million records | seeds 001/002 | "]
    lines[-1] += " | ".join(f"ours, {r['records_per_file']:.0f} rec/file" for r in reports) + " |"
    lines.append("|---" * (len(reports) + 2) + "|")
    costs = [seed_design().cost()] + [estimate(r).cost() for r in reports]
    for item in costs[0]:
        lines.append(f"| {item} | " + " | ".join(f"{c[item]:.2f}" for c in costs) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render([json.loads(Path(p).read_text()) for p in sys.argv[1:]]))
