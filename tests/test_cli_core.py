"""kb --help, init, stats and the error paths every command shares."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from click.testing import CliRunner

from kb import store
from kb.cli import cli


def test_help_lists_commands_with_one_line_explanations(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    commands = result.output.split("Commands:")[1].strip().splitlines()
    names = [line.split()[0] for line in commands if line.strip()]
    assert {"init", "stats"} <= set(names)
    assert all(len(line.split()) > 2 for line in commands)  # each has an explanation


def test_version(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("kb, version ")


def test_init_then_stats_json(runner: CliRunner, tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    assert runner.invoke(cli, ["--db", str(db), "init"]).exit_code == 0
    conn = store.connect(db)
    store.upsert_work(conn, {"source": "corpus", "doi": "10.1186/s13287-021-02513-4",
                             "title": "Clinical and imaging outcomes", "type": "journal-article",
                             "study_design": "rct",
                             "references": [{"doi": "10.1186/s12883-022-02636-y"}]})
    conn.close()
    result = runner.invoke(cli, ["--db", str(db), "stats", "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["works"] == 2
    assert report["works_by_status"] == {"full": 1, "stub": 1}
    assert report["works_by_design"]["rct"] == 1
    assert (report["citations"], report["citations_resolved"]) == (1, 1)


def test_db_from_env(runner: CliRunner, tmp_path: Path) -> None:
    db = tmp_path / "env.db"
    result = runner.invoke(cli, ["init"], env={"KB_DB": str(db)})
    assert result.exit_code == 0 and db.exists()


def test_missing_db_is_a_clear_error(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["--db", str(tmp_path / "nope.db"), "stats"])
    assert result.exit_code == 2
    assert "no knowledge base at" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "nope.db").exists()


def test_not_sqlite_file_is_refused_unchanged(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "paper.pdf"
    path.write_bytes(b"%PDF-1.4 binary\x00\xff")
    result = runner.invoke(cli, ["--db", str(path), "stats"])
    assert result.exit_code == 2 and "not a SQLite database" in result.output
    assert path.read_bytes() == b"%PDF-1.4 binary\x00\xff"


def test_newer_db_is_refused_unchanged(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {store.latest_version() + 1}")
    raw.close()
    before = path.read_bytes()
    result = runner.invoke(cli, ["--db", str(path), "init"])
    assert result.exit_code == 2 and "newer kb" in result.output
    assert "Traceback" not in result.output and path.read_bytes() == before


def test_unknown_command_and_option_exit_2(runner: CliRunner) -> None:
    assert runner.invoke(cli, ["frobnicate"]).exit_code == 2
    assert runner.invoke(cli, ["stats", "--format", "xml"]).exit_code == 2
