"""Parse and normalise the identifiers people paste: DOIs, PMIDs, PMCIDs, OpenAlex ids, URLs,
and trial registry ids (ClinicalTrials.gov, IRCT, ChiCTR, ...).

Pure functions, no I/O. DOIs are stored lower-case without a resolver prefix.
"""
from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import quote, unquote, urlsplit

from .errors import InputError

__all__ = ["Identifier", "classify", "normalize_doi", "normalize_pmid", "normalize_pmcid",
           "normalize_url",
           "normalize_openalex", "parse_identifier", "find_dois", "is_url", "REGISTRIES",
           "registry_of", "registry_url", "find_registry_ids"]

_DOI_PREFIXES = re.compile(
    r"^(?:(?:https?://)?(?:dx\.|www\.)?doi\.org/|doi\s*:\s*|doi\s+|urn:doi:|info:doi/)", re.I)
_DOI_CORE = re.compile(r"^10\.\d{4,9}/[^\s\x00-\x1f\x7f]+$")  # no control characters
_DOI_IN_TEXT = re.compile(r"\b10\.\d{4,9}/[^\s\"'<>]+(?:<[^\s>]*>[^\s\"'<>]*)*", re.I)
_TRAILING = ".,;:)]}>'\""
_PMID_URL = re.compile(r"^(?:https?://)?(?:www\.)?(?:pubmed\.ncbi\.nlm\.nih\.gov|ncbi\.nlm\.nih\.gov/pubmed)/(\d+)/?(?:[?#].*)?$", re.I)
_PMC_URL = re.compile(r"^(?:https?://)?(?:www\.)?(?:pmc\.ncbi\.nlm\.nih\.gov|ncbi\.nlm\.nih\.gov/pmc)/articles/(PMC\d+)/?(?:[?#].*)?$", re.I)
_OPENALEX = re.compile(r"^(?:https?://openalex\.org/|openalex:)?(W\d+)$", re.I)


class Identifier(NamedTuple):
    """A classified identifier: ``kind`` is doi, pmid, pmcid, openalex or url."""

    kind: str
    value: str


def _strip_trailing(doi: str) -> str:
    """Drop punctuation pasted after a DOI, keeping balanced brackets that belong to it."""
    while doi and doi[-1] in _TRAILING:
        closer = doi[-1]
        opener = {")": "(", "]": "[", "}": "{", ">": "<"}.get(closer)
        if opener and doi.count(opener) >= doi.count(closer):
            break
        doi = doi[:-1]
    return doi


def normalize_doi(text: str) -> str | None:
    """Return the canonical (lower-case, bare) DOI in ``text``, or None if it is not a DOI.

    >>> normalize_doi("https://doi.org/10.1186/S13287-021-02513-4")
    '10.1186/s13287-021-02513-4'
    >>> normalize_doi("doi:10.1002/(SICI)1097-4636(199706)35:4<491::AID-JBM9>3.0.CO;2-E.")
    '10.1002/(sici)1097-4636(199706)35:4<491::aid-jbm9>3.0.co;2-e'
    >>> normalize_doi("http://dx.doi.org/10.22074%2Fcellj.2024.2032098.1600")
    '10.22074/cellj.2024.2032098.1600'
    >>> normalize_doi("10.1234") is None
    True
    """
    value = text.strip()
    if "%" in value:
        value = unquote(value)
    value = _DOI_PREFIXES.sub("", value.strip()).strip()
    value = _strip_trailing(value)
    if not _DOI_CORE.match(value):
        return None
    return value.lower()


def normalize_pmid(text: str) -> str | None:
    """Return the PMID in ``text`` (digits, ``pmid:``/``PMID`` prefixes, PubMed URLs), or None.

    >>> normalize_pmid("PMID: 34362453")
    '34362453'
    >>> normalize_pmid("https://pubmed.ncbi.nlm.nih.gov/34362453/")
    '34362453'
    >>> normalize_pmid("0") is None
    True
    """
    value = text.strip()
    match = _PMID_URL.match(value)
    if match:
        value = match.group(1)
    value = re.sub(r"^(?:pmid|pubmed)\s*[:=]?\s*", "", value, flags=re.I)
    if not re.fullmatch(r"\d{1,9}", value) or int(value) == 0:
        return None
    return str(int(value))


