"""Seed 004's approach, re-implemented as the baseline: pandas in 10,000-row chunks.

Seed 004 validates each CSV with ``pd.read_csv(chunksize=10_000)`` (structure, type/range,
dates not in the future, business rules, uniqueness, and referential integrity checked
in memory against the products and orders already validated), writes a JSON report per
chunk, and computes category- and day-level KPIs from the validated records. This module
does the same with the rules of ``salesflow.datasets.thelook`` written the way a pandas
project would write them (a column schema, one boolean mask per rule, reasons built for the
rejected rows), with no persistence of records. It imports nothing from salesflow, so
agreeing with salesflow is evidence, not an echo.

Written as a competent pandas engineer would, not deliberately slow: numbers are left to the
C parser (a chunk holding a bad value arrives as text and is parsed value by value), dates
go through one fixed format first, masks are vectorized per chunk, and the cross-chunk
state (key sets) is probed with ``set`` membership, not ``Series.isin(set)`` (which copies
the set for every chunk). Row-wise Python runs only on rejected rows (their reasons).

One known difference from salesflow: in a chunk where an integer column has a blank, the
parser reads it as floats, so ``1.0`` passes as the integer 1 (salesflow says type.integer).
The generator never writes such values; ``tests/unit/test_bench_reference.py`` pins the
agreement on generated data and on hand-made edge cases.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api.types import is_float_dtype, is_integer_dtype, is_numeric_dtype

CHUNK_ROWS = 10_000
STATUSES = ("Processing", "Shipped", "Complete", "Cancelled", "Returned")
NOT_REVENUE = ("Cancelled", "Returned")
UNKNOWN = "(unknown)"
OVERFLOW = "_overflow"

# name -> (kind, required, header must carry it)
Schema = dict[str, tuple[str, bool, bool]]
PRODUCTS: Schema = {
    "id": ("int", True, True),
    "cost": ("float", True, True),
    "category": ("text", True, True),
    "name": ("text", False, True),
    "brand": ("text", False, True),
    "retail_price": ("float", True, True),
    "department": ("text", True, True),
    "sku": ("text", True, True),
    "distribution_center_id": ("int", False, False),
}
ORDERS: Schema = {
    "order_id": ("int", True, True),
    "user_id": ("int", True, True),
    "status": ("status", True, True),
    "gender": ("text", False, False),
    "created_at": ("date", True, True),
    "returned_at": ("date", False, False),
    "shipped_at": ("date", False, False),
    "delivered_at": ("date", False, False),
    "num_of_item": ("int", True, True),
}
ORDER_ITEMS: Schema = {
    "id": ("int", True, True),
    "order_id": ("int", True, True),
    "user_id": ("int", True, True),
    "product_id": ("int", True, True),
    "inventory_item_id": ("int", False, False),
    "status": ("status", True, True),
    "created_at": ("date", True, True),
    "shipped_at": ("date", False, False),
    "delivered_at": ("date", False, False),
    "returned_at": ("date", False, False),
    "sale_price": ("float", True, True),
}
KEYS = {"products": "id", "orders": "order_id", "order_items": "id"}

_INT = re.compile(r"[+-]?\d{1,18}")
_TZ_SUFFIX = r"(?i) *(?:UTC|Z)$"


class FileRejected(Exception):
    """The whole file cannot be validated (seed 004: the file goes to failed/)."""


@dataclass
class FileResult:
    """What validating one file gave: counts, per-rule counts, valid rows, rejected rows."""

    rows_in: int = 0
    valid: int = 0
    rejected: int = 0
    rules: Counter[str] = field(default_factory=Counter)
    frames: list[pd.DataFrame] = field(default_factory=list)
    dead_letters: list[dict[str, object]] = field(default_factory=list)

    def records(self) -> pd.DataFrame:
        return pd.concat(self.frames, ignore_index=True) if self.frames else pd.DataFrame()


@dataclass
class ReferenceResult:
    """Counts per dataset and the two KPI tables."""

    files: dict[str, FileResult]
    order_kpis: pd.DataFrame
    category_kpis: pd.DataFrame


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _header(path: Path, schema: Schema, dataset: str) -> list[str]:
    """Structure rule: the file is UTF-8 and its header has every required column."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            header = [c.strip() for c in next(csv.reader(fh), [])]
    except UnicodeDecodeError as exc:
        raise FileRejected(f"{path}: not UTF-8 ({exc})") from exc
    names = [_norm(h) for h in header]
    missing = [c for c, (_, _, must) in schema.items() if must and _norm(c) not in names]
    if missing:
        raise FileRejected(f"{path}: {dataset} header lacks {missing}")
    return header


def _to_int(s: pd.Series) -> pd.Series:
    """Integers: what the CSV parser already read as numbers, else the strict text form."""
    if is_integer_dtype(s.dtype):
        return s.astype("Int64")
    if is_float_dtype(s.dtype):
        whole = np.isfinite(s) & (s % 1 == 0) & (s.abs() < 2**63)
        return s.where(whole).astype("Int64")
    text = s.astype("str").str.strip()
    ok = text.str.fullmatch(_INT.pattern).fillna(False).astype(bool)
    return pd.to_numeric(text.where(ok), errors="coerce").astype("Int64")


