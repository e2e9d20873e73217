"""A batch of bucket objects through the whole pipeline on Spark: the job a cluster runs.

    spark-submit --master spark://host:7077 -m salesflow.entrypoints.spark_job \\
        --keys inbox/products/p.csv,inbox/order_items/items.csv
    python -m salesflow.entrypoints.spark_job --keys-file keys.txt --spark-master local[2]
    salesflow-spark-job --keys s3://my-bucket/inbox/orders/o.csv     # SALESFLOW_BACKEND=aws

``spark-submit``, EMR Serverless (``entryPoint`` + ``entryPointArguments``), a Glue job
(job parameters, extra ``--JOB_*`` arguments are ignored) and an ECS task (the container's
command) all run this module. Each key goes through the same steps as ``salesflow ingest``
(``pipeline.steps``: claim, load, commit, publish) with the Spark engine, so lineage, dead
letters, alerts and the archive are exactly those of the default engine, and a key retried
after a crash resumes its claim instead of loading twice. Keys are taken like a batch:
products, then orders, then order_items, then the rest, each dataset in the order given.

Settings come from the environment as everywhere (``SALESFLOW_BACKEND=aws``,
``SALESFLOW_AWS__BUCKET``, ``SALESFLOW_SPARK__BUCKET_URI`` ...). Under spark-submit the
master is spark-submit's own unless ``--spark-master`` or ``SALESFLOW_SPARK__MASTER`` says
otherwise.

Prints one JSON line per file (its ``StepState``), then a summary line; logs go to stderr
(spark-submit merges the driver's stderr into its stdout: JSON lines start with ``{``).

Exit codes: 0 every file done; 1 a file ended FAILED (its reason is in lineage and in its
line); 2 the arguments or settings are wrong, nothing was done; 75 a file hit a transient
failure and is left IN_PROGRESS: run the job again for it (Step Functions' Retry, ECS or
EMR retries do).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from salesflow import layout
from salesflow.config import Settings
from salesflow.errors import SalesflowError, StoreBroken, StoreUnavailable, TransientError
from salesflow.models import FileStatus
from salesflow.pipeline.state import StepState
from salesflow.ports import Backend

log = logging.getLogger("salesflow.spark_job")

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_RETRY = 75
"""``EX_TEMPFAIL``: try again later."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="salesflow-spark-job",
        description="Process a batch of bucket objects with the Spark engine.",
    )
    parser.add_argument(
        "--keys",
        action="append",
        default=[],
        help="object keys (inbox/<dataset>/<name>) or s3://<bucket>/<key> URIs, separated by "
        "commas or whitespace; may be repeated",
    )
    parser.add_argument(
        "--keys-file", type=Path, help="a file with one key per line ('-' reads stdin)"
    )
    parser.add_argument("--data-dir", type=Path, help="the local backend's data dir")
    parser.add_argument("--backend", choices=["local", "aws"], help="default: settings")
    parser.add_argument("--spark-master", help="default: spark-submit's, else settings")
    return parser


def _split(texts: Sequence[str]) -> list[str]:
    """Keys from ``a,b c`` or from a JSON array (Step Functions' ``States.JsonToString``)."""
    keys: list[str] = []
    for text in texts:
        if text.lstrip().startswith("["):
            try:
                items = json.loads(text)
            except json.JSONDecodeError as exc:
                raise SalesflowError(
                    f"--keys {text[:80]!r}: not a JSON array of keys ({exc.msg})",
                    hint='pass ["inbox/a.csv", ...] or a,b,c',
                ) from None
            keys += [str(item) for item in items]
        else:
            keys += text.replace(",", " ").split()
    return keys


def keys_of(args: argparse.Namespace, settings: Settings) -> list[str]:
    """The keys asked for, as bucket keys: ``s3://`` URIs of the configured bucket are
    reduced to their key; a URI of another bucket, or an invalid key, is a usage error."""
    raw = _split(args.keys)
    if args.keys_file is not None:
        text = sys.stdin.read() if str(args.keys_file) == "-" else args.keys_file.read_text()
        raw += _split(text.splitlines())
    if not raw:
        raise SalesflowError("no keys given", hint="pass --keys KEY[,KEY...] or --keys-file FILE")
    keys = []
    for item in raw:
        key = item
        if item.startswith(("s3://", "s3a://")):
            bucket, _, key = item.split("://", 1)[1].partition("/")
            mine = settings.aws.bucket if settings.backend == "aws" else None
            if bucket != mine:
                raise SalesflowError(
                    f"{item}: not in the configured bucket ({mine or 'the local data dir'})",
                    hint="pass keys of the bucket salesflow runs on (SALESFLOW_AWS__BUCKET)",
                )
        keys.append(layout.check_key(key))
    return list(dict.fromkeys(keys))  # once each, first position kept


