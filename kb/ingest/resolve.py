"""Link citation rows to the works they name, and merge works that are the same paper.

A citation row (table ``citations``) starts unresolved (``cited_id`` NULL) when the reference
carries no identifier the store could match. :func:`resolve` links it, in this order:

1. **by identifier** — the row's DOI, then PMID, PMCID and OpenAlex id, then a DOI, PMID or
   PMCID printed inside the reference text (``… doi:10.1186/…``, ``PMID: 23259143``). An
   identifier that no work has yet becomes a stub work, as the store does for references;
2. **by fuzzy match** of title, year and first author against the works in the KB (rapidfuzz),
   for references with no identifier. Every such link is stored with ``resolved_by='fuzzy'``
   and its score in ``match_score``.

Scoring (:func:`score`): the title similarity is ``rapidfuzz.fuzz.ratio`` of the normalised
titles when the reference has a structured title, otherwise ``fuzz.partial_ratio`` of the
work's title inside the printed reference (the best-aligned substring). From it are taken 3
points when the years differ by one (online vs print year), 12 when both first authors are
known and differ, 4 when the work has no first author to check, 15 when one of the two is a
correction, retraction, reply or comment and the other is not, and 10 when the printed volume
or first page differs from the work's. A year two or more apart, or both volume and first page
different, rejects the candidate. Titles shorter than :data:`SHORT_TITLE` (30) characters need
the same year and first author; titles shorter than 60 need the same year and no conflicting
first author (a mid-length title is often printed inside a longer, different one). Citations
printed without a title, as PubMed often stores them ("Sens Processes. 1977 May;1(3):244-59"),
match on their locator instead: the same volume, first page and journal (title or ISO
abbreviation) score 95 (92 a year off). A candidate is linked when its score reaches
:data:`THRESHOLD` (88) and no other candidate comes within :data:`MARGIN` points of it (else
the row is reported ambiguous).

References printed as author and year only, with "et al" or as "Name (2013)" — "Min et al
[39], 2013 (South Korea, n=105)", the way meta-analyses list their included trials — are
linked only when exactly one work in the KB has that first author and that year; their score
is 90 × the author similarity / 100.

Blocking keeps this linear in the number of references: candidates are the works sharing rare
title words with the reference within a year window of ±1, the works with its volume and first
page, or the works of one first author and year, all read once into memory; only the top few
by shared words are scored.

Duplicate works (same normalised title with the same numbers — "Part II" is not "Part III" —,
same year, same first author, no conflicting identifier) are merged first through
:func:`kb.store.merge_works`, the older row kept.
"""
from __future__ import annotations

import re
import sqlite3
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from .. import store
from ..identifiers import find_dois, normalize_pmcid, normalize_pmid

__all__ = ["resolve", "ResolveReport", "FuzzyLink", "Merge", "Candidate", "ParsedRef",
           "normalize_reference", "reference_identity", "printed_year", "score", "normalize_text",
           "THRESHOLD", "MARGIN", "SHORT_TITLE"]

#: Minimum score (0–100) for a fuzzy link.
THRESHOLD = 88.0
#: A best candidate must beat the runner-up by this much, or the row is left ambiguous.
MARGIN = 3.0
#: Titles shorter than this (normalised characters) need the same year and first author.
SHORT_TITLE = 30
#: Score factor for author–year-only references (never above 90).
AUTHOR_YEAR_WEIGHT = 0.9
#: Title similarity two works need to count as duplicates.
DUPLICATE_TITLE = 95.0

_STOPWORDS = frozenset(
    "the and for with from into its are was were has have had not but can may via per than "
    "that this these those their there which who whom what when where how all any our your "
    "his her one two use used using among after before between during over under within "
    "without about against upon versus study studies".split())
