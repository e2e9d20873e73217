"""The input of one state machine execution, and where its steps leave their results.

Step Functions state is capped at 256 KB, and ``States.DataLimitExceeded`` cannot be caught.
So an execution carries object keys, never records or per-file results:

- the input is ``{"stages": [stage, ...]}``, one stage per dataset in dependency order;
- a stage is ``{"dataset", "results", "files": [file, ...]}`` with at most ``INLINE_FILES``
  files; a bigger stage holds ``"manifest"`` (the S3 key of a JSON array of its files, read
  by a Distributed Map's ItemReader) and ``"count"`` instead of ``"files"``;
- a file is ``{"key", "dataset", "result"}``: ``result`` is the S3 key where its
  validate-and-load step writes its ``StepState``; the stage's KPI, archive and mark-failed
  steps read every result under the stage's ``results`` prefix.

Everything lives below ``work/runs/<execution name>/`` (the bucket expires it after a week).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import groupby
from typing import Any

from salesflow import layout
from salesflow.pipeline.state import StepState
from salesflow.ports import ObjectStore

INLINE_FILES = 40
"""Files of one stage carried in the execution's state; a bigger stage goes to a manifest."""

Event = dict[str, Any]


def run_prefix(execution: str) -> str:
    return f"{layout.RUNS}{execution}/"


def results_prefix(execution: str, stage: int) -> str:
    return f"{run_prefix(execution)}{stage:02d}/results/"


def plan(
    store: ObjectStore,
    execution: str,
    files: Sequence[tuple[str, str]],
    *,
    inline: int = INLINE_FILES,
) -> Event:
    """The input of execution ``execution`` for ``files`` (``(key, dataset)`` in dependency
    order): consecutive files of one dataset form a stage. Writes the manifests of stages
    bigger than ``inline`` to the bucket first."""
    stages: list[Event] = []
    for index, (dataset, group) in enumerate(groupby(files, key=lambda f: f[1])):
        results = results_prefix(execution, index)
        items = [
            {"key": key, "dataset": name, "result": f"{results}{n:05d}.json"}
            for n, (key, name) in enumerate(group)
        ]
        stage: Event = {"dataset": dataset, "results": results}
        if len(items) <= inline:
            stage["files"] = items
        else:
            manifest = f"{run_prefix(execution)}{index:02d}/files.json"
            store.put_bytes(manifest, json.dumps(items).encode())
            stage.update(manifest=manifest, count=len(items))
        stages.append(stage)
    return {"stages": stages}


def write_state(store: ObjectStore, key: str, state: StepState) -> None:
    """Leave a file's ``StepState`` where the stage's later steps read it."""
    store.put_bytes(key, json.dumps(state.to_dict()).encode())


def read_state(store: ObjectStore, key: str) -> StepState | None:
    try:
        return StepState.from_dict(json.loads(store.get_bytes(key)))
    except FileNotFoundError:
        return None


def read_states(store: ObjectStore, prefix: str) -> dict[str, StepState]:
    """Every result under a stage's ``results`` prefix, by result key."""
    return {
        info.key: StepState.from_dict(json.loads(store.get_bytes(info.key)))
        for info in store.list(prefix)
        if info.key.endswith(".json")
    }
