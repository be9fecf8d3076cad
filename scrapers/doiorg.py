"""doi.org content negotiation: CSL-JSON for a DOI from the registration agency that holds it.

kb's last resort for a DOI that neither Crossref nor DataCite knows (mEDRA, JaLC, KISTI and the
other agencies that serve CSL-JSON). ``GET {KB_DOI_URL}/{doi}`` with ``Accept:
application/vnd.citationstyles.csl+json`` redirects to the agency's own service, which answers
with one CSL item; :func:`kb.formats.csljson.work_from_item` reads it.
"""
from __future__ import annotations

from typing import Any

from kb.clock import now
from kb.errors import FetchError, ParseError
from kb.formats.csljson import work_from_item
from kb.http import Client, quote_path
from kb.records import WorkRecord
from kb.scrapers import well_formed

__all__ = ["fetch_work", "CSL_JSON"]

CSL_JSON = "application/vnd.citationstyles.csl+json"


def fetch_work(client: Client, doi: str) -> WorkRecord:
    """The agency's CSL-JSON description of ``doi``, as a work record.

    :raises NotFoundError: doi.org does not know the DOI.
    :raises FetchError: the request failed, or the agency does not serve CSL-JSON for it.
    """
    url = client.config.url("doi", quote_path(doi))
    response = client.get(url, headers={"Accept": CSL_JSON})
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if "json" not in content_type:
        raise FetchError(f"doi.org: the agency of {doi} does not serve CSL-JSON "
                         f"(it answered {content_type or 'no content type'})", url=response.url)
    try:
        item: Any = response.json()
        record = well_formed("doi.org", doi, work_from_item, item)
    except (ValueError, ParseError, RecursionError) as exc:
        raise FetchError(f"doi.org: unreadable CSL-JSON for {doi}: {exc}",
                         url=response.url) from None
    if record.get("doi") != doi:
        raise FetchError(f"doi.org answered for {record.get('doi')!r}, not {doi}",
                         url=response.url)
    record.update({"source": "doi.org", "source_id": doi, "source_url": url,
                   "fetched_at": now(), "raw": response.text})
    return record
