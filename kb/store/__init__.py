"""The one package that writes to the knowledge base.

Map: :mod:`.connection` opens and migrates the file (``schema/``, ``PRAGMA user_version``; WAL,
foreign keys, a busy timeout), runs transactions and keeps ``works_fts`` in step;
:mod:`.works` decides identity and merges records into works; :mod:`.citations` stores
reference lists and citation links (stubs for the works they name); :mod:`.merges` folds one
work into another and undoes it. :mod:`.bulk` (large imports), :mod:`.crawl` (the crawl
frontier), :mod:`.evidence` and :mod:`.outcomes` (trials, facts, outcomes) build on these.
Every write takes the connection first and runs in one transaction (:func:`transaction`).
All of it is plain ``sqlite3``, not sqlite-utils: its writes commit under ``with conn:``, which
would end this transaction early, and its FTS and ``transform`` helpers fit neither the
view-fed ``works_fts`` nor SQL migrations; ``executemany`` is also about three times faster than
``insert_all`` (measured; CONTRIBUTING.md, "Store API").

Identity (:func:`plan_identity`): a record is matched to stored works by DOI, PMID, PMCID or
OpenAlex id (by its own page's URL only when it has none of these), as evidence: a work that
disagrees with it on an identifier is another work (kept, with an ``identity_conflicts`` row),
and a reference's pairing of identifiers never merges two full works. A record whose own
identifiers name two agreeing rows merges them into the older full one (logged in ``merges``,
undone by :func:`unmerge`), moving citations, authors and everything else that points at the
other.

Merge rule (:func:`upsert_work`): per field, the stored value is replaced when the field is empty, or when the new source ranks at
least as high as the source that gave the stored value (a source refreshing its own value counts
as "as high"). Ranks follow :data:`PRECEDENCE` (default :data:`kb.records.SOURCES`:
crossref > pubmed > datacite > doi.org > openalex > corpus > webpage > import > reference),
with a few fields ranked per field (PubMed's abstract, language and ISO abbreviation; OpenAlex's
cited-by count). Precedence lives in one place, :mod:`kb.store.works` (:data:`PRECEDENCE` and
its ``_rank``), which upserts, bulk imports and merges all read. Lists (authors, MeSH, keywords,
publication types) are replaced as a whole by the same rule; accessions and updates accumulate.
Nothing is written when nothing changes, so upserting the same record twice leaves the
database, ``updated_at`` included, as it was.
"""
from __future__ import annotations

from .citations import add_links, link_citation, ref_keys, stub_record
from ..clock import now
from .connection import (chunked, connect, fts_insert, latest_version, migrate, rebuild_fts,
                         sync_fts, sync_fts_of_trials, transaction)
from .merges import merge_works, unmerge
from .works import (PRECEDENCE, UpsertResult, delete_works, new_work_row, plan_identity,
                    set_study_design, set_study_designs, upsert_work, upsert_works)

__all__ = ["chunked", "connect", "migrate", "latest_version", "transaction", "upsert_work", "upsert_works",
           "add_links", "delete_works", "merge_works", "unmerge", "plan_identity",
           "link_citation", "set_study_design", "set_study_designs",
           "rebuild_fts", "sync_fts", "sync_fts_of_trials", "fts_insert", "UpsertResult",
           "PRECEDENCE", "now", "new_work_row", "ref_keys", "stub_record"]