_YEAR = re.compile(r"(?<![\d.])(1[89]\d\d|20\d\d)(?![\d])")
_LEADING_NUMBER = re.compile(r"^\s*(?:\[\s*\d+\s*\]|\(\s*\d+\s*\)|\d+\s*[.)\]]|\d+\s+)\s*")
_ET_AL = re.compile(r"\bet\.?\s*al\b\.?", re.I)
_PMID_IN_TEXT = re.compile(r"\bPMID\s*:?\s*(\d{1,9})\b", re.I)
_PMCID_IN_TEXT = re.compile(r"\bPMC\s*(?:ID)?\s*:?\s*(PMC)?(\d{3,9})\b", re.I)
_URL_IN_TEXT = re.compile(r"https?://[^\s<>\"']+")
_LOCATOR = re.compile(
    r"(?<![\d.:/])(\d{1,4})(?:\s*(?:Suppl|Pt)\.?\s*\d*)?\s*(?:\([^)]{1,12}\))?\s*:\s*"
    r"([A-Za-z]?\d{1,6}[A-Za-z]?)(?![\d/])")
_NAME_YEAR = re.compile(
    r"^[A-Z][\w'’-]+(?:\s+(?:and|&)\s+[A-Z][\w'’-]+)?,?\s*\(?(?:1[89]|20)\d\d\b")
_NOTICE = re.compile(r"\b(?:correction|erratum|corrigendum|retraction|retracted|expression of "
                     r"concern|comment on|reply to|response to)\b")
_MARKUP = re.compile(r"<[^>]+>")
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
_HEAD_END = re.compile(r",|;|\(|\bet\.?\s*al\b|\[|:|\.\s|\s-\s")
_PAGE_END = re.compile(r"[-–—,\s]")
_BRACKETED = re.compile(r"\[[^\]]*\]|\([^)]*\)")
_INITIALS = re.compile(r"^(?:[A-Z]{1,3}|(?:[A-Z]\.\s*){1,3}|[A-Z]\.?-[A-Z]\.?)$")


def normalize_text(text: str | None) -> str:
    """Lower-case ASCII words separated by single spaces (diacritics and markup dropped).

    >>> normalize_text("Mancías-Guerra: <i>Safety</i> & tolerability!")
    'mancias guerra safety tolerability'
    """
    if not text:
        return ""
    if "<" in text:
        text = _MARKUP.sub(" ", text)
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(_NOT_ALNUM.sub(" ", text.lower()).split())


def printed_year(text: str) -> int | None:
    """The first year (1800–2099) printed in ``text``.

    >>> printed_year("Dev Med Child Neurol. 2013 Oct;55(10):885-910.")
    2013
    """
    match = _YEAR.search(text)
    return int(match.group(1)) if match else None


def _tokens(normalized: str) -> set[str]:
    return {t for t in normalized.split()
            if len(t) >= 3 and t not in _STOPWORDS and not t.isdigit()}


@dataclass
class ParsedRef:
    """What a reference says, however it was printed."""

    title: str | None = None        # normalised structured title, when the source gave one
    text: str = ""                  # normalised printed reference (or the structured fields)
    years: frozenset[int] = frozenset()
    first_author: str | None = None  # normalised family name
    author_year_only: bool = False   # no title words at all: "Min et al [39], 2013 (…)"
    volume: str | None = None        # volume and first page: "1977 May;1(3):244-59"
    first_page: str | None = None


def _first_author_of(text: str) -> str | None:
    """The family name a printed reference starts with (numbering stripped)."""
    head = _LEADING_NUMBER.sub("", text).strip()
    head = _HEAD_END.split(head, maxsplit=1)[0].strip()
    words = head.split()
    while len(words) > 1 and _INITIALS.match(words[-1]):
        words.pop()
    while len(words) > 1 and _INITIALS.match(words[0]):
        words.pop(0)  # "J. Smith" style
    name = normalize_text(" ".join(words[:3]))
    return name or None


def _locator(text: str) -> tuple[str | None, str | None] | None:
    """Volume and first page printed as ``31:581`` or ``1(3):244`` (Vancouver, PubMed,
    Springer styles)."""
    match = _LOCATOR.search(text)
    if not match:
        return None
    return _page_key(match.group(1)), _page_key(match.group(2))


