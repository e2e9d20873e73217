"""Dead letters in a DynamoDB table: the ``DeadLetters`` port on AWS.

The table (``<prefix>letters``, key ``pk``) has the shape of the SQLite one:

- a **letter item** per letter: ``pk`` = letter id, the scalar fields, ``raw``/``reasons``/
  ``history`` as JSON text (exact for any value a record can hold; ``raw`` is zlib-compressed
  into ``raw_z`` past ``COMPRESS_OVER`` bytes), ``rules`` (a string set), and ``pos``, the
  letter's position ``<seq:012>:<record:012>:<id>`` that orders every listing;
- a **rule item** per (letter, rule) it broke: ``pk`` = ``<id>#rule#<rule>``, with ``rule``,
  ``lid`` and the letter's status, dataset, source file and seq (``r_*``): the side table.

Each filter has a global secondary index whose sort key is ``pos`` (``by_status``,
``by_dataset``, ``by_source``, ``by_seq``, ``by_rule``), projecting only the attributes the
other filters need. ``find`` queries the most selective index from ``after``'s position on,
filters the rest on the index, then reads the page's letters with BatchGetItem; with no filter
it merges the ``by_status`` index of each status. Nothing scans the table.

``counts`` streams a projection of the ``by_rule`` index (one 1 MB page at a time, tallied
and dropped) rather than keeping counters: counters updated beside a BatchWriteItem drift
after a crash between the two writes (the redo sees the letter already written and cannot
tell), while the projection is exact and costs ~0.5 read unit per 4 KB of index (about 25
units per 1,000 letters; see docs/design.md). ``count`` is a ``Select=COUNT`` query.

GSIs are eventually consistent: a letter put a moment ago may be missing from ``find`` or
``count`` for a fraction of a second on AWS; ``get`` reads the table with consistent reads.
"""

from __future__ import annotations

import heapq
import itertools
import json
import zlib
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from salesflow.adapters.aws import retry
from salesflow.adapters.aws.batch import BatchWriter
from salesflow.adapters.aws.retry import Backoff
from salesflow.errors import TerminalError
from salesflow.models import DeadLetter, LetterStatus
from salesflow.ports import LetterCount

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

Item = dict[str, Any]
RULE_MARK = "#rule#"
COMPRESS_OVER = 64 * 1024
"""Raw records longer than this (as JSON bytes) are stored compressed."""
ITEM_LIMIT = 400 * 1024
PAGE = 500
INDEXES = {
    "status": "by_status",
    "dataset": "by_dataset",
    "source_file": "by_source",
    "seq": "by_seq",
    "rule": "by_rule",
}
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
_dumps = json.JSONEncoder(default=str, ensure_ascii=False).encode


class Notices(Protocol):
    """Where first rejections are announced (the SQS queue of seeds 001/002)."""

    def send(self, letters: Sequence[DeadLetter]) -> None: ...


def position(seq: int, record: int, letter_id: str) -> str:
    """The sort key that orders letters by ``(seq, record, id)`` as text."""
    if not (0 <= seq < 10**12 and 0 <= record < 10**12):
        raise ValueError(f"dead letter {letter_id}: seq {seq} or record {record} out of range")
    return f"{seq:012d}:{record:012d}:{letter_id}"


def _letter_item(letter: DeadLetter, created_at: str) -> Item:
    raw = _dumps(letter.raw).encode()
    data: dict[str, Any] = {
        "pk": letter.id,
        "pos": position(letter.seq, letter.record, letter.id),
        "seq": letter.seq,
        "record": letter.record,
        "status": letter.status.value,
        "reasons": _dumps([r.to_dict() for r in letter.reasons]),
        "created_at": created_at,
        "attempts": letter.attempts,
        "history": _dumps([e.to_dict() for e in letter.history]),
    }
    # Empty strings cannot be index keys: such a letter is simply not in that index.
    for name in ("dataset", "source_file"):
        if getattr(letter, name):
            data[name] = getattr(letter, name)
    if letter.updated_at is not None:
        data["updated_at"] = letter.updated_at.isoformat()
    rules = {r for r in letter.rules if r}
    if rules:
        data["rules"] = rules
    if len(raw) > COMPRESS_OVER:
        data["raw_z"] = zlib.compress(raw, 6)
    else:
        data["raw"] = raw.decode()
    size = sum(len(k) + _size(v) for k, v in data.items())
    if size > ITEM_LIMIT:
        raise TerminalError(
            f"dead letter {letter.id} of {letter.source_file} is {size:,} bytes even compressed, "
            "over DynamoDB's 400 KB item limit",
            hint="the record is too large to keep as a dead letter; split or fix the source file",
        )
    return {k: _serializer.serialize(v) for k, v in data.items()}


def _size(value: Any) -> int:
    """An item attribute's size as DynamoDB counts it (UTF-8 bytes; ~21 for a number)."""
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, set):
        return sum(len(str(v).encode()) for v in value)
    return 21


