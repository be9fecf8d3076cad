"""Full-text search over the knowledge base (SQLite FTS5, ranked by bm25).

The query language is FTS5's, made forgiving: words, ``"phrases"``, ``AND`` / ``OR`` / ``NOT``
(upper case), brackets, ``prefix*``, ``-word`` for ``NOT word``, and field prefixes
``title:`` ``abstract:`` ``author:`` ``mesh:`` ``keyword:`` ``journal:`` ``trial:`` (PubMed's
``ti:`` ``ab:`` ``au:`` ``mh:`` ``kw:`` ``ta:`` too; ``author:"Amanat M"`` matches initials as
PubMed writes them). Words FTS5 would misread (``UC-MSC``, ``GMFM-88``, ``CD34+``) are quoted
for it. A query that is one DOI, PMID, PMCID or OpenAlex id finds that work. Filters (year,
design, MeSH, cell type) are plain parameterised SQL.

The index (``works_fts``, schema/0009_search.sql) holds each work's title, abstract, keywords,
MeSH, authors, journal and the facts of the trials it reports or pools, so ``GMFM`` finds the
works whose trials measured it.
"""
from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

from ..errors import InputError
from ..store import chunked

__all__ = ["Hit", "SearchResult", "search", "translate", "quote", "parse_years",
           "suggest", "FIELDS"]

#: Field prefixes users may write -> works_fts column.
FIELDS: dict[str, str] = {
    "title": "title", "ti": "title",
    "abstract": "abstract", "ab": "abstract",
    "author": "authors", "authors": "authors", "au": "authors",
    "mesh": "mesh", "mh": "mesh",
    "keyword": "keywords", "keywords": "keywords", "kw": "keywords",
    "journal": "journal", "ta": "journal",
    "trial": "trials", "trials": "trials",
}
#: bm25 column weights, in works_fts column order: title, abstract, keywords, mesh, authors,
#: journal, trials (the facts and outcome instruments of the trials a work reports or pools).
WEIGHTS = (10.0, 1.0, 4.0, 4.0, 3.0, 2.0, 2.0)
_OPERATORS = {"AND", "OR", "NOT"}
_BAREWORD = re.compile(r"\w+\*?")
_TOKEN = re.compile(r'\s+|\(|\)|"(?:[^"]|"")*"\*?|"[^"]*$|[^\s()"]+')
_MARK_OPEN, _MARK_CLOSE = "\x02", "\x03"