def _page_key(value: str | None) -> str | None:
    """A volume or first page for comparison: ``'0244-59'`` → ``'244'``, ``'E12'`` → ``'e12'``.
    """
    if not value:
        return None
    head = _PAGE_END.split(value.strip(), maxsplit=1)[0].lower()
    return head.lstrip("0") or None


def normalize_reference(*, unstructured: str | None = None, title: str | None = None,
                        year: int | None = None, first_author: str | None = None,
                        journal: str | None = None, volume: str | None = None,
                        first_page: str | None = None) -> ParsedRef:
    """Read title, years and first author from a reference's fields and printed text,
    normalised for matching (:func:`score`); parsing identifiers out of a printed reference is
    :func:`kb.scrapers.webpage.parse_printed_reference`'s.

    >>> ref = normalize_reference(unstructured="Min et al [39], 2013 (South Korea, n=105)")
    >>> ref.first_author, sorted(ref.years), ref.author_year_only
    ('min', [2013], True)
    >>> normalize_reference(unstructured="[4] Amanat, M., et al. (2021). Clinical and imaging "
    ...                 "outcomes. Stem Cell Research & Therapy, 12(1).").first_author
    'amanat'
    """
    raw = unstructured or " ".join(str(v) for v in (first_author, year, title, journal) if v)
    years = {year} if year else {int(y) for y in _YEAR.findall(raw)}
    author = normalize_text(first_author) if first_author else (
        _first_author_of(unstructured) if unstructured else None)
    text = normalize_text(raw)
    author_year_only = False
    locator = (_page_key(volume), _page_key(first_page)) if volume and first_page else (
        _locator(unstructured) if unstructured else None)
    if not title and unstructured and not locator and (
            _ET_AL.search(unstructured) or _NAME_YEAR.match(_LEADING_NUMBER.sub("", unstructured))):
        rest = _LEADING_NUMBER.sub("", unstructured)
        rest = _ET_AL.sub(" ", _BRACKETED.sub(" ", rest))
        words = [w for w in normalize_text(rest).split() if not w.isdigit()]
        if author:
            for part in author.split():
                if part in words:
                    words.remove(part)
        author_year_only = bool(author) and bool(years) and len(
            [w for w in words if len(w) > 2]) <= 1
    return ParsedRef(title=normalize_text(title) or None, text=text, years=frozenset(years),
                     first_author=author or None, author_year_only=author_year_only,
                     volume=locator[0] if locator else None,
                     first_page=locator[1] if locator else None)



def reference_identity(ref: ParsedRef) -> tuple[Any, ...] | None:
    """What two references without identifiers must share to count as naming one work
    (:func:`kb.query.gaps.gaps` groups unlinked references by it), strictest evidence first: a
    structured title and year; the printed head (first author, or the journal in PubMed's
    citation style), year, volume and first page; else the whole normalised text. None for
    what cannot identify a work ("Min et al [39], 2013").

    >>> a = normalize_reference(unstructured="Nat Neurosci. 1998 Nov;1(7):610-5")
    >>> b = normalize_reference(unstructured="Nat Neurosci. 1998 Nov;1(7):610-615.")
    >>> reference_identity(a) == reference_identity(b)
    True
    >>> reference_identity(normalize_reference(unstructured="Min et al [39], 2013 (n=105)")) is None
    True
    """
    year = min(ref.years) if ref.years else None
    if ref.title and len(ref.title.split()) >= 3:
        return ("title", ref.title, year)
    if ref.author_year_only or len(ref.text.split()) < 4:
        return None
    if ref.volume and ref.first_page and year:
        return ("locator", ref.first_author, year, ref.volume, ref.first_page)
    return ("text", ref.text)


@dataclass
class Candidate:
    """A work a reference may name."""

    id: int
    title: str             # normalised title (with subtitle)
    year: int | None
    first_author: str | None  # normalised family name
    ids: dict[str, str] = field(default_factory=dict)
    status: str = "full"
    journals: tuple[str, ...] = ()  # normalised journal title and abbreviation
    volume: str | None = None
    first_page: str | None = None