def _rule_item(letter: DeadLetter, rule: str) -> Item:
    data: dict[str, Any] = {
        "pk": f"{letter.id}{RULE_MARK}{rule}",
        "rule": rule,
        "lid": letter.id,
        "pos": position(letter.seq, letter.record, letter.id),
        "r_status": letter.status.value,
        "r_dataset": letter.dataset,
        "r_source": letter.source_file,
        "r_seq": letter.seq,
    }
    return {k: _serializer.serialize(v) for k, v in data.items()}


def _from_item(item: Item) -> DeadLetter:
    d = {k: _deserializer.deserialize(v) for k, v in item.items()}
    if "raw_z" in d:
        raw = zlib.decompress(bytes(d["raw_z"])).decode()
    else:
        raw = d["raw"]
    return DeadLetter.from_dict(
        {
            "id": d["pk"],
            "dataset": d.get("dataset", ""),
            "source_file": d.get("source_file", ""),
            "record": int(d["record"]),
            "seq": int(d["seq"]),
            "raw": json.loads(raw),
            "reasons": json.loads(d["reasons"]),
            "status": d["status"],
            "created_at": d["created_at"],
            "updated_at": d.get("updated_at"),
            "attempts": int(d["attempts"]),
            "history": json.loads(d["history"]),
        }
    )