@dataclass
class Hit:
    """One search result."""

    id: int
    doi: str | None
    pmid: str | None
    title: str | None
    year: int | None
    journal: str | None
    authors: str
    study_design: str | None
    score: float
    is_retracted: bool
    status: str
    snippet: str = field(repr=False)  # highlights wrapped in \x02 ... \x03
    unverified: bool = False  # rests on a weak source: show, never present as confirmed
    mark: str | None = None  # the evidence layer's flag: RETRACTED, DEPENDS ON RETRACTED, …
    title_marked: str = field(default="", repr=False)  # the title with matches in \x02 … \x03

    def snippet_text(self, before: str = "", after: str = "") -> str:
        """The snippet with each highlighted run wrapped in ``before`` / ``after``."""
        return self.snippet.replace(_MARK_OPEN, before).replace(_MARK_CLOSE, after)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready row (plain-text snippet)."""
        row = asdict(self)
        row["snippet"] = self.snippet_text()
        del row["title_marked"]
        return row


@dataclass
class SearchResult:
    """Hits plus how the query was read: ``fts_query`` is what FTS5 ran, ``suggestions``
    the KB's own words close to query words that found nothing, ``widened`` the words
    --fuzzy added, ``notes`` what the filters could not do."""

    query: str
    fts_query: str
    hits: list[Hit]
    suggestions: list[str] = field(default_factory=list)
    widened: dict[str, list[str]] = field(default_factory=dict)
    #: what the user should know about the filters: a filter with no data behind it, works
    #: without a year that --year left out
    notes: list[str] = field(default_factory=list)
    #: the works found by an identifier (DOI, PMID, PMCID, OpenAlex id) rather than by words
    by_identifier: bool = False


# -- reading the query ----------------------------------------------------------------------

def quote(text: str) -> str:
    """Make plain text safe for FTS5: every word becomes a quoted term (all must match).

    >>> quote('UC-MSC cells OR')
    '"UC-MSC" "cells" "OR"'
    """
    return " ".join('"' + word.replace('"', '""') + '"' for word in text.split())


def _phrase(text: str) -> str:
    """Text as one FTS5 phrase (its words in order)."""
    return '"' + " ".join(text.split()).replace('"', '""') + '"'


def _term(word: str) -> str:
    """A bare word as FTS5 syntax: kept when FTS5 reads it as one term, quoted otherwise."""
    if _BAREWORD.fullmatch(word):
        return word
    star = "*" if word.endswith("*") and len(word) > 1 else ""
    core = word[:-1] if star else word
    return '"' + core.replace('"', '""') + '"' + star


def _tokens(query: str) -> list[str]:
    tokens = [t for t in _TOKEN.findall(query) if not t.isspace()]
    for token in tokens:
        if token.startswith('"') and (len(token) == 1 or not re.search(r'"\*?$', token[1:])):
            raise InputError(f"the search query {query!r} has an unclosed double quote",
                             hint='close the phrase: "stem cells"')
    return tokens


def translate(query: str, *, alternatives: dict[str, list[str]] | None = None
              ) -> tuple[str, list[str]]:
    """Turn a user query into FTS5 syntax; also return its plain words (for suggestions).
    ``alternatives`` ORs a bare word with other words (``--fuzzy``).

    >>> translate('author:Amanat UC-MSC')
    ('authors:Amanat AND "UC-MSC"', ['Amanat', 'UC-MSC'])
    >>> translate('ti:"cerebral palsy" -autism')[0]
    'title:"cerebral palsy" NOT autism'
    >>> translate('title:(stem OR stromal) cells')[0]
    'title:( stem OR stromal ) AND cells'

    :raises InputError: an unknown field prefix or an unclosed quote.
    """
    out: list[str] = []
    words: list[str] = []
    prefix = ""
    for token in _tokens(query):
        if token.startswith("-") and len(token) > 1 and not prefix:
            out.append("NOT")
            token = token[1:]
        match = re.match(r"^([A-Za-z]+):(.*)$", token)
        if match:
            name, rest = match.group(1).lower(), match.group(2)
            if name not in FIELDS:
                raise InputError(
                    f"unknown search field {match.group(1)!r} in {query!r}",
                    hint="fields are title:, abstract:, author:, mesh:, keyword:, journal:, trial: "
                         f"(or quote the word to search for it: '\"{token}\"')")
            prefix, token = FIELDS[name] + ":", rest
            if not token:  # the field applies to the next token: title:"a b", title:(a OR b)
                continue
        if token in ("(", ")") or token in _OPERATORS:
            out.append(prefix + token)
        elif token.startswith('"'):
            out.append(prefix + (_initials(token) if prefix == "authors:" else token))
            words.extend(token.rstrip("*").strip('"').replace('""', '"').split())
        else:
            term = _term(token)
            if alternatives and alternatives.get(token):
                term = "(" + " OR ".join([term] + [_phrase(a) for a in alternatives[token]]) + ")"
            out.append(prefix + term)
            words.append(token.rstrip("*"))
        prefix = ""
    if prefix:
        raise InputError(f"the field {prefix} in {query!r} has nothing after it",
                         hint='write the words right after it: title:stem or title:"stem cells"')
    return " ".join(_explicit_and(out)), words


def _initials(phrase: str) -> str:
    """PubMed's ``"Family AB"`` as a match for the indexed ``Anna Beth Family``: the initials'
    prefixes then the family name, adjacent and in that order.

    >>> _initials('"Amanat M"'), _initials('"Akbari MG"'), _initials('"Man Amanat"')
    ('(m* + "Amanat")', '(m* + g* + "Akbari")', '"Man Amanat"')
    """
    match = re.fullmatch(r'"(\S(?:.*\S)?) ([A-Z]{1,4})"', phrase)
    if not match:
        return phrase
    family, initials = match.groups()
    return "(" + " + ".join([f"{c.lower()}*" for c in initials] + [_phrase(family)]) + ")"


def _explicit_and(tokens: list[str]) -> list[str]:
    """Write AND between adjacent operands: FTS5 allows the implicit AND only between
    phrases, not next to a bracketed group."""
    out: list[str] = []
    for token in tokens:
        starts_operand = token not in _OPERATORS and token != ")"
        if out and starts_operand and out[-1] not in _OPERATORS and not out[-1].endswith("("):
            out.append("AND")
        out.append(token)
    return out


def parse_years(text: str | None) -> tuple[int | None, int | None]:
    """Read a year or a range: ``2021``, ``2015-2025``, ``2015-`` or ``-2020``.

    >>> parse_years("2015-2025"), parse_years("2021"), parse_years("-2020")
    ((2015, 2025), (2021, 2021), (None, 2020))

    :raises InputError: anything else, or a range that ends before it starts.
    """
    if text is None or not text.strip():
        return None, None
    match = re.fullmatch(r"\s*(\d{4})?\s*(?:([-–:]|\.\.)\s*(\d{4})?)?\s*", text)
    if not match or not (match.group(1) or match.group(3)):
        raise InputError(f"cannot read the year {text!r}",
                         hint="give a year (2021) or a range (2015-2025, 2015-, -2020)")
    start = int(match.group(1)) if match.group(1) else None
    end = int(match.group(3)) if match.group(3) else (None if match.group(2) else start)
    if start is not None and end is not None and end < start:
        raise InputError(f"the year range {text!r} ends before it starts",
                         hint=f"did you mean {end}-{start}?")
    return start, end


def _designs(design: str | Sequence[str] | None) -> list[str]:
    if not design:
        return []
    from ..evidence.design import DESIGNS
    items = design.split(",") if isinstance(design, str) else list(design)
    wanted = [d.strip().lower() for d in items if d.strip()]
    unknown = [d for d in wanted if d not in DESIGNS]
    if unknown:
        raise InputError(f"unknown study design {unknown[0]!r}",
                         hint="designs are " + ", ".join(DESIGNS))
    return wanted


# -- the evidence layer ---------------------------------------------------------------------

def _cell_type_filter(conn: sqlite3.Connection, cell_type: str) -> tuple[str, list[object]]:
    """SQL (and parameters) keeping works about ``cell_type``.

    The name is read with the evidence layer's vocabulary (``WJ-MSC`` and
    ``umbilical cord mesenchymal stem cells`` are both ``UC-MSC``). A work qualifies when it
    reports a trial of that type (``trials`` / ``trial_reports``) or
    when the lexicon finds the type in its title or abstract.
    """
    from ..evidence.screen import may_name_cell_product
    from ..vocabulary import cell_products, values

    names = cell_products(cell_type)
    if not names:
        raise InputError(f"unknown cell type {cell_type!r}",
                         hint=f"one of {', '.join(values('product'))}, a synonym (WJ-MSC, "
                              "CB-MNC, …) or written out: 'cord blood mononuclear cells'")

    def products(text: str | None) -> str:
        # the lexicon is slow (regular expressions): the vocabulary's screen skips the texts
        # that can name no product
        found = cell_products(text) if text and may_name_cell_product(text) else []
        return "|" + "|".join(found) + "|"

    conn.create_function("kb_cell_types", 1, products, deterministic=True)
    found = " OR ".join("instr(kb_cell_types(coalesce(w.title, '') || ' ' || "
                        "coalesce(w.abstract, '')), ?)" for _ in names)
    found = f"({found})"
    keys: list[object] = [f"|{n}|" for n in names]
    product = "coalesce(t.cell_product, t.cell_type)"  # normalised, else as stated
    trials = " OR ".join(f"instr(kb_cell_types({product}), ?)" for _ in names)
    return (f"(w.id IN (SELECT tr.work_id FROM trial_reports tr JOIN trials t ON t.id = "
            f"tr.trial_id WHERE {product} IS NOT NULL AND ({trials})) OR {found})",
            [*keys, *keys])


# -- searching ------------------------------------------------------------------------------

def _year_clauses(year: str | tuple[int | None, int | None] | None
                  ) -> tuple[list[str], list[object]]:
    start, end = parse_years(year) if isinstance(year, str) or year is None else year
    clauses: list[str] = []
    params: list[object] = []
    if start is not None:
        clauses.append("w.year >= ?")
        params.append(start)
    if end is not None:
        clauses.append("w.year <= ?")
        params.append(end)
    return clauses, params


def _filters(conn: sqlite3.Connection, *, design: str | Sequence[str] | None,
             mesh: str | Sequence[str] | None, cell_type: str | None, stubs: bool = True
             ) -> tuple[list[str], list[object], list[str]]:
    """The SQL of the filters other than the year, and notes on filters no data stands behind."""
    clauses: list[str] = [] if stubs else ["w.status = 'full'"]
    params: list[object] = []
    notes: list[str] = []
    designs = _designs(design)
    if designs:
        clauses.append(f"w.study_design IN ({','.join('?' * len(designs))})")
        params.extend(designs)
    terms = [mesh] if isinstance(mesh, str) else list(mesh or [])
    if terms and conn.execute("SELECT 1 FROM mesh LIMIT 1").fetchone() is None:
        notes.append("this KB holds no MeSH headings yet (they come from PubMed: kb add PMID, "
                     "kb pubmed or kb import of PubMed XML), so --mesh matches nothing")
    for term in terms:
        clauses.append("EXISTS (SELECT 1 FROM mesh m WHERE m.work_id = w.id "
                       "AND m.descriptor = ? COLLATE NOCASE)")
        params.append(term.strip())
    if cell_type:
        sql, extra = _cell_type_filter(conn, cell_type.strip())
        clauses.append(sql)
        params.extend(extra)
    return clauses, params, notes


#: A work's completeness (0-8), which scales its bm25 score by up to a third (8 / 24): bm25
#: favours short documents, so a title-only stub would outrank the full record of its work.
_COMPLETENESS = ("((w.year IS NOT NULL) + (w.doi IS NOT NULL) + (w.pmid IS NOT NULL) "
                 "+ (coalesce(w.abstract, '') <> '') + (w.journal IS NOT NULL) "
                 "+ (w.status = 'full') - w.unverified "
                 "+ EXISTS (SELECT 1 FROM work_authors wa WHERE wa.work_id = w.id))")
_COMPLETENESS_SCALE = 24.0
_COLUMNS = ("w.id, w.doi, w.pmid, w.title, w.year, w.journal, "
            "coalesce((SELECT group_concat(name, '; ') FROM (SELECT a.name FROM work_authors wa "
            "JOIN authors a ON a.id = wa.author_id WHERE wa.work_id = w.id ORDER BY wa.position)),"
            " '') AS authors, w.study_design")


def _run(conn: sqlite3.Connection, fts_query: str | None, clauses: list[str],
         params: list[object], limit: int | None) -> list[Hit]:
    """Rank in an inner query, then build snippets for the kept rows only.

    The score is bm25 scaled by the record's completeness, so of two about equally relevant
    works the fuller record goes first: a title-only stub does not outrank the trial report
    it names.
    """
    where = "".join(f" AND {clause}" for clause in clauses)
    limit_sql = " LIMIT ?" if limit is not None else ""
    tail = [limit] if limit is not None else []
    if not fts_query:
        sql = (f"SELECT {_COLUMNS}, 0.0 AS score, w.is_retracted, w.status, w.unverified "
               f"FROM works w WHERE 1{where} "
               f"ORDER BY w.year IS NULL, w.year DESC, w.title COLLATE NOCASE, w.id{limit_sql}")
        args: list[object] = [*params, *tail]
    else:
        weights = ", ".join(str(w) for w in WEIGHTS)
        sql = (f"WITH top AS (SELECT f.rowid AS id, bm25(works_fts, {weights}) * "
               f"(1 + {_COMPLETENESS} / {_COMPLETENESS_SCALE}) AS rank "
               f"FROM works_fts f JOIN works w ON w.id = f.rowid WHERE works_fts MATCH ?{where} "
               f"ORDER BY rank, f.rowid{limit_sql}) "
               f"SELECT {_COLUMNS}, -top.rank, w.is_retracted, w.status, w.unverified "
               "FROM top JOIN works w ON w.id = top.id ORDER BY top.rank, top.id")
        args = [fts_query, *params, *tail]
    try:
        rows = conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError as exc:
        message = str(exc)
        if fts_query and ("fts5" in message or "no such column" in message
                          or "unknown special query" in message):
            raise _query_error(fts_query, message) from exc
        raise
    marks = _marks(conn, [r[0] for r in rows])
    marked = _highlights(conn, fts_query, [r[0] for r in rows]) if fts_query else {}
    return [Hit(id=r[0], doi=r[1], pmid=r[2], title=r[3], year=r[4], journal=r[5],
                authors=r[6] or "", study_design=r[7], score=round(r[8], 3),
                is_retracted=bool(r[9]), status=r[10],
                snippet=_snippet(marked.get(r[0], ())[1:]),
                mark=marks.get(r[0]), title_marked=(marked.get(r[0]) or ("",))[0],
                unverified=bool(r[11]))
            for r in rows]


def _highlights(conn: sqlite3.Connection, fts_query: str, work_ids: list[int]
                ) -> dict[int, tuple[str, ...]]:
    """Every indexed column of these works with the matches between \\x02 and \\x03.

    FTS5's own ``snippet()`` is quadratic in the number of matches in a column (a 390 KB
    title took 48 s); ``highlight()`` is linear, and :func:`_snippet` picks the window.
    """
    if not work_ids:
        return {}
    count = len(WEIGHTS)
    columns = ", ".join(f"highlight(works_fts, {i}, char(2), char(3))" for i in range(count))
    out: dict[int, tuple[str, ...]] = {}
    for chunk in chunked(work_ids):
        for row in conn.execute(f"SELECT rowid, {columns} FROM works_fts WHERE works_fts MATCH ? "
                                f"AND rowid IN ({','.join('?' * len(chunk))})",
                                [fts_query, *chunk]):
            out[row[0]] = tuple(text or "" for text in row[1:])
    return out


def _snippet(columns: Sequence[str], size: int = 14) -> str:
    """The ``size`` words with the most matches in the column that has most (first column
    wins ties), with ``…`` where text was cut; matches stay between \\x02 and \\x03.

    >>> _snippet(["a b \\x02cells\\x03 c d", "x \\x02cells\\x03 and \\x02cells\\x03 y"], size=3)
    '…\\x02cells\\x03 and \\x02cells\\x03…'
    """
    best: tuple[int, int, list[str]] = (0, 0, [])
    for text in columns:
        words = text.split()
        hits = [int(_MARK_OPEN in w) for w in words]
        count = top = start = 0
        for i, hit in enumerate(hits):  # a sliding window: linear in the column's length
            count += hit - (hits[i - size] if i >= size else 0)
            if count > top:
                top, start = count, max(0, i - size + 1)
        if top > best[0]:
            best = (top, start, words)
    found, start, words = best
    if not found:
        return ""
    window = words[start:start + size]
    opened = "".join(words[:start]).count(_MARK_OPEN) > "".join(words[:start]).count(_MARK_CLOSE)
    text = (_MARK_OPEN if opened else "") + " ".join(window)
    if text.count(_MARK_OPEN) > text.count(_MARK_CLOSE):
        text += _MARK_CLOSE
    return ("…" if start else "") + text + ("…" if start + size < len(words) else "")


def _marks(conn: sqlite3.Connection, work_ids: list[int]) -> dict[int, str]:
    """The evidence layer's mark per work (``work_marks``)."""
    if not work_ids:
        return {}
    marks: dict[int, str] = {}
    for chunk in chunked(work_ids):
        marks.update(conn.execute(
            "SELECT work_id, mark FROM work_marks WHERE work_id IN "
            f"(SELECT work_id FROM work_flags WHERE work_id IN ({','.join('?' * len(chunk))}))",
            chunk).fetchall())
    return marks