def _author_similarity(ref_author: str, work_author: str) -> float:
    from rapidfuzz import fuzz
    if ref_author == work_author or work_author in ref_author.split() \
            or ref_author.startswith(work_author + " "):
        return 100.0
    # "Abi Chahine" printed as "Chahine", compound names, transliterations
    return max(fuzz.ratio(ref_author, work_author),
               fuzz.partial_ratio(work_author, ref_author) if len(work_author) >= 5 else 0.0)


def _author_in_head(ref: ParsedRef, work_author: str) -> bool:
    """The work's first author printed at the start of the reference text."""
    head = ref.text[:len(work_author) + 40]
    return f" {work_author} " in f" {head} "


def score(ref: ParsedRef, work: Candidate) -> float | None:
    """The match score (0–100) of a reference and a work, or None when they cannot match.

    >>> ref = normalize_reference(unstructured="Min K, Song J, Kang JY et al (2013) Umbilical cord "
    ...     "blood therapy potentiated with erythropoietin for children with cerebral palsy: a "
    ...     "double-blind, randomized, placebo-controlled trial. Stem Cells 31:581-591")
    >>> work = Candidate(1, normalize_text("Umbilical Cord Blood Therapy Potentiated with "
    ...     "Erythropoietin for Children with Cerebral Palsy: A Double-blind, Randomized, "
    ...     "Placebo-Controlled Trial"), 2013, "min")
    >>> score(ref, work)
    100.0
    >>> score(ref, Candidate(2, work.title, 2020, "min")) is None
    True
    """
    penalty = 0.0
    year_match = True
    if ref.years and work.year:
        gap = min(abs(y - work.year) for y in ref.years)
        if gap > 1:
            return None
        if gap == 1:
            penalty += 3.0
            year_match = False
    author_match: bool | None = None
    if ref.first_author and work.first_author:
        author_match = (_author_similarity(ref.first_author, work.first_author) >= 90
                        or _author_in_head(ref, work.first_author))
        if not author_match:
            penalty += 12.0
    elif ref.first_author:
        penalty += 4.0

    if bool(_NOTICE.search(ref.title or ref.text)) != bool(_NOTICE.search(work.title)):
        penalty += 15.0  # a correction, reply or comment names the paper it is about
    if ref.volume and ref.first_page and work.volume and work.first_page:
        differ = (ref.volume != work.volume) + (ref.first_page != work.first_page)
        if differ == 2:
            return None  # printed elsewhere: an erratum, a reprint, another paper
        penalty += 10.0 * differ
    if ref.author_year_only:
        if not (ref.first_author and work.first_author and year_match and ref.years
                and work.year):
            return None
        return round(AUTHOR_YEAR_WEIGHT * _author_similarity(ref.first_author, work.first_author),
                     1)
    located = _locator_score(ref, work, year_match, author_match)
    if not work.title:
        return located
    title_score = _title_score(ref, work, penalty, year_match, author_match)
    if title_score is None or located is None:
        return located if title_score is None else title_score
    return max(located, title_score)


def _locator_score(ref: ParsedRef, work: Candidate, year_match: bool,
                   author_match: bool | None) -> float | None:
    """95 for the same volume, first page and journal (a year off by one: 92); None when the
    locator does not decide."""
    from rapidfuzz import fuzz
    if not (ref.volume and ref.first_page and ref.years and work.year
            and (ref.volume, ref.first_page) == (work.volume, work.first_page)):
        return None
    first_word = ref.text.split(" ", 1)[0]
    if not any(f" {j} " in f" {ref.text} "
               or (len(j) >= 8 and fuzz.partial_ratio(j, ref.text) >= 92)
               or (year_match and j.split(" ", 1)[0] == first_word)  # other abbreviations
               for j in work.journals):
        return None
    head = ref.first_author or ""
    if author_match is False and not any(ref.text.startswith(j) or f" {head} " in f" {j} "
                                         for j in work.journals):
        return None  # another first author (a journal-only citation has none to compare)
    return 95.0 if year_match else 92.0