def batch_order(keys: Sequence[str], settings: Settings) -> list[str]:
    """Parents before children (``batching.datasets``: products, orders, order_items), then
    the rest; within a dataset, the order given."""
    rank = {name: i for i, name in enumerate(settings.batching.datasets)}
    return sorted(keys, key=lambda k: rank.get(layout.inbox_dataset(k) or "", len(rank)))


def run(settings: Settings, keys: Sequence[str]) -> tuple[list[StepState], list[str], str]:
    """Every key through ``process_file`` on the Spark engine: the states of the files done,
    the keys left for a retry (a transient failure) and the Spark master it ran on."""
    from salesflow.adapters import build_backend
    from salesflow.engines import engine_for
    from salesflow.pipeline.delivery import deliver_due
    from salesflow.pipeline.steps import process_file

    # Start the session first: a cluster that cannot be reached fails before any claim.
    engine = engine_for(settings)
    master = str(engine.spark.sparkContext.master) if hasattr(engine, "spark") else engine.name
    backend = build_backend(settings)
    states: list[StepState] = []
    retry: list[str] = []
    try:
        for key in batch_order(keys, settings):
            try:
                done = _finished(backend, key)
                states.append(done or process_file(backend, settings, key))
            except (StoreUnavailable, StoreBroken):
                raise
            except TransientError as exc:
                log.warning("%s: left for a retry: %s", key, exc)
                retry.append(key)
        deliver_due(backend, settings.alerts, budget=settings.alerts.ingest_budget_seconds)
    finally:
        backend.close()
    return states, retry, master


def _finished(backend: Backend, key: str) -> StepState | None:
    """The final state of a key this job (or another run) already took out of the inbox, so
    a job run again after a crash or a retry reports it instead of failing it as missing."""
    if backend.store.exists(key):
        return None
    rows = backend.tables.list_files(key=key, limit=1)
    if rows and rows[-1].status != FileStatus.IN_PROGRESS:
        return StepState.of(rows[-1])
    return None


def main(argv: Sequence[str] | None = None) -> int:
    # Glue adds its own --JOB_ID, --JOB_RUN_ID, --TempDir ...: ignored, not an error.
    args, unknown = _parser().parse_known_args(argv)
    if unknown:
        log.info("ignored arguments: %s", " ".join(unknown))
    from salesflow.entrypoints.cli.common import processing_lock, settings_for

    try:
        settings = settings_for(
            args.data_dir, args.backend, engine="spark", spark_master=args.spark_master
        )
        keys = keys_of(args, settings)
    except (SalesflowError, OSError) as exc:
        print(f"salesflow-spark-job: {exc}", file=sys.stderr)
        return EXIT_USAGE
    with processing_lock(settings) if settings.backend == "local" else contextlib.nullcontext():
        states, retry, master = run(settings, keys)
    for state in states:
        print(json.dumps({"file": state.key, **state.to_dict()}, default=str))
    summary = {
        "files": len(keys),
        "by_status": dict(Counter(str(s.status) for s in states)),
        "rows_in": sum(s.rows_in for s in states),
        "valid": sum(s.valid for s in states),
        "rejected": sum(s.rejected for s in states),
        "retry": retry,
        "spark_master": master,
    }
    print(json.dumps({"summary": summary}))
    if retry:
        return EXIT_RETRY
    return EXIT_FAILED if any(s.status == "FAILED" for s in states) else 0


def console() -> None:
    """The ``salesflow-spark-job`` script (and ``python -m``, spark-submit): stdout carries
    only the JSON lines, logs go to stderr (force: pyspark may have set a root handler)."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    sys.exit(main())


if __name__ == "__main__":
    console()