def _to_float(s: pd.Series) -> pd.Series:
    if is_numeric_dtype(s.dtype):
        value = s.astype("float64")
    else:
        value = pd.to_numeric(s.astype("str").str.strip(), errors="coerce").astype("float64")
    return value.where(np.isfinite(value))


def _iso(s: pd.Series) -> pd.Series:
    """The full grammar, for the few values the fixed format misses."""
    text = s.str.replace(_TZ_SUFFIX, "", regex=True)
    # Only date, date + hh:mm and date + hh:mm:ss[.f] (+offset) are dates; not "2023" alone.
    shaped = text.str.fullmatch(
        r"\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:[+-]\d{2}:?\d{2})?)?"
    )
    text = text.where(shaped.fillna(False).astype(bool))
    return pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")


def _to_datetime(s: pd.Series) -> pd.Series:
    """thelook's ``YYYY-MM-DD HH:MM:SS UTC`` with one fixed format; the rest as ISO 8601."""
    fast = pd.to_datetime(
        s.str.removesuffix(" UTC"), format="%Y-%m-%d %H:%M:%S", utc=True, errors="coerce"
    )
    missed = s.notna() & fast.isna()
    if missed.any():
        fast[missed] = _iso(s[missed])
    return fast


_PARSERS = {"int": _to_int, "float": _to_float, "date": _to_datetime}


def _in_set(values: pd.Series, known: set[int]) -> np.ndarray:
    """Per row: the (non-null) value is in ``known``; null counts as found."""
    out = np.ones(len(values), dtype=bool)
    present = values.notna().to_numpy()
    out[present] = [v in known for v in values[present].astype("int64").tolist()]
    return out


def _strip(col: pd.Series) -> pd.Series:
    """Text stripped, blank -> missing; numbers as parsed."""
    if is_numeric_dtype(col.dtype):
        return col
    text = col.astype("str").str.strip()
    return text.where(text != "")


class ChunkedValidator:
    """Validates one file chunk by chunk, keeping the keys seen so far (uniqueness)."""

    def __init__(
        self,
        dataset: str,
        schema: Schema,
        now: datetime,
        references: dict[str, set[int]] | None = None,
    ) -> None:
        self.dataset = dataset
        self.schema = schema
        self.now = (
            pd.Timestamp(now).tz_convert("UTC") if now.tzinfo else pd.Timestamp(now, tz="UTC")
        )
        self.references = references or {}
        self.seen: set[int] = set()
        self.result = FileResult()

    def run(self, path: Path, report_dir: Path | None = None) -> FileResult:
        header = _header(path, self.schema, self.dataset)
        names = [*header, OVERFLOW]
        wanted = {_norm(c): c for c in self.schema}
        renamed: dict[str, str] = {}
        for column in header:
            target = wanted.pop(_norm(column), None)
            if target is not None:
                renamed[column] = target
        # Numbers are left to the CSV parser (fast when a chunk is clean; a chunk with a bad
        # value arrives as text and is parsed per value); everything else is read as text.
        numeric = {c for c, t in renamed.items() if self.schema[t][0] in ("int", "float")}
        dtypes = {c: "str" for c in names if c not in numeric}
        reader = pd.read_csv(
            path,
            header=None,
            skiprows=1,
            names=names,
            dtype=dtypes,
            keep_default_na=False,
            na_values=[""],
            chunksize=CHUNK_ROWS,
            encoding="utf-8",
        )
        for index, raw in enumerate(reader):
            self._chunk(index, raw, renamed, report_dir)
        return self.result

    def _chunk(
        self, index: int, raw: pd.DataFrame, renamed: dict[str, str], report_dir: Path | None
    ) -> None:
        header_cols = [c for c in raw.columns if c != OVERFLOW]
        raw = raw.dropna(how="all", subset=header_cols)  # a line of empty fields: no record
        stripped = raw.apply(_strip)
        chunk = stripped[list(renamed)].rename(columns=renamed)
        for column in self.schema:
            if column not in chunk:
                chunk[column] = pd.Series(None, index=chunk.index, dtype="str")
        masks, typed = self._masks(chunk, stripped[OVERFLOW].notna())
        mask_frame = pd.DataFrame(masks, index=chunk.index)
        bad = mask_frame.any(axis=1)
        counts = {rule: int(n) for rule, n in mask_frame.sum().items() if n}
        self.result.rules.update(counts)
        self.result.rows_in += len(chunk)
        self.result.valid += int((~bad).sum())
        self.result.rejected += int(bad.sum())
        self.result.frames.append(typed[~bad])
        if bad.any():
            reasons = mask_frame[bad].apply(lambda row: list(row.index[row.to_numpy()]), axis=1)
            rows = raw[bad].drop(columns=[OVERFLOW]).to_dict(orient="records")
            self.result.dead_letters.extend(
                {"chunk": index, "reasons": r, "raw": row}
                for r, row in zip(reasons.tolist(), rows, strict=True)
            )
        if report_dir is not None:
            report = {
                "dataset": self.dataset,
                "chunk": index,
                "rows": len(chunk),
                "valid": int((~bad).sum()),
                "rejected": int(bad.sum()),
                "rules": counts,
            }
            (report_dir / f"{self.dataset}-{index:05d}.json").write_text(json.dumps(report))

    def _masks(
        self, chunk: pd.DataFrame, overflow: pd.Series
    ) -> tuple[dict[str, pd.Series], pd.DataFrame]:
        """One boolean Series per rule (a record with too many fields breaks only that one)."""
        masks: dict[str, pd.Series] = {"structure.field_count": overflow}
        typed = pd.DataFrame(index=chunk.index)
        for column, (kind, required, _) in self.schema.items():
            value = chunk[column]
            missing = value.isna()
            if required:
                _add(masks, "presence.required", missing)
            parser = _PARSERS.get(kind)
            parsed = parser(value) if parser else value
            if parser is not None:
                rule = {"int": "type.integer", "float": "type.number", "date": "type.date"}[kind]
                _add(masks, rule, ~missing & parsed.isna())
            if kind == "date":
                _add(masks, "date.future", (parsed > self.now).fillna(False))
            if kind == "status":
                _add(masks, "enum.status", ~missing & ~value.isin(STATUSES))
            typed[column] = parsed
        self._business(masks, typed)
        self._unique(masks, typed)
        for column, known in self.references.items():
            _add(masks, f"ref.{column}", pd.Series(~_in_set(typed[column], known), chunk.index))
        for rule, mask in masks.items():
            if rule != "structure.field_count":
                masks[rule] = mask.fillna(False).astype(bool) & ~overflow
        typed["day"] = typed["created_at"].dt.floor("D") if "created_at" in typed else pd.NaT
        return masks, typed

    def _business(self, masks: dict[str, pd.Series], typed: pd.DataFrame) -> None:
        if self.dataset == "products":
            _add(masks, "range.positive", typed["cost"] <= 0)
            _add(masks, "range.positive", typed["retail_price"] <= 0)
            _add(masks, "business.cost_le_retail", typed["cost"] > typed["retail_price"])
        elif self.dataset == "orders":
            _add(masks, "business.num_of_item", typed["num_of_item"] < 1)
        else:
            _add(masks, "business.sale_price", typed["sale_price"] <= 0)

    def _unique(self, masks: dict[str, pd.Series], typed: pd.DataFrame) -> None:
        """Within the file, only the first record with a key is unique (all records count)."""
        key = typed[KEYS[self.dataset]]
        present = key.notna()
        earlier = pd.Series(_in_set(key, self.seen), index=key.index) & present
        repeated = key.duplicated(keep="first") & present
        self.seen.update(key[present].astype("int64").tolist())
        _add(masks, "unique.key", earlier | repeated)