def _title_score(ref: ParsedRef, work: Candidate, penalty: float, year_match: bool,
                 author_match: bool | None) -> float | None:
    from rapidfuzz import fuzz
    if len(work.title) < SHORT_TITLE and not (author_match and year_match and ref.years):
        return None
    if len(work.title) < 2 * SHORT_TITLE and (author_match is False or not year_match):
        return None  # a mid-length title is often printed inside a longer, different one
    if ref.title:
        similarity = max(fuzz.ratio(ref.title, work.title),
                         fuzz.ratio(ref.title, work.title[:len(ref.title)])
                         if len(work.title) > len(ref.title) + 10 else 0.0)
    elif len(work.title) <= len(ref.text):
        similarity = fuzz.partial_ratio(work.title, ref.text)
    else:
        similarity = fuzz.ratio(work.title, ref.text)
    return round(max(0.0, similarity - penalty), 1)


# -- reading the KB ---------------------------------------------------------------------------

_WORKS_SQL = """
SELECT w.id, w.title, w.subtitle, w.year, w.doi, w.pmid, w.pmcid, w.openalex_id, w.status,
       w.journal, w.journal_abbrev, w.volume, w.pages, coalesce(a.family, a.name) AS first_author
FROM works w
LEFT JOIN work_authors wa ON wa.work_id = w.id AND wa.position = 1
LEFT JOIN authors a ON a.id = wa.author_id
"""


def _load_candidates(conn: sqlite3.Connection) -> dict[int, Candidate]:
    works = {}
    for row in conn.execute(_WORKS_SQL):
        title = normalize_text(" ".join(p for p in (row["title"], row["subtitle"]) if p))
        works[row["id"]] = Candidate(
            row["id"], title, row["year"], normalize_text(row["first_author"]) or None,
            {k: row[k] for k in ("doi", "pmid", "pmcid", "openalex_id") if row[k]},
            row["status"],
            tuple(j for j in (normalize_text(row["journal_abbrev"]), normalize_text(row["journal"]))
                  if j),
            _page_key(row["volume"]), _page_key(row["pages"]))
    return works


class _Index:
    """Title words and first authors of the KB's works, bucketed by year."""

    def __init__(self, works: dict[int, Candidate]) -> None:
        self.works = works
        self.by_word: dict[tuple[str, int | None], list[int]] = defaultdict(list)
        self.by_word_any: dict[str, list[int]] = defaultdict(list)
        self.by_author: dict[tuple[str, int | None], list[int]] = defaultdict(list)
        self.by_locator: dict[tuple[str, str], list[int]] = defaultdict(list)
        self.word_count: dict[int, int] = {}
        for work in works.values():
            words = _tokens(work.title)
            self.word_count[work.id] = len(words)
            for word in words:
                self.by_word[(word, work.year)].append(work.id)
                self.by_word_any[word].append(work.id)
            if work.first_author:
                self.by_author[(work.first_author, work.year)].append(work.id)
            if work.volume and work.first_page:
                self.by_locator[(work.volume, work.first_page)].append(work.id)

    def _postings(self, ref: ParsedRef, word: str) -> Iterable[list[int]]:
        """The works with ``word`` in their title, in the reference's year window (±1, and
        works with no year); every year when the reference prints none."""
        if ref.years:
            years: Iterable[int | None] = {y + d for y in ref.years for d in (-1, 0, 1)}
            return (self.by_word.get((word, year), []) for year in (*years, None))
        return (self.by_word_any.get(word, []),)

    def title_candidates(self, ref: ParsedRef, limit: int = 8) -> list[int]:
        """The works sharing the most title words with the reference (at least two, and 60 %
        of the work's title words); words common in the window are skipped."""
        counts: Counter[int] = Counter()
        cap = 2000 if ref.years else 400
        for word in _tokens(ref.title or ref.text):
            for posting in self._postings(ref, word):
                if posting and len(posting) <= cap:
                    counts.update(posting)
        ranked = []
        for work_id, shared in counts.items():
            if shared >= 2:
                total = self.word_count[work_id]
                if shared >= 0.6 * total:
                    ranked.append((shared / total, shared, work_id))
        ranked.sort(reverse=True)
        return [work_id for _, _, work_id in ranked[:limit]]

    def locator_candidates(self, ref: ParsedRef) -> list[int]:
        """Works with the volume and first page the reference prints."""
        if not (ref.volume and ref.first_page):
            return []
        return self.by_locator.get((ref.volume, ref.first_page), [])

    def author_year_candidates(self, ref: ParsedRef) -> list[int]:
        """Works whose first author is the reference's (whole name, first or last word) and
        whose year is one the reference prints."""
        assert ref.first_author is not None
        parts = ref.first_author.split()
        found: set[int] = set()
        for year in ref.years:
            for name in {ref.first_author, parts[0], parts[-1]}:
                found.update(self.by_author.get((name, year), ()))
        return sorted(found)


