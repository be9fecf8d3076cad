"""Registry links: refresh trials from ClinicalTrials.gov (API v2)."""
from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any, NamedTuple

__all__ = ["refresh_registry", "RegistryRefresh"]


class RegistryRefresh(NamedTuple):
    """What :func:`refresh_registry` did: records stored, and NCT ids the registry lacks."""

    stored: tuple[str, ...]
    missing: tuple[str, ...]


def refresh_registry(conn: sqlite3.Connection, client: Any,
                     nct_ids: Iterable[str] | None = None) -> RegistryRefresh:
    """Fetch these NCT records (every NCT id in the KB when None) and store their enrolment,
    phase, status, masking, arms and results publications as ``registry`` facts, and their
    posted results as ``registry`` outcome rows.

    :raises FetchError: ClinicalTrials.gov failed after retries.
    """
    from ..scrapers import ctgov
    from ..store.outcomes import store_registry_outcomes
    from .load import store_registry_trial
    from .outcomes import registry_rows

    if nct_ids is None:
        nct_ids = [r[0] for r in conn.execute(
            "SELECT registry_id FROM trial_registry_ids WHERE registry = 'ClinicalTrials.gov' "
            "ORDER BY registry_id")]
    ncts = sorted(set(nct_ids))
    if not ncts:
        return RegistryRefresh((), ())
    studies, missing = ctgov.fetch_studies(client, ncts)
    stored = []
    for study in studies:
        trial = ctgov.to_trial(study)
        trial_id = store_registry_trial(conn, trial)
        store_registry_outcomes(conn, trial_id, registry_rows(ctgov.parse_results(study)))
        stored.append(trial["registry_id"])
    return RegistryRefresh(tuple(stored), tuple(missing))
