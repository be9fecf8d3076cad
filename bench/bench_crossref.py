"""Crossref fetching: HTTP requests and wall time per 100 DOIs, kb vs habanero, same server.

Both clients ask the same loopback replay server (tests/replay.py with tests/crossref_fake.py,
which answers in Crossref's JSON shape) for the same DOIs in the same run: kb through
``kb.scrapers.crossref.fetch_works`` (batched ``filter=doi:…``), habanero through
``Crossref(base_url=…).works(ids=[…])`` (one request per DOI). kb runs with its cache off for
the first two rows; the third row is a second kb run over a warm cache (habanero has none).
``--latency`` delays every answer to imitate a real network; without it a second round at
0.1 s per answer is measured too.

    python bench/bench_crossref.py [--dois 100] [--latency 0.05]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from kb.config import BASE_URLS, load_config  # noqa: E402
from kb.http import Client  # noqa: E402
from kb.scrapers import crossref  # noqa: E402
from tests.crossref_fake import FakeCrossref  # noqa: E402
from tests.replay import ReplayServer  # noqa: E402


def _ratio(kb: float, anchor: float) -> float | None:
    return round(kb / anchor, 3) if anchor else None


def _measure(dois: int, latency: float) -> dict[str, float]:
    """One round on a fresh server: requests and seconds of both, and kb's cached rerun."""
    from habanero import Crossref

    server = ReplayServer().start()
    try:
        FakeCrossref(server, latency=latency)
        wanted = [f"10.5555/kb-bulk.{n}" for n in range(dois)]
        with tempfile.TemporaryDirectory() as cache:
            env = {var: f"{server.url}/{name}" for name, (var, _) in BASE_URLS.items()}
            env.update({"KB_CACHE_DIR": cache, "KB_MAILTO": "bench@example.org"})
            config = load_config(env)

            start = time.perf_counter()
            with Client(config.with_options(use_cache=False)) as client:
                records, missing = crossref.fetch_works(client, wanted)
            kb_seconds = time.perf_counter() - start
            kb_requests = server.count()
            if len(records) != dois or missing:
                raise RuntimeError(f"kb fetched {len(records)} of {dois} works")

            with Client(config) as client:  # fill the cache, then a second run from it
                crossref.fetch_works(client, wanted)
            with Client(config) as client:
                crossref.fetch_works(client, wanted)
                kb_cached = client.stats["requests"]

        server.requests.clear()
        start = time.perf_counter()
        answers = Crossref(base_url=f"{server.url}/crossref", mailto="bench@example.org",
                           timeout=30).works(ids=wanted)
        anchor_seconds = time.perf_counter() - start
        anchor_requests = server.count()
        if len(answers) != dois or not all(a and a.get("message") for a in answers):
            raise RuntimeError(f"habanero fetched {len(answers)} of {dois} works")
    finally:
        server.stop()
    per100 = 100 / dois
    return {"kb_requests": kb_requests * per100, "anchor_requests": anchor_requests * per100,
            "kb_seconds": kb_seconds * per100, "anchor_seconds": anchor_seconds * per100,
            "kb_cached": kb_cached * per100}


def run(dois: int = 100, latency: float = 0.0, quick: bool = False) -> list[dict[str, Any]]:
    """Measure both clients; rows of {measure, kb, anchor, ratio, goal}. Unless ``quick``, a
    second round adds 0.1 s of latency to every answer (a real network's order of magnitude)."""
    rounds = [latency] if quick or latency else [latency, 0.1]
    results = {delay: _measure(dois, delay) for delay in rounds}
    first = results[latency]
    rows = [{"measure": f"HTTP requests per 100 DOIs ({dois} DOIs)",
             "kb": round(first["kb_requests"], 2), "anchor": round(first["anchor_requests"], 2),
             "ratio": _ratio(first["kb_requests"], first["anchor_requests"]),
             "goal": "<= 3 (habanero: 100)"}]
    for delay, result in results.items():
        rows.append({"measure": f"wall time per 100 DOIs, s (answers delayed {delay:g} s)",
                     "kb": round(result["kb_seconds"], 3),
                     "anchor": round(result["anchor_seconds"], 3),
                     "ratio": _ratio(result["kb_seconds"], result["anchor_seconds"]),
                     "goal": "lower than habanero"})
    rows.append({"measure": "HTTP requests per 100 DOIs, second run (kb: cache; habanero: none)",
                 "kb": round(first["kb_cached"], 2), "anchor": round(first["anchor_requests"], 2),
                 "ratio": _ratio(first["kb_cached"], first["anchor_requests"]), "goal": "0"})
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    columns = ("measure", "kb", "anchor", "ratio", "goal")
    header = ["measure", "kb", "habanero", "ratio", "goal"]
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dois", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.0)
    options = parser.parse_args()
    print(_table(run(options.dois, options.latency)))