# -- the report -------------------------------------------------------------------------------

@dataclass
class FuzzyLink:
    """One reference linked (or, in a dry run, to be linked) by fuzzy match."""

    citation_id: int
    citing_id: int
    reference: str
    work_id: int
    work_title: str | None
    work_doi: str | None
    score: float


@dataclass
class Merge:
    """Two works found to be the same paper."""

    keep_id: int
    drop_id: int
    title: str | None
    year: int | None
    first_author: str | None


@dataclass
class ResolveReport:
    """What :func:`resolve` did (or, with ``dry_run``, would do)."""

    dry_run: bool = False
    examined: int = 0
    by_id: Counter[str] = field(default_factory=Counter)
    stubs_created: int = 0
    fuzzy: list[FuzzyLink] = field(default_factory=list)
    ambiguous: list[tuple[int, str, list[tuple[int, float]]]] = field(default_factory=list)
    merges: list[Merge] = field(default_factory=list)
    unresolved: int = 0
    #: the references left unresolved: (citation id, the reference as shown, the best
    #: candidate's work id and score, when there was one below the threshold)
    left: list[tuple[int, str, int | None, float | None]] = field(default_factory=list)

    @property
    def linked(self) -> int:
        return sum(self.by_id.values()) + len(self.fuzzy)

    def summary(self) -> str:
        verb = "would link" if self.dry_run else "linked"
        ids = ", ".join(f"{n} by {how}" for how, n in sorted(self.by_id.items())) or "none by id"
        return (f"{self.examined} unresolved references examined; {verb} {self.linked} "
                f"({ids}, {len(self.fuzzy)} by fuzzy match); {len(self.ambiguous)} ambiguous; "
                f"{self.unresolved} left unresolved; "
                f"{'would merge' if self.dry_run else 'merged'} {len(self.merges)} duplicate works")


# -- duplicates -------------------------------------------------------------------------------

def _conflicting_ids(a: Candidate, b: Candidate) -> bool:
    return any(a.ids.get(k) and b.ids.get(k) and a.ids[k] != b.ids[k]
               for k in ("doi", "pmid", "pmcid", "openalex_id"))


def _numbers(title: str) -> set[str]:
    """Digits and roman numerals of a title: "Part II" and "Part III" are different papers.

    >>> sorted(_numbers("inheritance of antibody specificity iv control of 2 genes"))
    ['2', 'iv']
    """
    return {w for w in title.split() if w.isdigit() or re.fullmatch(r"[ivxl]+", w)}


def find_duplicates(works: dict[int, Candidate]) -> list[tuple[int, int, float]]:
    """Pairs ``(keep_id, drop_id, similarity)`` of works with the same title, year and first
    author and no conflicting identifier (``keep_id`` is the older row)."""
    from rapidfuzz import fuzz
    blocks: dict[tuple[int, str], list[Candidate]] = defaultdict(list)
    for work in works.values():
        if work.year and work.title and len(work.title) >= SHORT_TITLE and work.first_author:
            blocks[(work.year, work.first_author)].append(work)
    pairs = []
    dropped: set[int] = set()
    for block in blocks.values():
        block.sort(key=lambda w: w.id)
        for i, keep in enumerate(block):
            if keep.id in dropped:
                continue
            for other in block[i + 1:]:
                if other.id in dropped or _conflicting_ids(keep, other):
                    continue
                similarity = fuzz.ratio(keep.title, other.title)
                if similarity >= DUPLICATE_TITLE and _numbers(keep.title) == _numbers(other.title):
                    pairs.append((keep.id, other.id, similarity))
                    dropped.add(other.id)
                    keep.ids = {**other.ids, **keep.ids}
    return pairs