def _query_error(fts_query: str, message: str) -> InputError:
    detail = message.removeprefix("fts5: ")
    if "syntax error near \"\"" in message:
        reason = "it ends too early (an AND / OR / NOT with nothing after it, or an open bracket)"
    elif "syntax error near \"NOT\"" in message or fts_query.lstrip("( ").startswith("NOT"):
        reason = "NOT needs a word before it (cells NOT autism)"
    elif "syntax error" in message:
        reason = f"FTS5 stopped at {detail.removeprefix('syntax error near ')}"
    elif "no such column" in message:
        reason = f"{detail} (a word before a colon is read as a field)"
    else:
        reason = detail
    return InputError(f"cannot read the search query {fts_query!r}: {reason}",
                      hint="balance brackets and operators, or put the words in double quotes "
                           "to search for them as they are")


def search(conn: sqlite3.Connection, query: str | None, *,
           year: str | tuple[int | None, int | None] | None = None,
           design: str | Sequence[str] | None = None, mesh: str | Sequence[str] | None = None,
           cell_type: str | None = None, limit: int | None = 20, fuzzy: bool = False,
           stubs: bool = True) -> SearchResult:
    """Search the knowledge base; best matches first (bm25, title weighted over abstract).

    With no query, every work passing the filters is listed, newest first. With zero hits,
    ``suggestions`` holds words of the KB close to the query's words; ``fuzzy`` widens every
    word with those close words before searching.

    :param year: ``"2015-2025"``, ``"2021"``, ``"2015-"`` or a ``(start, end)`` pair.
    :param design: a study design (or several, comma-separated or a list).
    :param mesh: a MeSH descriptor (or several, all required), matched case-insensitively.
    :param cell_type: a cell type (UCB-MNC, UC-MSC, BM-MNC, …).
    :param stubs: include works known only from reference lists.
    :raises InputError: a query FTS5 cannot read, a bad year, an unknown design or field.
    """
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be at least 1, not {limit}")
    clauses, params, notes = _filters(conn, design=design, mesh=mesh, cell_type=cell_type,
                                      stubs=stubs)
    years, year_params = _year_clauses(year)
    text = (query or "").strip()
    found = _by_identifier(conn, text)
    if found:
        clauses.append(f"w.id IN ({','.join('?' * len(found))})")
        params.extend(found)
    if not text or found:
        hits = _run(conn, None, clauses + years, params + year_params, limit)
        notes += _dropped(conn, None, clauses, params, years)
        return SearchResult(query=text, fts_query="", hits=hits, notes=notes,
                            by_identifier=bool(found))
    fts_query, words = translate(text)
    widened: dict[str, list[str]] = {}
    if fuzzy:
        fts_query, widened = _widen(conn, text, words)
    hits = _run(conn, fts_query, clauses + years, params + year_params, limit)
    notes += _dropped(conn, fts_query, clauses, params, years)
    suggestions: list[str] = []
    if not hits:
        suggestions = suggest(conn, words)
    return SearchResult(query=text, fts_query=fts_query, hits=hits, suggestions=suggestions,
                        widened=widened, notes=notes)


