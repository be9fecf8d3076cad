"""Run every benchmark of the project and print one table; keep the latest in bench/RESULTS.md.

Each ``bench/bench_*.py`` exposes ``run() -> list[dict]`` (or ``run(quick=True)``), rows with
``measure``, ``kb``, ``anchor``, ``ratio`` and ``goal``. A bench that fails is reported as a
failed row and the others still run; the exit status is 1 if any failed. RESULTS.md names
the commit and time of each bench's run; a run of some benches (``--only``) keeps the other
benches' rows, and the file's hand-written ``## Notes`` section is kept as written.

    python bench/run.py                 # everything (many minutes: downloads real data sets)
    python bench/run.py --quick         # smaller inputs where a bench supports it
    python bench/run.py --only search   # bench_search.py only (repeatable)
"""
from __future__ import annotations

import argparse
import importlib.util
import inspect
import os
import platform
import sqlite3
import subprocess
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
COLUMNS = ("measure", "kb", "anchor", "ratio", "goal")


def discover(only: list[str] | None = None) -> list[Path]:
    """The bench modules, by name; ``only`` keeps those whose name (without ``bench_``) is
    listed."""
    found = sorted(HERE.glob("bench_*.py"))
    if only:
        wanted = {name.removeprefix("bench_").removesuffix(".py") for name in only}
        unknown = wanted - {p.stem.removeprefix("bench_") for p in found}
        if unknown:
            raise SystemExit(f"no such benchmark: {', '.join(sorted(unknown))} (have: "
                             f"{', '.join(p.stem.removeprefix('bench_') for p in found)})")
        found = [p for p in found if p.stem.removeprefix("bench_") in wanted]
    return found


def _load(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"kb_bench.{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run_one(path: Path, quick: bool) -> tuple[list[dict[str, Any]], str | None, float]:
    """Run one bench module: (rows, error text or None, seconds)."""
    start = time.perf_counter()
    try:
        module = _load(path)
        run = getattr(module, "run", None)
        if run is None:
            raise TypeError(f"{path.name} has no run() function")
        if "quick" in inspect.signature(run).parameters:
            rows = run(quick=quick)
        else:
            rows = run()
        rows = [dict(row) for row in rows or []]
        bad = [row for row in rows if "measure" not in row]
        if bad:
            raise TypeError(f"rows without a measure: {bad[:1]}")
        return rows, None, time.perf_counter() - start
    except BaseException as exc:  # a bench may raise anything, even SystemExit
        if isinstance(exc, KeyboardInterrupt):
            raise
        detail = traceback.format_exc(limit=-3)
        return [], f"{type(exc).__name__}: {exc}\n{detail}", time.perf_counter() - start


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, float):
        if value == 0:
            return "0"
        magnitude = abs(value)
        if magnitude >= 1000:
            return f"{value:,.0f}"
        if magnitude >= 10:
            return f"{value:.1f}"
        if magnitude >= 0.01:
            return f"{value:.3g}"
        return f"{value:.2e}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of the rows (bench, measure, kb, anchor, ratio, goal)."""
    header = ("bench",) + COLUMNS
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in header) + " |")
    return "\n".join(lines)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram() -> str:
    try:
        import psutil
        return f"{psutil.virtual_memory().total / 2**30:.1f} GiB"
    except ImportError:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return f"{pages / 2**30:.1f} GiB"


def machine() -> dict[str, str]:
    """CPU, cores, RAM, OS, Python and SQLite versions."""
    return {"CPU": _cpu_model(), "cores": str(os.cpu_count()), "RAM": _ram(),
            "OS": f"{platform.system()} {platform.release()}",
            "Python": platform.python_version(), "SQLite": sqlite3.sqlite_version}


def commit() -> str:
    """The commit measured: ``git describe --always --dirty`` of this checkout."""
    try:
        done = subprocess.run(["git", "-C", str(HERE.parent), "describe", "--always",
                               "--dirty", "--abbrev=10"], capture_output=True, text=True)
        return done.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def _kept(path: Path, rerun: set[str]) -> tuple[list[str], list[str], str]:
    """From an earlier RESULTS.md: the table lines and run lines of the benches not run again,
    and its hand-written notes (the ``## Notes`` section, kept as written)."""
    if not path.exists():
        return [], [], ""
    text = path.read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| ")
            and not line.startswith("| bench |")
            and line.split("|")[1].strip() not in rerun]
    runs = [line for line in text.split("## Runs", 1)[-1].split("\n## ", 1)[0].splitlines()
            if line.startswith("- `") and line[3:].split("`")[0] not in rerun] \
        if "## Runs" in text else []
    notes = ("## Notes" + text.split("## Notes", 1)[1].split("\n## Machine", 1)[0]
             if "## Notes" in text else "")
    return rows, runs, notes.rstrip() + "\n" if notes else ""


def write_results(path: Path, rows: list[dict[str, Any]], failures: dict[str, str],
                  quick: bool, runs: dict[str, float]) -> None:
    """bench/RESULTS.md: the table (rows of benches not run this time kept from the file),
    when and on which commit each bench ran, failures, the notes, the machine."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    measured = commit()
    old_rows, old_runs, notes = _kept(path, set(runs))
    lines = table(rows).splitlines()
    info = machine()
    parts = ["# Benchmark results", "",
             "`python bench/run.py` (each bench: `--only NAME`). `kb` is kb's figure, `anchor` the "
             "named reference tool measured in the same run of that bench, `ratio` kb / anchor "
             "(see each bench for units).", "",
             "\n".join(lines[:2] + sorted(old_rows + lines[2:],
                                           key=lambda line: line.split("|")[1].strip())),
             "", "## Runs", "",
             *old_runs, *(f"- `{name}`: {stamp}, commit {measured}, {seconds:.0f} s"
                          f"{' (--quick)' if quick else ''}" for name, seconds in runs.items()),
             ""]
    if failures:
        parts += ["## Failed benchmarks", ""]
        for name, error in failures.items():
            parts += [f"- `{name}`: {error.splitlines()[0]}"]
        parts.append("")
    if notes:
        parts += [notes]
    parts += ["## Machine", ""] + [f"- {key}: {value}" for key, value in info.items()] + [""]
    path.write_text("\n".join(parts), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only bench_NAME.py (repeatable)")
    parser.add_argument("--quick", action="store_true",
                        help="smaller inputs where a bench supports it")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md",
                        help="where to write the Markdown results (default bench/RESULTS.md)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(HERE))
    paths = discover(args.only)
    if not paths:
        print("no benchmarks found in bench/", file=sys.stderr)
        return 1
    all_rows: list[dict[str, Any]] = []
    failures: dict[str, str] = {}
    runs: dict[str, float] = {}
    for path in paths:
        name = path.stem.removeprefix("bench_")
        print(f"running {name} …", file=sys.stderr, flush=True)
        rows, error, seconds = run_one(path, args.quick)
        runs[name] = seconds
        if error:
            failures[name] = error
            print(f"  FAILED after {seconds:.1f} s: {error}", file=sys.stderr, flush=True)
            all_rows.append({"bench": name, "measure": "FAILED: " + error.splitlines()[0]})
            continue
        print(f"  {len(rows)} rows in {seconds:.1f} s", file=sys.stderr, flush=True)
        all_rows += [{"bench": name, **row} for row in rows]
    print(table(all_rows))
    if not args.no_write:
        write_results(args.results, all_rows, failures, args.quick, runs)
        print(f"wrote {args.results}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