# -- resolving --------------------------------------------------------------------------------

_ID_COLUMNS = (("cited_doi", "doi", "doi"), ("cited_pmid", "pmid", "pmid"),
               ("cited_pmcid", "pmcid", "pmcid"), ("cited_openalex", "openalex_id", "openalex"))


def _ids_in_text(text: str | None) -> list[tuple[str, str, str]]:
    """(works column, value, how) for identifiers printed inside a reference."""
    if not text:
        return []
    found = [("doi", doi, "doi") for doi in find_dois(text)[:1]]
    match = _PMID_IN_TEXT.search(text)
    if match and normalize_pmid(match.group(1)):
        found.append(("pmid", normalize_pmid(match.group(1)), "pmid"))  # type: ignore[arg-type]
    match = _PMCID_IN_TEXT.search(text)
    if match and normalize_pmcid("PMC" + match.group(2)):
        pmcid = normalize_pmcid("PMC" + match.group(2))
        found.append(("pmcid", pmcid, "pmcid"))  # type: ignore[arg-type]
    found += [("url", url.rstrip(".,;)"), "url") for url in _URL_IN_TEXT.findall(text)
              if "doi.org/" not in url]
    return found


def _work_by(conn: sqlite3.Connection, column: str, value: str) -> int | None:
    row = conn.execute(f"SELECT id FROM works WHERE {column} = ?", (value,)).fetchone()
    return row[0] if row else None


def _stub(conn: sqlite3.Connection, row: sqlite3.Row, column: str, value: str) -> int:
    ref = {column: value, **{f: row[f] for f in ("title", "year", "journal", "volume",
                                                 "first_author")}}
    return store.upsert_work(conn, store.stub_record(ref)).work_id  # type: ignore[arg-type]


def _best(ref: ParsedRef, candidate_ids: Iterable[int], works: dict[int, Candidate],
          alias: dict[int, int]) -> list[tuple[float, int]]:
    scored: dict[int, float] = {}
    for work_id in candidate_ids:
        value = score(ref, works[work_id])
        target = alias.get(work_id, work_id)
        if value is not None and value > scored.get(target, -1.0):
            scored[target] = value
    return sorted(((s, w) for w, s in scored.items()), reverse=True)


def resolve(conn: sqlite3.Connection, *, dry_run: bool = False,
            progress: Callable[[int, int], None] | None = None) -> ResolveReport:
    """Merge duplicate works, then link every unresolved citation row that can be linked.

    :param dry_run: decide everything, write nothing; the report says what would happen.
    :param progress: called as ``progress(done, total)`` while references are examined.
    """
    report = ResolveReport(dry_run=dry_run)
    works = _load_candidates(conn)
    alias: dict[int, int] = {}
    for keep_id, drop_id, _ in find_duplicates(works):
        drop = works[drop_id]
        report.merges.append(Merge(keep_id, drop_id, conn.execute(
            "SELECT title FROM works WHERE id = ?", (keep_id,)).fetchone()[0], drop.year,
            drop.first_author))
        alias[drop_id] = keep_id
    if not dry_run and report.merges:
        with store.transaction(conn):
            for merge in report.merges:
                store.merge_works(conn, merge.keep_id, merge.drop_id,
                                  reason="duplicate (title, year, first author)", source="resolve")
        works = _load_candidates(conn)
        alias = {}
    index = _Index(works)

    rows = conn.execute(
        "SELECT id, citing_id, cited_doi, cited_pmid, cited_pmcid, cited_openalex, title, "
        "journal, year, first_author, volume, first_page, unstructured FROM citations "
        "WHERE cited_id IS NULL ORDER BY id").fetchall()
    report.examined = len(rows)
    with nullcontext() if dry_run else store.transaction(conn):  # stubs and links together
        _link_rows(conn, rows, index, works, alias, report, dry_run, progress)
    return report