def _by_identifier(conn: sqlite3.Connection, text: str) -> list[int]:
    """The works a query that is one DOI, PMID, PMCID or OpenAlex id names (none: a word)."""
    from ..identifiers import classify

    ident = classify(text) if text and not any(c.isspace() for c in text) else None
    column = {"doi": "doi", "pmid": "pmid", "pmcid": "pmcid", "openalex": "openalex_id"}.get(
        ident.kind if ident else "")
    if ident is None or column is None:
        return []
    return [row[0] for row in conn.execute(f"SELECT id FROM works WHERE {column} = ?",
                                           (ident.value,))]


def _dropped(conn: sqlite3.Connection, fts_query: str | None, clauses: list[str],
             params: list[object], years: list[str]) -> list[str]:
    """A note on the works that match but have no year, which a year filter leaves out."""
    if not years:
        return []
    where = "".join(f" AND {clause}" for clause in clauses)
    if fts_query:
        sql = ("SELECT count(*) FROM works_fts f JOIN works w ON w.id = f.rowid "
               f"WHERE works_fts MATCH ? AND w.year IS NULL{where}")
        args: list[object] = [fts_query, *params]
    else:
        sql = f"SELECT count(*) FROM works w WHERE w.year IS NULL{where}"
        args = list(params)
    count = conn.execute(sql, args).fetchone()[0]
    if not count:
        return []
    return [f"--year left out {count} matching work{'s' if count != 1 else ''} "
            "with no known year"]


