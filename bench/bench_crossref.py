"""Crossref fetching: HTTP requests and wall time per 100 DOIs, kb vs habanero, same server.

Both clients ask the same loopback replay server (tests/replay.py with tests/crossref_fake.py,
which answers in Crossref's JSON shape) for the same DOIs in the same run: kb through
``kb.scrapers.crossref.fetch_works`` (batched ``filter=doi:…``), habanero through
``Crossref(base_url=…).works(ids=[…])`` (one request per DOI). kb runs with its cache off for
the first two rows; the third row is a second kb run over a warm cache (habanero has none).
``--latency`` delays every answer to imitate a real network (Crossref answers in 0.1–0.5 s).

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


def run(dois: int = 100, latency: float = 0.0, quick: bool = False) -> list[dict[str, Any]]:
    """Measure both clients; rows of {measure, kb, anchor, ratio, goal}."""
    from habanero import Crossref

    server = ReplayServer().start()
    try:
        FakeCrossref(server, latency=latency)
        wanted = [f"10.5555/kb-bulk.{n}" for n in range(dois)]
        per100 = 100 / dois
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

    return [
        {"measure": f"HTTP requests per 100 DOIs ({dois} DOIs)",
         "kb": round(kb_requests * per100, 2), "anchor": round(anchor_requests * per100, 2),
         "ratio": _ratio(kb_requests, anchor_requests), "goal": "<= 3 (habanero: 100)"},
        {"measure": f"wall time per 100 DOIs, s (latency {latency:g} s)",
         "kb": round(kb_seconds * per100, 3), "anchor": round(anchor_seconds * per100, 3),
         "ratio": _ratio(kb_seconds, anchor_seconds), "goal": "lower than habanero"},
        {"measure": "HTTP requests per 100 DOIs, second run (cache)",
         "kb": round(kb_cached * per100, 2), "anchor": round(anchor_requests * per100, 2),
         "ratio": _ratio(kb_cached, anchor_requests), "goal": "0"},
    ]


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