def _add(masks: dict[str, pd.Series], rule: str, mask: pd.Series) -> None:
    mask = mask.fillna(False).astype(bool)
    masks[rule] = masks[rule] | mask if rule in masks else mask


def _kpis(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    counted = frame["sale_price"].where(~frame["status"].isin(NOT_REVENUE), 0.0)
    grouped = frame.assign(
        _revenue=counted, _returned=frame["status"].eq("Returned").astype("int64")
    ).groupby(by, sort=True)
    out = grouped.agg(
        items=("id", "size"),
        revenue=("_revenue", "sum"),
        orders=("order_id", "nunique"),
        returned=("_returned", "sum"),
    ).reset_index()
    out["avg_basket"] = out["revenue"] / out["orders"]
    out["return_rate"] = out["returned"] / out["items"]
    return out


def compute_kpis(items: pd.DataFrame, products: pd.DataFrame) -> tuple[pd.DataFrame, ...]:
    """Order KPIs per day and category KPIs per category x day (seed 004's Transform)."""
    order = _kpis(items, ["day"])
    categories = products[["id", "category"]].rename(columns={"id": "product_id"})
    joined = items.merge(categories, on="product_id", how="left")
    joined["category"] = joined["category"].fillna(UNKNOWN)
    category = _kpis(joined, ["category", "day"])
    return order, category


def run(
    products: Path,
    orders: Path,
    order_items: Path,
    *,
    now: datetime,
    report_dir: Path | None = None,
) -> ReferenceResult:
    """Validate the three files in batch order, then compute the KPIs."""
    product_result = ChunkedValidator("products", PRODUCTS, now).run(products, report_dir)
    product_rows = product_result.records()
    order_result = ChunkedValidator("orders", ORDERS, now).run(orders, report_dir)
    known = {
        "product_id": set(product_rows["id"].astype("int64").tolist()),
        "order_id": set(order_result.records()["order_id"].astype("int64").tolist()),
    }
    order_result.frames.clear()
    items_result = ChunkedValidator("order_items", ORDER_ITEMS, now, known).run(
        order_items, report_dir
    )
    items = items_result.records()
    order_kpis, category_kpis = compute_kpis(items, product_rows)
    files = {"products": product_result, "orders": order_result, "order_items": items_result}
    return ReferenceResult(files, order_kpis, category_kpis)