# -- did you mean ---------------------------------------------------------------------------

def _vocab(conn: sqlite3.Connection) -> str:
    """The name of a read-only fts5vocab view of works_fts (made in the temp schema)."""
    conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.kb_works_vocab "
                 "USING fts5vocab(main, works_fts, 'row')")
    return "temp.kb_works_vocab"


def _count(conn: sqlite3.Connection, fts_query: str) -> int:
    return conn.execute("SELECT count(*) FROM (SELECT 1 FROM works_fts WHERE works_fts MATCH ? "
                        "LIMIT 1)", (fts_query,)).fetchone()[0]


def _stem(conn: sqlite3.Connection, word: str) -> str:
    """``word`` as works_fts indexes it (lower case, no diacritics, Porter stem), computed by
    SQLite's own tokenizer in a temporary table."""
    conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.kb_stem USING fts5(word, "
                 "tokenize = 'porter unicode61 remove_diacritics 2')")
    conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.kb_stem_vocab "
                 "USING fts5vocab(temp, kb_stem, 'row')")
    conn.execute("DELETE FROM temp.kb_stem")
    conn.execute("INSERT INTO temp.kb_stem(word) VALUES (?)", (word,))
    terms = [r[0] for r in conn.execute("SELECT term FROM temp.kb_stem_vocab")]
    return terms[0] if len(terms) == 1 else word.lower()


