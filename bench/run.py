"""Run every benchmark of the project and print one table; keep the latest in bench/RESULTS.md.

Each ``bench/bench_*.py`` exposes ``run() -> list[dict]`` (or ``run(quick=True)``), rows with
``measure``, ``kb``, ``anchor``, ``ratio`` and ``goal``. A bench that fails is reported as a
failed row and the others still run; the exit status is 1 if any failed.

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


def write_results(path: Path, rows: list[dict[str, Any]], failures: dict[str, str],
                  quick: bool, seconds: float) -> None:
    """bench/RESULTS.md: the table, failures, the machine and the date."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    info = machine()
    parts = ["# Benchmark results", "",
             f"Latest `python bench/run.py{' --quick' if quick else ''}`: {stamp}, "
             f"{seconds:.0f} s in all. `kb` is kb's figure, `anchor` the named reference tool "
             "measured in the same run, `ratio` kb / anchor (see each bench for units).", "",
             table(rows), ""]
    if failures:
        parts += ["## Failed benchmarks", ""]
        for name, error in failures.items():
            parts += [f"- `{name}`: {error.splitlines()[0]}"]
        parts.append("")
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
    began = time.perf_counter()
    for path in paths:
        name = path.stem.removeprefix("bench_")
        print(f"running {name} …", file=sys.stderr, flush=True)
        rows, error, seconds = run_one(path, args.quick)
        if error:
            failures[name] = error
            print(f"  FAILED after {seconds:.1f} s: {error}", file=sys.stderr, flush=True)
            all_rows.append({"bench": name, "measure": "FAILED: " + error.splitlines()[0]})
            continue
        print(f"  {len(rows)} rows in {seconds:.1f} s", file=sys.stderr, flush=True)
        all_rows += [{"bench": name, **row} for row in rows]
    total = time.perf_counter() - began
    print(table(all_rows))
    if not args.no_write:
        write_results(args.results, all_rows, failures, args.quick, total)
        print(f"wrote {args.results}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
