"""Datasette facets the multi-valued trial facts (cell product, route, donor) one value at a
time (schema 10's JSON arrays, schema/metadata.yaml's array facets), through Datasette's own test
client on a copy of the bundled kb.db."""
from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from kb import store
from tests.test_serve import ds  # noqa: F401  (the fixture, over kb_path below)

#: array column -> the "; "-joined text column it is made from.
ARRAYS = {"cell_products": "cell_product", "routes": "route", "donors": "donor"}


@pytest.fixture(scope="module")
def kb_path(bundled_kb: Path) -> Path:
    return bundled_kb  # served by test_serve's ds fixture


def _expected(path: Path, table: str, column: str) -> Counter[str]:
    """How many rows of ``table`` name each value of a "; "-joined column."""
    conn = sqlite3.connect(path)
    try:
        return Counter(value for (text,) in conn.execute(f"SELECT {column} FROM {table}")
                       for value in set((text or "").split("; ")) if value)
    finally:
        conn.close()


@pytest.mark.parametrize("table", ["trials", "evidence", "outcome_rows", "effects"])
async def test_each_value_is_its_own_facet(ds, kb_path: Path, table: str) -> None:
    facets = (await ds.client.get(f"/kb/{table}.json?_size=0")).json()["facet_results"]
    for array, text in ARRAYS.items():
        assert facets[array]["type"] == "array"
        counts = {r["value"]: r["count"] for r in facets[array]["results"]}
        assert counts == _expected(kb_path, table, text), (table, array)
        assert counts and not any("; " in value for value in counts)
    products = {r["value"] for r in facets["cell_products"]["results"]}
    if table in ("trials", "evidence"):  # 'BM-MSC; BM-MNC' counts for both products
        assert {"BM-MSC", "BM-MNC", "UCB", "UC-MSC", "UCB-MNC"} <= products


async def test_a_facet_value_selects_every_trial_that_names_it(ds) -> None:
    page = await ds.client.get("/kb/trials.json?_facet_array=cell_products&_shape=objects"
                               "&cell_products__arraycontains=BM-MNC")
    products = [row["cell_product"] for row in page.json()["rows"]]
    assert "BM-MSC; BM-MNC" in products and "BM-MNC" in products
    assert all("BM-MNC" in p.split("; ") for p in products)


async def test_the_table_page_facets_by_value_and_hides_the_arrays(ds) -> None:
    page = await ds.client.get("/kb/trials")
    assert page.status_code == 200
    assert "cell_products__arraycontains=BM-MSC" in page.text
    assert "cell_products__arraycontains=BM-MSC%3B" not in page.text
    assert '<th class="col-cell_products"' not in page.text  # shown only when asked


def test_arrays_follow_the_text_columns(tmp_path: Path) -> None:
    conn = store.connect(tmp_path / "kb.db")
    conn.execute("INSERT INTO trials(key, cell_product, route, donor, created_at, updated_at) "
                 "VALUES ('k', 'UCB; say \"no\"\\n; BM-MNC', 'intrathecal', '', 'x', 'x')")
    row = conn.execute("SELECT cell_products, routes, donors FROM trials").fetchone()
    assert json.loads(row[0]) == ["UCB", 'say "no"\\n', "BM-MNC"]
    assert (json.loads(row[1]), row[2]) == (["intrathecal"], None)
    conn.execute("UPDATE trials SET cell_product = 'UC-MSC', route = NULL")
    assert tuple(conn.execute("SELECT cell_products, routes FROM trials").fetchone()) == \
        ('["UC-MSC"]', None)
    conn.close()