class _Filter:
    """A FilterExpression over the attributes an index projects."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.names: dict[str, str] = {}
        self.values: Item = {}

    def equal(self, attribute: str, value: Any) -> None:
        n = len(self.names)
        self.names[f"#f{n}"] = attribute
        self.values[f":f{n}"] = _serializer.serialize(value)
        self.parts.append(f"#f{n} = :f{n}")

    def one_of(self, attribute: str, values: Collection[int]) -> None:
        n = len(self.names)
        self.names[f"#f{n}"] = attribute
        marks = []
        for i, value in enumerate(sorted(values)):
            self.values[f":f{n}_{i}"] = _serializer.serialize(value)
            marks.append(f":f{n}_{i}")
        self.parts.append(f"#f{n} IN ({', '.join(marks)})")


class DynamoDeadLetters:
    """The ``DeadLetters`` port on the DynamoDB table ``table``; ``client`` is a boto3 client.

    ``notices`` (optional) is told of each letter the first time it is stored, after the
    write: an announcement for consumers (SQS), never the truth.
    """

    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        *,
        notices: Notices | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.client = client
        self.table = table
        self.notices = notices
        self.backoff = backoff or Backoff()
        self.batch = BatchWriter(client, table, self.backoff)

    def _call(self, what: str, fn: Any) -> Any:
        return retry.call(self.backoff, f"dynamodb {what} on {self.table}", fn)

    # writes
    def put(self, letters: Sequence[DeadLetter]) -> None:
        """Upsert letters 100 at a time: read what is stored (created_at, rules), then write
        the letter items, their rule items, and delete rule items of rules no longer broken
        (BatchWriteItem, 25 a request)."""
        latest = {x.id: x for x in letters}
        for part in _chunks(list(latest.values()), 100):
            self._put(part)

    def _put(self, letters: list[DeadLetter]) -> None:
        stored = {
            item["pk"]["S"]: item
            for item in self.batch.get(
                [{"pk": {"S": x.id}} for x in letters],
                projection="pk, created_at, #rules",
                rules="rules",
            )
        }
        puts: list[Item] = []
        deletes: list[Item] = []
        for letter in letters:
            old = stored.get(letter.id)
            created = old["created_at"]["S"] if old else letter.created_at.isoformat()
            puts.append(_letter_item(letter, created))
            puts.extend(_rule_item(letter, rule) for rule in letter.rules if rule)
            gone = set(old.get("rules", {}).get("SS", [])) - set(letter.rules) if old else set()
            deletes.extend({"pk": {"S": f"{letter.id}{RULE_MARK}{r}"}} for r in sorted(gone))
        self.batch.put(puts)
        if deletes:
            self.batch.delete(deletes)
        if self.notices is not None:
            first = [x for x in letters if x.id not in stored]
            if first:
                self.notices.send(first)

    # reads
    def get(self, ids: Sequence[str]) -> list[DeadLetter]:
        unique = list(dict.fromkeys(ids))
        items = self.batch.get([{"pk": {"S": i}} for i in unique])
        found = {item["pk"]["S"]: _from_item(item) for item in items}
        return [found[i] for i in ids if i in found]

    def _position(self, after: str) -> str:
        response = self._call(
            "get",
            lambda: self.client.get_item(
                TableName=self.table,
                Key={"pk": {"S": after}},
                ProjectionExpression="pos",
                ConsistentRead=True,
            ),
        )
        item = response.get("Item")
        if not item or "pos" not in item:
            raise ValueError(f"after={after!r} is not the id of a stored dead letter")
        return str(item["pos"]["S"])

    def _query(
        self,
        index: str,
        key: str,
        value: Any,
        *,
        start: str | None,
        where: _Filter,
        count: bool = False,
        page: int = PAGE,
    ) -> Iterator[Item]:
        """Items (or, with ``count``, one ``{"Count": n}`` per page) of one index partition,
        in ``pos`` order after ``start``, page by page."""
        names = {"#k": key, **where.names}
        values = {":k": _serializer.serialize(value), **where.values}
        condition = "#k = :k"
        if start is not None:
            condition += " AND #p > :p"
            names["#p"] = "pos"
            values[":p"] = {"S": start}
        request: Item = {
            "TableName": self.table,
            "IndexName": index,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        if where.parts:
            request["FilterExpression"] = " AND ".join(where.parts)
        if count:
            request["Select"] = "COUNT"
        else:
            request["Limit"] = page
        while True:
            response = self._call(f"query {index}", lambda r=request: self.client.query(**r))
            if count:
                yield {"Count": int(response.get("Count", 0))}
            else:
                yield from response.get("Items", [])
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            request = {**request, "ExclusiveStartKey": last}

    def _plan(
        self,
        status: LetterStatus | None,
        dataset: str | None,
        source_file: str | None,
        rule: str | None,
        seqs: Collection[int] | None,
    ) -> tuple[str, list[Any], _Filter]:
        """Which index to query (its key attribute and the values to query it with) and the
        filter for the other conditions: rule, source file, seq, dataset, then status."""
        where = _Filter()
        if rule is not None:
            for attribute, value in (
                ("r_status", status.value if status else None),
                ("r_dataset", dataset),
                ("r_source", source_file),
            ):
                if value is not None:
                    where.equal(attribute, value)
            if seqs is not None:
                where.one_of("r_seq", seqs)
            return "rule", [rule], where
        filters: dict[str, Any] = {
            "source_file": source_file,
            "dataset": dataset,
            "status": status.value if status else None,
        }
        key: str
        values: list[Any]
        if source_file is not None:
            key, values = "source_file", [source_file]
        elif seqs is not None:
            key, values = "seq", sorted({int(s) for s in seqs})
        elif dataset is not None:
            key, values = "dataset", [dataset]
        else:
            key = "status"
            values = [status.value] if status else [s.value for s in LetterStatus]
        for attribute, value in filters.items():
            if value is not None and attribute != key:
                where.equal(attribute, value)
        if seqs is not None and key != "seq":
            where.one_of("seq", seqs)
        return key, values, where

    def _ids(
        self, key: str, values: list[Any], where: _Filter, start: str | None, page: int
    ) -> Iterator[str]:
        """Letter ids in position order across the partitions ``values`` of one index."""
        index = INDEXES[key]
        id_of = "lid" if key == "rule" else "pk"
        streams = [
            (
                (item["pos"]["S"], item[id_of]["S"])
                for item in self._query(index, key, value, start=start, where=where, page=page)
            )
            for value in values
        ]
        # Partitions of by_seq are disjoint ranges of pos; by_status ones interleave.
        merged = itertools.chain(*streams) if key == "seq" else heapq.merge(*streams)
        return (letter_id for _pos, letter_id in merged)

    def find(
        self,
        *,
        status: LetterStatus | None = None,
        dataset: str | None = None,
        source_file: str | None = None,
        rule: str | None = None,
        seqs: Collection[int] | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[DeadLetter]:
        if seqs is not None and not seqs:
            return []
        status = LetterStatus(status) if status is not None else None
        start = self._position(after) if after is not None else None
        key, values, where = self._plan(status, dataset, source_file, rule, seqs)
        page = min(limit, PAGE) if limit is not None else PAGE
        ids = self._ids(key, values, where, start, page)
        chosen = list(itertools.islice(ids, limit))
        return self.get(chosen)

    def count(
        self,
        *,
        status: LetterStatus | None = None,
        dataset: str | None = None,
        source_file: str | None = None,
        rule: str | None = None,
    ) -> int:
        status = LetterStatus(status) if status is not None else None
        key, values, where = self._plan(status, dataset, source_file, rule, None)
        return sum(
            page["Count"]
            for value in values
            for page in self._query(INDEXES[key], key, value, start=None, where=where, count=True)
        )

    def counts(self) -> list[LetterCount]:
        """A streamed projection of the ``by_rule`` index, tallied page by page."""
        tally: Counter[tuple[str, str, str]] = Counter()
        request: Item = {
            "TableName": self.table,
            "IndexName": INDEXES["rule"],
            "ProjectionExpression": "#r, r_dataset, r_status",
            "ExpressionAttributeNames": {"#r": "rule"},
        }
        while True:
            response = self._call("scan by_rule", lambda r=request: self.client.scan(**r))
            tally.update(
                (i["r_dataset"]["S"], i["r_status"]["S"], i["rule"]["S"])
                for i in response.get("Items", [])
            )
            last = response.get("LastEvaluatedKey")
            if not last:
                break
            request = {**request, "ExclusiveStartKey": last}
        return [LetterCount(d, LetterStatus(s), r, n) for (d, s, r), n in sorted(tally.items())]


def _chunks(items: list[DeadLetter], size: int) -> Iterable[list[DeadLetter]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