def _close_terms(conn: sqlite3.Connection, word: str, *, limit: int = 3,
                 cutoff: float = 75.0) -> list[str]:
    """Indexed terms (stems) close to ``word``'s stem, most similar then most frequent first.

    Only terms with the same first letter are compared: reading the whole vocabulary of a
    large KB costs more than the search itself, and misspelt first letters are rare.
    """
    from rapidfuzz import fuzz, process

    if len(word) < 4 or not word.isalpha():
        return []
    stem = _stem(conn, word)
    rows = conn.execute(f"SELECT term, doc FROM {_vocab(conn)} WHERE term >= ? AND term < ? "
                        "AND length(term) BETWEEN ? AND ?",
                        (stem[0], stem[0] + "\U0010ffff", max(3, len(stem) - 3),
                         len(stem) + 3)).fetchall()
    docs = {term: doc for term, doc in rows if term != stem}
    found = process.extract(stem, list(docs), scorer=fuzz.ratio, score_cutoff=cutoff,
                            limit=limit * 4)
    found.sort(key=lambda item: (-round(item[1]), -docs[item[0]], item[0]))
    return [term for term, _score, _index in found[:limit]]


def _surface(conn: sqlite3.Connection, term: str) -> str:
    """A word as the KB writes it for an indexed stem (``mesenchym`` → ``mesenchymal``): the
    token at the term's first position in a title or abstract (fts5vocab 'instance')."""
    conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.kb_works_instances "
                 "USING fts5vocab(main, works_fts, 'instance')")
    for column in ("title", "abstract"):
        row = conn.execute("SELECT doc, \"offset\" FROM temp.kb_works_instances "
                           "WHERE term = ? AND col = ? LIMIT 1", (term, column)).fetchone()
        if row is None:
            continue
        text = conn.execute(f"SELECT {column} FROM works_fts WHERE rowid = ?",
                            (row[0],)).fetchone()
        tokens = re.findall(r"[^\W_]+", text[0] if text else "")
        if row[1] < len(tokens):
            return tokens[row[1]].lower()
    return term


