"""The benchmark's baselines stay honest: on a small generated dataset with every fault
kind, the pandas reference (seed 004) and the Polars floor reject exactly what salesflow's
validation rejects, for the same rules, and compute the same KPIs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from benchmarks import agree, floor_polars, reference_pandas
from benchmarks.approaches import kpi_rows

from salesflow.datasets import get_spec
from salesflow.kpis.aggregates import category_kpis, order_kpis
from salesflow.samples.generate import generate
from salesflow.validation import Reference, validate_file

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def thelook(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("thelook")
    manifest = generate("order_items", 3000, out, invalid_rate=0.01, seed=11, now=NOW)
    paths = {p.stem: p for p in manifest.files}
    counts = manifest.to_dict()["fault_counts"]
    return {"paths": paths, "faults": {Path(k).stem: v for k, v in counts.items()}}


def _salesflow(paths: dict[str, Path]) -> dict[str, Any]:
    def check(name: str, reference: Reference | None = None) -> Any:
        return validate_file(paths[name], get_spec(name), source=name, now=NOW, reference=reference)

    products, orders = check("products"), check("orders")
    reference = Reference({"products": products.valid["_key"], "orders": orders.valid["_key"]})
    items = check("order_items", reference)
    files = {
        name: {
            "rows_in": r.report.rows_in,
            "valid": r.report.valid,
            "rejected": r.report.rejected,
            "rules": r.report.rules,
        }
        for name, r in (("products", products), ("orders", orders), ("order_items", items))
    }
    return {
        "files": files,
        "order_kpis": kpi_rows(order_kpis(items.valid), ["day"]),
        "category_kpis": kpi_rows(category_kpis(items.valid, products.valid), ["category", "day"]),
    }


def _outcome(result: Any, order: pl.DataFrame, category: pl.DataFrame) -> dict[str, Any]:
    files = {
        name: {"rows_in": f.rows_in, "valid": f.valid, "rejected": f.rejected,
               "rules": dict(f.rules)}
        for name, f in result.files.items()
    }  # fmt: skip
    return {
        "files": files,
        "order_kpis": kpi_rows(order, ["day"]),
        "category_kpis": kpi_rows(category, ["category", "day"]),
    }


def _paths(thelook: dict[str, Any]) -> list[Path]:
    return [thelook["paths"][n] for n in ("products", "orders", "order_items")]


def test_pandas_reference_agrees_with_salesflow(thelook: dict[str, Any]) -> None:
    expected = _salesflow(thelook["paths"])
    result = reference_pandas.run(*_paths(thelook), now=NOW)
    got = _outcome(result, pl.from_pandas(result.order_kpis), pl.from_pandas(result.category_kpis))
    assert agree.disagreements("salesflow", expected, "pandas", got) == []
    assert agree.rule_differences(expected, got) == {}


def test_floor_agrees_with_salesflow(thelook: dict[str, Any]) -> None:
    expected = _salesflow(thelook["paths"])
    result = floor_polars.run(*_paths(thelook), now=NOW)
    got = _outcome(result, result.order_kpis, result.category_kpis)
    assert agree.disagreements("salesflow", expected, "floor", got) == []
    assert agree.rule_differences(expected, got) == {}


def test_baselines_find_exactly_the_injected_faults(thelook: dict[str, Any]) -> None:
    """Each generated fault trips one rule, so per-rule counts equal the manifest's."""
    pandas_result = reference_pandas.run(*_paths(thelook), now=NOW)
    floor_result = floor_polars.run(*_paths(thelook), now=NOW)
    for name, faults in thelook["faults"].items():
        assert dict(pandas_result.files[name].rules) == faults, name
        assert floor_result.files[name].rules == faults, name
    assert pandas_result.files["order_items"].valid > 0


def test_agreement_check_catches_a_wrong_kpi(thelook: dict[str, Any]) -> None:
    expected = _salesflow(thelook["paths"])
    result = floor_polars.run(*_paths(thelook), now=NOW)
    got = _outcome(result, result.order_kpis, result.category_kpis)
    got["order_kpis"][0]["revenue"] *= 1 + 1e-5
    got["files"]["orders"]["valid"] += 1
    problems = agree.disagreements("salesflow", expected, "floor", got)
    assert any("revenue" in p for p in problems)
    assert any("orders valid" in p for p in problems)
    with pytest.raises(agree.Disagreement):
        agree.check({"salesflow": expected, "floor": got})


def test_edge_cases_match_salesflow(tmp_path: Path) -> None:
    """Shapes the generator does not make: T/Z/offset dates, padding, a blank line and a
    line of empty fields (no record at all), a line of spaces (a record missing its
    values), a record with an extra field, a bare date, a whitespace-only value."""
    day = (NOW - timedelta(days=3)).date()
    (tmp_path / "products.csv").write_text(
        "id,cost,category,name,brand,retail_price,department,sku\n"
        "1,2.5,Tops,n,b,5,Men,S1\n2,1,Socks,n,b,2,Women,S2\n"
    )
    (tmp_path / "orders.csv").write_text(
        "order_id,user_id,status,created_at,num_of_item\n"
        f"10,1,Complete,{day} 10:00:00 UTC,2\n11,1,Shipped,{day}T08:00:00Z,1\n"
    )
    rows = [
        f"1,10,1,1,Complete,{day}T10:11:12Z,9.5",
        f"2,10,1,2,Returned,{day} 23:30:00+02:00,4",
        f"3,11,1,1, Shipped ,{day} 10:00,  7.25 ",
        "",
        ",,,,,,",
        " , ,\t, , , , ",
        f"4,11,1,2,Complete,{day},3",
        f"5,11,1,2,Complete,{day} 10:00:00 UTC,3,extra",
        f"6,11,  ,2,Complete,{day} 10:00:00 UTC,3",
        f"7,11,1,2,Cancelled,{day}T01:02:03.456789+00:00,8",
        f"8,11,1,2,Complete,{day.year}-02-30 10:00:00,3",
    ]
    (tmp_path / "order_items.csv").write_text(
        "id,order_id,user_id,product_id,status,created_at,sale_price\n" + "\n".join(rows) + "\n"
    )
    paths = {n: tmp_path / f"{n}.csv" for n in ("products", "orders", "order_items")}
    expected = _salesflow(paths)
    assert expected["files"]["order_items"]["valid"] == 5
    assert expected["files"]["order_items"]["rules"] == {
        "structure.field_count": 1,
        "presence.required": 2,  # the blank user_id, and the record of spaces
        "type.date": 1,
    }
    ordered = [paths["products"], paths["orders"], paths["order_items"]]
    pandas_result = reference_pandas.run(*ordered, now=NOW)
    floor_result = floor_polars.run(*ordered, now=NOW)
    for name, got in (
        ("pandas", _outcome(pandas_result, pl.from_pandas(pandas_result.order_kpis),
                            pl.from_pandas(pandas_result.category_kpis))),
        ("floor", _outcome(floor_result, floor_result.order_kpis, floor_result.category_kpis)),
    ):  # fmt: skip
        assert agree.disagreements("salesflow", expected, name, got) == [], name
        assert agree.rule_differences(expected, got) == {}, name