def normalize_pmcid(text: str) -> str | None:
    """Return the PMCID (``PMC`` + digits) in ``text``, or None.

    >>> normalize_pmcid("pmc8343813")
    'PMC8343813'
    >>> normalize_pmcid("https://www.ncbi.nlm.nih.gov/pmc/articles/PMC8343813/")
    'PMC8343813'
    """
    value = text.strip()
    match = _PMC_URL.match(value)
    if match:
        value = match.group(1)
    value = re.sub(r"^pmcid\s*:?\s*", "", value, flags=re.I)
    match = re.fullmatch(r"PMC(\d{1,9})(?:\.\d+)?", value, flags=re.I)
    return f"PMC{int(match.group(1))}" if match and int(match.group(1)) else None


def normalize_openalex(text: str) -> str | None:
    """Return the OpenAlex work id (``W…``) in ``text``, or None.

    >>> normalize_openalex("https://openalex.org/W2741809807")
    'W2741809807'
    """
    match = _OPENALEX.match(text.strip())
    return match.group(1).upper() if match else None


def is_url(text: str) -> bool:
    """True for an http(s) URL with a host.

    >>> is_url("https://cells4life.com/2025/03/x"), is_url("10.1/x")
    (True, False)
    """
    parts = urlsplit(text.strip())
    return parts.scheme in ("http", "https") and bool(parts.netloc)


_TRACKING = re.compile(r"^(utm_\w+|fbclid|gclid|mc_cid|mc_eid|_ga|ref|ref_src)$", re.I)