def _link_rows(conn: sqlite3.Connection, rows: list[sqlite3.Row], index: _Index,
               works: dict[int, Candidate], alias: dict[int, int], report: ResolveReport,
               dry_run: bool, progress: Callable[[int, int], None] | None) -> None:
    """Decide every row (by id, then fuzzy), then write the links unless ``dry_run``."""
    links: list[tuple[int, int, str, float | None]] = []
    for done, row in enumerate(rows, 1):
        if progress and (done % 500 == 0 or done == len(rows)):
            progress(done, len(rows))
        decided = _resolve_by_id(conn, row, report, dry_run)
        if decided is not None:
            links.append((row["id"], decided[0], decided[1], None))
            continue
        ref = normalize_reference(unstructured=row["unstructured"], title=row["title"],
                              year=row["year"], first_author=row["first_author"],
                              journal=row["journal"], volume=row["volume"],
                              first_page=row["first_page"])
        if ref.author_year_only:
            ranked = _best(ref, index.author_year_candidates(ref), works, alias)
            if len(ranked) > 1:  # author-year references need a unique candidate
                report.ambiguous.append((row["id"], _shown(row), [(w, s) for s, w in ranked]))
                continue
        else:
            ranked = _best(ref, [*index.title_candidates(ref), *index.locator_candidates(ref)],
                           works, alias)
        ranked = [(s, w) for s, w in ranked if w != row["citing_id"]]
        if not ranked or ranked[0][0] < (AUTHOR_YEAR_WEIGHT * 90 if ref.author_year_only
                                         else THRESHOLD):
            report.unresolved += 1
            report.left.append((row["id"], _shown(row), ranked[0][1] if ranked else None,
                                ranked[0][0] if ranked else None))
            continue
        if len(ranked) > 1 and ranked[1][0] >= ranked[0][0] - MARGIN \
                and ranked[1][0] >= THRESHOLD:
            report.ambiguous.append((row["id"], _shown(row), [(w, s) for s, w in ranked[:3]]))
            continue
        best_score, work_id = ranked[0]
        work = works[work_id]
        report.fuzzy.append(FuzzyLink(row["id"], row["citing_id"], _shown(row), work_id,
                                      _title(conn, work_id), work.ids.get("doi"), best_score))
        links.append((row["id"], work_id, "fuzzy", best_score))
    if not dry_run:
        for citation_id, work_id, how, value in links:
            store.link_citation(conn, citation_id, work_id, how, value)


def _resolve_by_id(conn: sqlite3.Connection, row: sqlite3.Row, report: ResolveReport,
                   dry_run: bool) -> tuple[int, str] | None:
    """Link by an identifier of the row or printed in it; (work_id, how) or None."""
    ids = [(column, row[attr], how) for attr, column, how in _ID_COLUMNS if row[attr]]
    ids += _ids_in_text(row["unstructured"])
    for column, value, how in ids:
        work_id = _work_by(conn, column, value)
        if work_id is not None and work_id != row["citing_id"]:
            report.by_id[how] += 1
            return work_id, how
    ids = [i for i in ids if i[0] != "url"]  # a page no work has is not made a stub here
    if ids:
        column, value, how = ids[0]
        report.by_id[how] += 1
        report.stubs_created += 1
        return (0 if dry_run else _stub(conn, row, column, value)), how
    return None


def _shown(row: sqlite3.Row) -> str:
    text = row["unstructured"] or " ".join(
        str(row[k]) for k in ("first_author", "year", "title", "journal") if row[k])
    return " ".join(text.split())


def _title(conn: sqlite3.Connection, work_id: int) -> str | None:
    row = conn.execute("SELECT title FROM works WHERE id = ?", (work_id,)).fetchone()
    return row[0] if row else None
