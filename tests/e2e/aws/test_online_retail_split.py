"""Online Retail split in two inside an invoice, on AWS: the halves add up to the whole file.

An Online Retail line's identity is ``<source>|<record>`` (the file's name and the line's
number in it), so two files with other names never replace each other's lines, even where
an invoice runs across the cut and both halves number their lines from 1. Both halves go
through the real state machine as one stage (their loads in parallel, then one KPI task);
the stored lines, the totals (per invoice, customer and day) and the KPIs must be those of
the whole file ingested by the local backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from salesflow.config import Settings
from salesflow.kpis import AGGREGATES
from salesflow.models import FileStatus
from salesflow.pipeline.steps import process_file
from salesflow.ports import Backend
from tests.e2e.aws.harness import Stack, lineage_of, run_files
from tests.fixtures.common import ONLINE_RETAIL_SAMPLE
from tests.fixtures.samples import split_inside_an_invoice

pytestmark = pytest.mark.aws

HALVES = ("inbox/online_retail/retail-1.csv", "inbox/online_retail/retail-2.csv")


def _state(backend: Backend) -> dict[str, Any]:
    """The stored lines and every aggregate row of online_retail."""
    aggregates = {}
    for name, spec in AGGREGATES.items():
        frame = backend.tables.read_aggregates(spec)
        if "scope" in frame.columns:
            frame = frame.filter(pl.col("scope").str.starts_with("online_retail"))
        aggregates[name] = frame.sort(spec.columns)
    lines = backend.lake.read("online_retail", columns=["InvoiceNo"])
    return {"lines": lines.height, "aggregates": aggregates, "by_invoice": lines}


def _whole_file_locally(folder: Path) -> dict[str, Any]:
    from salesflow.adapters import build_backend

    settings = Settings(data_dir=folder, alerts={"sinks": ["log"]})
    backend = build_backend(settings)
    try:
        key = f"inbox/online_retail/{ONLINE_RETAIL_SAMPLE.name}"
        backend.store.put_bytes(key, ONLINE_RETAIL_SAMPLE.read_bytes())
        assert process_file(backend, settings, key).status == FileStatus.SUCCESS
        return _state(backend)
    finally:
        backend.close()


def test_a_file_split_inside_an_invoice_stores_what_the_whole_file_does(
    stack: Stack, tmp_path: Path
) -> None:
    from salesflow.adapters import build_backend

    header, first, second = split_inside_an_invoice(ONLINE_RETAIL_SAMPLE)
    invoice = first.splitlines()[-1].split(",")[0]
    assert second.splitlines()[0].split(",")[0] == invoice  # the cut is inside that invoice
    s3 = boto3.client("s3")
    for key, body in zip(HALVES, (first, second), strict=True):
        s3.put_object(Bucket=stack.bucket, Key=key, Body=(header + body).encode())

    done = run_files(stack, [{"key": k, "dataset": "online_retail"} for k in HALVES], "split")

    assert done["status"] == "SUCCEEDED", done
    lineage = lineage_of(stack)
    assert {lineage[k].status for k in HALVES} == {FileStatus.SUCCESS}
    backend = build_backend(stack.settings())
    try:
        got = _state(backend)
    finally:
        backend.close()
    want = _whole_file_locally(tmp_path / "whole")
    assert got["lines"] == want["lines"] == sum(lineage[k].valid for k in HALVES) > 0

    def lines_of(state: dict[str, Any]) -> int:
        return state["by_invoice"].filter(pl.col("InvoiceNo") == invoice).height

    assert lines_of(got) == lines_of(want) >= 2  # the cut invoice keeps its lines on each side
    for name, frame in want["aggregates"].items():
        assert got["aggregates"][name].height == frame.height, name
        assert_frame_equal(got["aggregates"][name], frame, check_exact=False, rel_tol=1e-9)
    totals = got["aggregates"]["totals"]
    assert totals.height > 0
    cut = totals.filter((pl.col("scope") == "online_retail.invoice") & (pl.col("id") == invoice))
    assert cut.height == 1 and cut.get_column("records").item() == lines_of(want)