def normalize_url(text: str) -> str | None:
    """The form a web page's URL is stored in, so one page is one work: scheme and host
    lower-case, no default port, fragment, tracking parameters or trailing slash.

    >>> normalize_url("HTTPS://Cells4Life.com:443/2025/03/fresh-insights/?utm_source=x#refs")
    'https://cells4life.com/2025/03/fresh-insights'
    >>> normalize_url("https://example.org/"), normalize_url("https://x.org/a?id=3&ref=home")
    ('https://example.org/', 'https://x.org/a?id=3')
    >>> normalize_url("not a url") is None
    True
    """
    from urllib.parse import urlunsplit

    if not is_url(text):
        return None
    parts = urlsplit(text.strip())
    host = (parts.hostname or "").lower()
    if parts.port and (parts.scheme, parts.port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{parts.port}"
    query = "&".join(p for p in parts.query.split("&")
                     if p and not _TRACKING.match(p.split("=", 1)[0]))
    path = parts.path.rstrip("/") or "/"
    return urlunsplit((parts.scheme.lower(), host, path, query, ""))


def classify(text: str) -> Identifier | None:
    """Classify one pasted identifier, or return None if it is none of the known kinds.

    PubMed and PMC URLs and doi.org links are recognised before other URLs.

    >>> classify("DOI: 10.3389/FBIOE.2022.1006845")
    Identifier(kind='doi', value='10.3389/fbioe.2022.1006845')
    >>> classify("pmid:36588957")
    Identifier(kind='pmid', value='36588957')
    >>> classify("PMC9794999")
    Identifier(kind='pmcid', value='PMC9794999')
    >>> classify("https://cells4life.com/2025/03/fresh-insights-cell-therapy-cerebral-palsy").kind
    'url'
    >>> classify("hello") is None
    True
    """
    value = text.strip()
    if not value:
        return None
    for kind, normalize in (("doi", normalize_doi), ("pmcid", normalize_pmcid),
                            ("pmid", normalize_pmid), ("openalex", normalize_openalex)):
        normalized = normalize(value)
        if normalized:
            return Identifier(kind, normalized)
    if is_url(value):
        return Identifier("url", value)
    return None


def parse_identifier(text: str) -> Identifier:
    """Like :func:`classify`, but raise :class:`~kb.errors.InputError` naming bad input.

    >>> parse_identifier("10.1234")
    Traceback (most recent call last):
    ...
    kb.errors.InputError: not a DOI, PMID, PMCID, OpenAlex id or URL: '10.1234'
    """
    ident = classify(text)
    if ident is None:
        raise InputError(f"not a DOI, PMID, PMCID, OpenAlex id or URL: {text.strip()!r}")
    return ident


def find_dois(text: str) -> list[str]:
    """Return the distinct DOIs in free text, normalised, in order of appearance.

    >>> find_dois("see doi:10.1186/s12883-022-02636-y. and https://doi.org/10.3389/fbioe.2022.1006845")
    ['10.1186/s12883-022-02636-y', '10.3389/fbioe.2022.1006845']
    """
    found: list[str] = []
    for match in _DOI_IN_TEXT.finditer(text):
        doi = normalize_doi(match.group(0))
        if doi and doi not in found:
            found.append(doi)
    return found


# -- trial registry ids -----------------------------------------------------------------------

#: registry name -> pattern of its trial ids.
REGISTRIES: dict[str, str] = {
    "ClinicalTrials.gov": r"NCT\d{8}",
    "IRCT": r"IRCT\d{6,}N\d+|IRCT\d{10,}",
    "ChiCTR": r"ChiCTR-?(?:[A-Z]{2,4}-)?\d{8,10}",
    "ISRCTN": r"ISRCTN\d{8}",
    "CRiS": r"KCT\d{7}",
    "CTRI": r"CTRI/\d{4}/\d{2,3}/\d{6}",
    "ANZCTR": r"ACTRN\d{14}",
}
#: registry name -> the page of one trial (the id goes in ``{}``).
_REGISTRY_PAGES = {
    "ClinicalTrials.gov": "https://clinicaltrials.gov/study/{}",
    "IRCT": "https://irct.behdasht.gov.ir/search/result?query={}",
    "ChiCTR": "https://www.chictr.org.cn/searchprojEN.html?regno={}",
    "ISRCTN": "https://www.isrctn.com/{}",
    "CRiS": "https://cris.nih.go.kr/cris/search/listDetail.do?searchWord={}",
    "CTRI": "https://ctri.nic.in/Clinicaltrials/advancesearchmain.php?trialno={}",
    "ANZCTR": "https://www.anzctr.org.au/Trial/Registration/TrialReview.aspx?ACTRN={}",
}
_REGISTRY_RE = re.compile("|".join(f"(?P<r{i}>\\b{p}\\b)"
                                    for i, p in enumerate(REGISTRIES.values())))


def registry_of(trial_id: str) -> str | None:
    """The registry a trial id belongs to, or None.

    >>> registry_of("NCT01147653"), registry_of("ChiCTR-TRC-12002568"), registry_of("10.1/x")
    ('ClinicalTrials.gov', 'ChiCTR', None)
    """
    for name, pattern in REGISTRIES.items():
        if re.fullmatch(pattern, trial_id.strip()):
            return name
    return None


def registry_url(trial_id: str) -> str | None:
    """The registry page of a trial id (exactly an id, no spaces around it), or None.

    >>> registry_url("NCT01147653"), registry_url(" NCT01147653")
    ('https://clinicaltrials.gov/study/NCT01147653', None)
    """
    for name, pattern in REGISTRIES.items():
        if re.fullmatch(pattern, trial_id):
            return _REGISTRY_PAGES[name].format(quote(trial_id, safe=""))
    return None


def find_registry_ids(text: str) -> list[str]:
    """Registry ids in ``text``, in order, without repeats (NCT ids upper-cased).

    >>> find_registry_ids("Registered as nct01147653 and IRCT20140528017891N3.")
    ['NCT01147653', 'IRCT20140528017891N3']
    """
    found: list[str] = []
    for match in re.finditer(_REGISTRY_RE, re.sub(r"\b(nct|irct|isrctn|actrn|kct)(\d)",
                                                  lambda m: m.group(1).upper() + m.group(2),
                                                  text or "", flags=re.I)):
        value = match.group(0)
        if value not in found:
            found.append(value)
    return found
