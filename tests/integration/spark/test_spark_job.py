"""The Spark job entry point, run the way a cluster runs it: ``spark-submit`` from the pyspark
wheel, as a real subprocess, on a batch of keys already in the bucket.

It must process the batch parents first whatever the order given, end every file as
``salesflow ingest`` with the Polars engine does (counts, letters, KPIs, archive), use the
master spark-submit was given (not salesflow's default ``local[*]``), ignore the arguments
Glue adds, and exit 1 naming a file that failed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import salesflow.entrypoints.spark_job as spark_job
from salesflow.adapters import build_backend
from salesflow.config import Settings
from salesflow.engines.spark import SparkEngine
from salesflow.kpis import CATEGORY_KPIS, ORDER_KPIS
from salesflow.models import FileRecord, FileStatus
from salesflow.pipeline.inbox import ingest
from salesflow.samples.generate import generate
from tests.fixtures.parity import NOW

pytestmark = pytest.mark.spark

BIN = Path(sys.executable).parent
BAD = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
"""A binary file dropped under inbox/orders_json/: it must fail, alone."""


def _summary(data_dir: Path) -> dict[str, object]:
    backend = build_backend(Settings(data_dir=data_dir))
    try:
        files = {
            r.key: (r.status, r.rows_in, r.valid, r.rejected, r.archive_key is not None)
            for r in backend.tables.list_files()
        }
        letters = {(x.source_file, x.record) for x in backend.letters.find()}
        kpis = {
            spec.name: backend.tables.read_aggregates(spec).sort(list(spec.key))
            for spec in (ORDER_KPIS, CATEGORY_KPIS)
        }
        left = [i.key for i in backend.store.list("inbox/")]
    finally:
        backend.close()
    return {"files": files, "letters": letters, "kpis": kpis, "inbox": left}


@dataclass
class Submitted:
    data_dir: Path
    keys: list[str]
    paths: list[Path]
    done: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def submitted(tmp_path_factory: pytest.TempPathFactory) -> Submitted:
    tmp_path = tmp_path_factory.mktemp("spark-job")
    paths = generate("order_items", 600, tmp_path / "gen", invalid_rate=0.01, seed=3, now=NOW).files
    by_name = {p.stem: p for p in paths}
    bucket = tmp_path / "job" / "bucket"
    keys = []
    for name in ("order_items", "orders", "products"):  # children first: the job reorders
        key = f"inbox/{name}/{name}.csv"
        (bucket / key).parent.mkdir(parents=True)
        shutil.copy(by_name[name], bucket / key)
        keys.append(key)
    (bucket / "inbox/orders_json").mkdir(parents=True)
    (bucket / "inbox/orders_json/broken.json").write_bytes(BAD)

    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env["PYSPARK_PYTHON"] = env["PYSPARK_DRIVER_PYTHON"] = sys.executable
    env.pop("SALESFLOW_SPARK__MASTER", None)
    done = subprocess.run(
        [
            str(BIN / "spark-submit"),
            "--master",
            "local[1]",
            "--conf",
            "spark.ui.enabled=false",
            spark_job.__file__,
            "--data-dir",
            str(tmp_path / "job"),
            "--keys",
            ",".join(keys),
            "--keys",
            "inbox/orders_json/broken.json",
            "--JOB_ID",
            "j_1",
            "--job-bookmark-option",
            "job-bookmark-disable",
        ],  # fmt: skip
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    return Submitted(tmp_path / "job", [*keys, "inbox/orders_json/broken.json"], paths, done)


def test_spark_submit_runs_a_batch_as_ingest_does(submitted: Submitted, tmp_path: Path) -> None:
    done, paths = submitted.done, submitted.paths
    assert done.returncode == spark_job.EXIT_FAILED, done.stdout[-3000:]
    # spark-submit merges the driver's stderr into its stdout: the JSON lines are the ones
    # that start with "{", the log lines say what they are.
    out = done.stdout.splitlines()
    lines = [json.loads(line) for line in out if line.startswith("{")]
    *states, summary = lines
    assert [s["dataset"] for s in states] == ["products", "orders", "order_items", "orders_json"]
    assert summary["summary"]["spark_master"] == "local[1]"
    assert summary["summary"]["by_status"] == {"SUCCESS": 3, "FAILED": 1}
    assert any("ignored arguments: --JOB_ID j_1" in line for line in out)

    reference = tmp_path / "polars"
    settings = Settings(data_dir=reference)
    backend = build_backend(settings)
    try:
        ingest(backend, settings, paths)
    finally:
        backend.close()
    want, got = _summary(reference), _summary(submitted.data_dir)
    got_files = dict(got["files"])  # type: ignore[call-overload]
    assert got_files.pop("inbox/orders_json/broken.json")[0] == FileStatus.FAILED
    assert got_files == want["files"]
    assert got["letters"] == want["letters"] and want["letters"]
    assert got["inbox"] == []
    for name in ("order_kpis", "category_kpis"):
        frame = want["kpis"][name]  # type: ignore[index]
        assert isinstance(frame, pl.DataFrame) and frame.height > 0
        assert_frame_equal(got["kpis"][name], frame, rel_tol=1e-9, abs_tol=1e-9)  # type: ignore[index]


def test_a_job_run_again_reports_what_is_done_and_changes_nothing(
    submitted: Submitted, spark_engine: SparkEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _summary(submitted.data_dir)
    keys = json.dumps(submitted.keys)  # as Step Functions' States.JsonToString passes them
    code = spark_job.main(["--data-dir", str(submitted.data_dir), "--keys", keys])
    assert code == spark_job.EXIT_FAILED  # the broken file is still the one FAILED
    *states, summary = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert summary["summary"]["by_status"] == {"SUCCESS": 3, "FAILED": 1}
    assert {s["key"]: s["seq"] for s in states} == {
        r.key: r.seq for r in _records(submitted.data_dir)
    }
    after = _summary(submitted.data_dir)
    assert after["files"] == before["files"] and after["letters"] == before["letters"]


def _records(data_dir: Path) -> list[FileRecord]:
    backend = build_backend(Settings(data_dir=data_dir))
    try:
        return backend.tables.list_files()
    finally:
        backend.close()