def _missing(conn: sqlite3.Connection, words: Iterable[str]) -> list[str]:
    return [w for w in words if quote(w) and w.upper() not in _OPERATORS
            and not _count(conn, quote(w))]


def suggest(conn: sqlite3.Connection, words: Iterable[str], *, limit: int = 5) -> list[str]:
    """"Did you mean" words: for each query word the KB does not contain, close words it does.

    Built on an fts5vocab view of the index and rapidfuzz; each suggestion is shown as the word
    appears in the KB's titles or abstracts.
    """
    out: list[str] = []
    for word in _missing(conn, words):
        for term in _close_terms(conn, word):
            surface = _surface(conn, term)
            if surface not in out and surface.lower() != word.lower():
                out.append(surface)
    return out[:limit]


def _widen(conn: sqlite3.Connection, text: str, words: list[str]) -> tuple[str, dict[str, list[str]]]:
    """The query with every plain word the KB lacks ORed with the KB's words closest to it."""
    widened: dict[str, list[str]] = {}
    for word in _missing(conn, words):
        close = [_surface(conn, term) for term in _close_terms(conn, word, cutoff=80.0)]
        close = [c for c in dict.fromkeys(close) if c != word.lower()]
        if close:
            widened[word] = close
    fts_query = translate(text, alternatives=widened)[0]
    return fts_query, {w: alts for w, alts in widened.items() if f"({_term(w)} OR " in fts_query}
