"""Wrong-typed JSON from the services, through `kb add` as a user runs it: the record of an
unexpected shape fails alone, with a message naming it; the others are stored; no traceback."""
from __future__ import annotations

import copy
import json
import sqlite3
from pathlib import Path

import pytest

from tests.hostile import HostileServer, run_kb
from tests.replay import fixture_json
from tests.test_hostile import _env

GOOD = fixture_json("crossref", "work-synthetic-full.json")["message"]


def _work(doi: str, **fields: object) -> dict:
    item = copy.deepcopy(GOOD)
    item["DOI"] = doi
    item.update(fields)
    return item


def _serve_crossref(server: HostileServer, items: list[dict]) -> None:
    server.add("/crossref/works", HostileServer.json(json.dumps(
        {"status": "ok", "message": {"items": items, "total-results": len(items)}})))
    for item in items:
        server.add(f"/crossref/works/{item['DOI']}", HostileServer.json(json.dumps(
            {"status": "ok", "message": item})))


@pytest.fixture
def hostile() -> HostileServer:
    with HostileServer(max_requests=100, max_seconds=20) as server:
        server.add("/idconv", HostileServer.json(b'{"status": "ok", "records": null}'))
        yield server


def _rows(tmp_path: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(tmp_path / "kb.db")
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@pytest.mark.parametrize("bad", [{"author": "Smith J"}, {"issued": "2020"},
                                 {"reference": "none"}, {"author": [7, 8]}],
                         ids=["author-string", "issued-string", "reference-string",
                              "authors-numbers"])
def test_a_malformed_crossref_record_fails_alone(hostile: HostileServer, tmp_path: Path,
                                                 bad: dict) -> None:
    _serve_crossref(hostile, [_work("10.5555/good"), _work("10.5555/bad", **bad)])
    run = run_kb(_env(hostile, tmp_path), "add", "10.5555/good", "10.5555/bad")
    assert run.code == 1 and "Traceback" not in run.stderr, run.stderr
    assert "10.5555/bad" in run.stderr and "malformed record" in run.stderr, run.stderr
    assert "added\t10.5555/good" in run.stdout
    assert _rows(tmp_path, "SELECT doi FROM works WHERE doi LIKE '10.5555/%'") == [
        ("10.5555/good",)]


def test_nulls_in_lists_and_a_bogus_date_are_read_sensibly(hostile: HostileServer,
                                                           tmp_path: Path) -> None:
    refs = [None, {"key": "r1", "DOI": "10.5555/cited", "year": None, "author": None}]
    _serve_crossref(hostile, [_work("10.5555/odd", author=None, reference=refs,
                                    issued={"date-parts": [["x", None, 99]]},
                                    published={"date-parts": [[None]]})])
    run = run_kb(_env(hostile, tmp_path), "add", "10.5555/odd")
    assert run.code == 0, run.stderr
    (year,), = _rows(tmp_path, "SELECT year FROM works WHERE doi = '10.5555/odd'")
    assert year is None  # not 99
    assert _rows(tmp_path, "SELECT count(*) FROM citations") == [(1,)]


def test_an_openalex_title_that_is_a_number_fails_that_work(hostile: HostileServer,
                                                            tmp_path: Path) -> None:
    hostile.add("/openalex/works", HostileServer.json(json.dumps({"meta": {}, "results": [
        {"id": "https://openalex.org/W1", "title": 12345, "publication_year": 2020}]})))
    run = run_kb(_env(hostile, tmp_path), "add", "W1")
    assert run.code == 1 and "Traceback" not in run.stderr, run.stderr
    assert "OpenAlex sent a malformed record for https://openalex.org/W1" in run.stderr


def test_idconv_records_null_or_with_nulls(hostile: HostileServer, tmp_path: Path) -> None:
    hostile.add("/idconv", HostileServer.json(b'{"status": "ok", "records": [null, 5]}'))
    _serve_crossref(hostile, [_work("10.5555/good")])
    run = run_kb(_env(hostile, tmp_path), "add", "10.5555/good", "PMC12345")
    assert "Traceback" not in run.stderr, run.stderr
    assert "added\t10.5555/good" in run.stdout and "PMC12345" in run.stderr


def test_deeply_nested_json_ld_in_a_saved_page(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text('<html><head><link rel="canonical" href="https://example.org/a">'
                    '<title>Cord blood in CP</title><script type="application/ld+json">'
                    + "[" * 100000 + "</script></head><body><p>x</p></body></html>")
    run = run_kb({"KB_DB": str(tmp_path / "kb.db"), "KB_OFFLINE": "1"}, "add", str(page))
    assert run.code == 0 and "Traceback" not in run.stderr, run.stderr
    assert _rows(tmp_path, "SELECT title FROM works") == [("Cord blood in CP",)]


def test_a_saved_page_nested_20000_deep_is_read_in_linear_time(tmp_path: Path) -> None:
    depth = 20000
    page = tmp_path / "deep.html"
    page.write_text('<html><head><link rel="canonical" href="https://example.org/deep">'
                    "<title>Deep</title></head><body>" + "<div>" * depth
                    + "References: doi:10.5555/deep.ref" + "</div>" * depth + "</body></html>")
    run = run_kb({"KB_DB": str(tmp_path / "kb.db"), "KB_OFFLINE": "1"}, "add", str(page),
                 timeout=60)
    assert run.code == 0, run.stderr
    assert run.seconds < 15, f"{run.seconds:.1f} s (quadratic: 41 s before)"
    assert _rows(tmp_path, "SELECT count(*) FROM citations") == [(1,)]
