"""BibTeX / BibLaTeX: a writer whose output bibtexparser and biber read, and a reader for what
Zotero, JabRef, Mendeley and journal sites export (``@string`` macros, ``#`` concatenation,
LaTeX accents and escapes, text before and between entries, style-control entries).

LaTeX becomes Unicode through pylatexenc. The entry scanner is kb's own rather than
bibtexparser 2's: on the real files of ``bench/bench_fidelity.py`` both find the same entries,
but bibtexparser 2.1 leaves a ``@string`` macro joined with ``#`` unresolved (three of
xampl.bib's titles come out as ``"Proc. Fifteenth Annual" # STOC``) and sets aside an entry
that repeats a field, where kb keeps the entry (with the field's last value).
"""
from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from ..errors import ParseError
from ..records import AuthorRecord, WorkRecord
from . import ExportRecord, clean, ids, prune, read_whole, subject_terms, year_of

__all__ = ["read", "write", "latex_to_text", "text_to_latex"]

_TYPES = {"journal-article": "article", "book": "book", "book-chapter": "incollection",
          "proceedings-article": "inproceedings", "dissertation": "phdthesis",
          "report": "techreport"}
_KB_TYPES = {"article": "journal-article", "book": "book", "incollection": "book-chapter",
             "inbook": "book-chapter", "inproceedings": "proceedings-article",
             "conference": "proceedings-article", "phdthesis": "dissertation",
             "mastersthesis": "dissertation", "thesis": "dissertation", "techreport": "report",
             "report": "report", "online": "web-article", "electronic": "web-article",
             "www": "web-article", "dataset": "dataset"}
#: Entry types that configure a bibliography style rather than describe a work.
_CONTROL = frozenset({"ieeetranbstctl"})
_VERBATIM = ("doi", "url", "pmid", "pmcid", "eprint", "issn", "date")
_ESCAPES = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "&": r"\&", "%": r"\%",
            "$": r"\$", "#": r"\#", "_": r"\_", "~": r"\textasciitilde{}",
            "^": r"\textasciicircum{}"}
_MONTHS = {m: str(i) for i, m in enumerate(
    "jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)}
# -- writing --------------------------------------------------------------------------------

def text_to_latex(text: str, *, protect: bool = False) -> str:
    """Escape text for a braced BibTeX value; ``protect`` braces capitalised words (titles).

    >>> text_to_latex("50% of CP & UC-MSC", protect=True)
    '50\\\\% of {CP} \\\\& {UC-MSC}'
    """
    # "--" would read back as a dash: keep the hyphens apart
    escaped = re.sub(r"-(?=-)", "-{}", "".join(_ESCAPES.get(ch, ch) for ch in text))
    if not protect:
        return escaped
    words = escaped.split(" ")
    out = []
    for index, word in enumerate(words):
        letters = re.sub(r"\\[a-z]+\{\}|\\.", "", word)
        if any(c.isupper() for c in (letters if index else letters[1:])):
            out.append("{" + word + "}")
        else:
            out.append(word)
    return " ".join(out)


def _name(author: AuthorRecord) -> str:
    if name := author.get("family"):
        family = text_to_latex(name)
        if " " in name:
            family = "{" + family + "}"
        given = author.get("given")
        return f"{family}, {text_to_latex(given)}" if given else family
    return "{" + text_to_latex(author.get("name") or "") + "}"


def _kind(record: ExportRecord) -> str:
    """The entry type: kb types BibTeX has no type for (a web article, a dataset) are
    ``@misc`` with an ``entrysubtype`` naming kb's type."""
    if kind := record.get("type"):
        return _TYPES.get(kind, "misc")
    return "article" if record.get("journal") else "misc"


def _fields(record: ExportRecord) -> list[tuple[str, str]]:
    fields: list[tuple[str, str]] = []

    def add(name: str, value: object, *, protect: bool = False) -> None:
        if value in (None, "", []):
            return
        text = str(value)
        fields.append((name, text if name in _VERBATIM else text_to_latex(text, protect=protect)))

    add("title", record.get("title"), protect=True)
    authors = [a for a in record.get("authors") or [] if a.get("family") or a.get("name")]
    if authors:
        fields.append(("author", " and ".join(_name(a) for a in authors)))
    kind = _kind(record)
    add({"incollection": "booktitle", "inproceedings": "booktitle"}.get(kind, "journal"),
        record.get("journal"))
    add("shortjournal", record.get("journal_abbrev"))
    add("year", record.get("year"))
    if record.get("pub_date") and record["pub_date"] != str(record.get("year")):
        add("date", record["pub_date"])
    add("volume", record.get("volume"))
    add("number", record.get("issue"))
    if pages := record.get("pages"):
        fields.append(("pages", text_to_latex(pages).replace("-", "--")))
    add("publisher", record.get("publisher"))
    add("issn", record.get("issn"))
    add("doi", record.get("doi"))
    add("pmid", record.get("pmid"))
    add("pmcid", record.get("pmcid"))
    add("url", record.get("url"))
    add("language", record.get("language"))
    terms = subject_terms(record)
    # "; " separates terms that may hold commas (MeSH: "Child, Preschool"); a lone term with a
    # comma gets a trailing ";" so readers that split on commas are not the only option
    add("keywords", "; ".join(terms) + (";" if len(terms) == 1 and "," in terms[0] else ""))
    add("abstract", clean(record.get("abstract")))
    add("note", clean(record.get("note")))
    if kind == "misc" and record.get("type"):
        add("entrysubtype", record["type"])
    if record.get("is_retracted"):
        fields.append(("pubstate", "retracted"))
    return fields


def _entry(record: ExportRecord) -> str:
    kind = _kind(record)
    body = ",\n".join(f"  {name} = {{{value}}}" for name, value in _fields(record))
    return f"@{kind}{{{record['key']},\n{body}\n}}\n"


def write(records: Iterable[ExportRecord], out: TextIO) -> int:
    """Write BibTeX entries (UTF-8, one blank line between entries)."""
    count = 0
    for record in records:
        if count:
            out.write("\n")
        out.write(_entry(record))
        count += 1
    return count


# -- reading --------------------------------------------------------------------------------

def latex_to_text(value: str) -> str:
    r"""LaTeX as Unicode text, decoded by pylatexenc (accents, escapes, math symbols; grouping
    braces and formatting commands dropped, their text kept; unknown macros by name).

    >>> latex_to_text(r"M{\"u}ller \& {\'E}cole {UC-MSC} 50\%")
    'Müller & École UC-MSC 50%'
    >>> latex_to_text(r"Ma{\l}gorzata \c{C}elik \textbackslash{}")
    'Małgorzata Çelik \\'
    >>> latex_to_text(r"\textit{In vivo} TNF-$\alpha$ and CD34\textsuperscript{+} cells")
    'In vivo TNF-α and CD34+ cells'
    >>> latex_to_text(r"{\noopsort{1973b}}1981"), latex_to_text(r"{\TeX}arcana, the \MF{} book")
    ('1981', 'TeXarcana, the MF book')
    """
    if not any(c in value for c in "\\$~%") and "--" not in value:
        return value.replace("{", "").replace("}", "")
    return _decode(value)


@functools.lru_cache(maxsize=4096)
def _decode(value: str) -> str:
    """pylatexenc's reading of a value (about 1 ms each; journals, publishers and months
    repeat, hence the cache)."""
    # BibTeX does not treat % as a comment inside a value; LaTeX would
    value = re.sub(r"(?<!\\)%", r"\\%", value)
    walker_context, converter = _latex()
    context = converter.latex_context
    # an unknown command with an argument formats it (\textsuperscript{+}): keep the argument
    value = _COMMAND_WITH_ARGUMENT.sub(
        lambda m: "" if context.get_macro_spec(m.group(1)) is context.unknown_macro_spec
        else m.group(0), value)
    text = converter.latex_to_text(value, latex_context=walker_context, tolerant_parsing=True)
    return text.replace("\xa0", " ")


_COMMAND_WITH_ARGUMENT = re.compile(r"\\([A-Za-z]+)(?=\{(?!\}))")


@functools.lru_cache(maxsize=1)
def _latex() -> tuple[Any, Any]:
    r"""pylatexenc's parsing context and converter, with the macros BibTeX files use beyond
    LaTeX's: ``\noopsort{…}`` (a sort key, not text) and ``\switchargs{a}{b}`` (``ba``, as
    BibTeX's own example file defines it)."""
    from pylatexenc import latex2text, latexwalker, macrospec
    walker = latexwalker.get_default_latex_context_db()
    walker.add_context_category("bibtex", prepend=True,
                                macros=[macrospec.MacroSpec("noopsort", "{"),
                                        macrospec.MacroSpec("switchargs", "{{")])
    text = latex2text.get_default_latex_context_db()
    # a macro LaTeX does not define is a logo or a house macro (\MF, \AMSTeX, \TUB): its name
    # is the best text there is, where pylatexenc would drop it
    text.set_unknown_macro_spec(latex2text.MacroTextSpec(
        "", simplify_repl=lambda node, **_: node.macroname))
    text.add_context_category("bibtex", prepend=True, macros=[
        latex2text.MacroTextSpec("noopsort", ""),
        latex2text.MacroTextSpec("switchargs", "%(2)s%(1)s"),
        latex2text.MacroTextSpec("textasciicircum", "^"),
        latex2text.MacroTextSpec("textasciitilde", "~")])
    return walker, latex2text.LatexNodes2Text(latex_context=text, math_mode="text")


#: The characters that matter inside a value (the scanner jumps over the rest).
_GROUP_CHAR = re.compile(r'[\\{}"]')


class _Scanner:
    """A cursor over BibTeX text that knows line numbers for errors."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def line(self) -> int:
        return self.text.count("\n", 0, self.pos) + 1

    def fail(self, message: str) -> ParseError:
        return ParseError(f"line {self.line()}: {message}",
                          hint="check the braces and commas of this BibTeX entry")

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        self.skip()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def word(self) -> str:
        self.skip()
        match = re.compile(r"[^\s,={}()#\"]+").match(self.text, self.pos)
        if not match:
            raise self.fail(f"expected a name, found {self.text[self.pos:self.pos + 20]!r}")
        self.pos = match.end()
        return match.group(0)

    def group(self) -> str:
        """The text of a ``{…}`` or ``"…"`` value at the cursor (nested braces kept)."""
        opener, start = self.text[self.pos], self.pos + 1
        depth = 1 if opener == "{" else 0
        index = start
        while (found := _GROUP_CHAR.search(self.text, index)) is not None:
            index = found.start()
            char = self.text[index]
            if char == "\\":
                index += 2
                continue
            if char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if depth == 0 and opener == "{":
                    self.pos = index + 1
                    return self.text[start:index]
            elif char == '"' and opener == '"' and depth == 0:
                self.pos = index + 1
                return self.text[start:index]
            index += 1
        raise self.fail("a value is never closed")

    def value(self, macros: dict[str, str]) -> str:
        parts = []
        while True:
            char = self.peek()
            if char in ('{', '"'):
                parts.append(self.group())
            else:
                name = self.word()
                parts.append(name if name.isdigit() else macros.get(name.lower(), name))
            if self.peek() != "#":
                return "".join(parts)
            self.pos += 1


def _entries(text: str) -> Iterator[tuple[str, str, dict[str, str]]]:
    scanner = _Scanner(text)
    macros = dict(_MONTHS)
    while True:
        at = text.find("@", scanner.pos)
        if at < 0:
            return
        scanner.pos = at + 1
        match = re.compile(r"\s*([A-Za-z]+)\s*([{(])").match(text, scanner.pos)
        if not match:
            continue  # an @ outside an entry (an e-mail address in a comment, ...)
        kind, opener = match.group(1).lower(), match.group(2)
        closer = "}" if opener == "{" else ")"
        scanner.pos = match.end()
        if kind == "comment":
            if opener == "{":
                scanner.pos -= 1
                scanner.group()
            continue
        if kind == "preamble":
            scanner.value(macros)
            scanner.peek()
            scanner.pos += 1
            continue
        if kind == "string":
            name = scanner.word().lower()
            if scanner.peek() != "=":
                raise scanner.fail("expected = in @string")
            scanner.pos += 1
            macros[name] = scanner.value(macros)
            scanner.peek()
            scanner.pos += 1
            continue
        key = ""
        if scanner.peek() not in (",", closer):
            key = scanner.word()
        fields: dict[str, str] = {}
        while True:
            char = scanner.peek()
            if char == ",":
                scanner.pos += 1
                continue
            if char == closer:
                scanner.pos += 1
                break
            if not char:
                raise scanner.fail(f"the entry {key or kind!r} is never closed")
            name = scanner.word().lower()
            if scanner.peek() != "=":
                raise scanner.fail(f"expected = after {name!r} in entry {key!r}")
            scanner.pos += 1
            fields[name] = scanner.value(macros)
        yield kind, key, fields


def _split_authors(value: str) -> list[str]:
    names: list[str] = []
    current: list[str] = []
    depth = 0
    tokens = re.split(r"(\s+and\s+|[{}])", value)
    for token in tokens:
        if token == "{":
            depth += 1
        elif token == "}":
            depth -= 1
        if depth == 0 and re.fullmatch(r"\s+and\s+", token or ""):
            names.append("".join(current))
            current = []
        else:
            current.append(token)
    names.append("".join(current))
    return [n.strip() for n in names if n.strip()]


def _one_group(text: str) -> bool:
    """True when the whole text is one ``{…}`` group (a collective author name)."""
    if not (text.startswith("{") and text.endswith("}")):
        return False
    depth = 0
    for index, char in enumerate(text):
        depth += {"{": 1, "}": -1}.get(char, 0) if text[index - 1:index] != "\\" else 0
        if depth == 0 and index < len(text) - 1:
            return False
    return True


def _author(raw: str) -> AuthorRecord:
    if _one_group(raw):
        return {"name": latex_to_text(raw)}
    parts = [p.strip() for p in re.split(r",(?![^{]*\})", raw)]
    if len(parts) >= 2:
        given = latex_to_text(parts[-1])
        return prune({"family": latex_to_text(parts[0]), "given": given})  # type: ignore[return-value]
    words = re.split(r"\s+(?![^{]*\})", raw)
    if len(words) == 1:
        return {"family": latex_to_text(words[0])}
    return {"family": latex_to_text(words[-1]), "given": latex_to_text(" ".join(words[:-1]))}


def _record(kind: str, fields: dict[str, str]) -> WorkRecord:
    text = {k: clean(latex_to_text(v)) if k not in _VERBATIM else clean(v)
            for k, v in fields.items()}
    pages = text.get("pages")
    pub_date = text.get("date")
    year = text.get("year")
    raw_keywords = text.get("keywords") or ""
    keywords = [k.strip() for k in raw_keywords.split(";" if ";" in raw_keywords else ",")
                if k.strip()]
    record = {
        **ids(text.get("doi"), text.get("pmid"), text.get("pmcid")),
        "type": text.get("entrysubtype") if kind == "misc" and text.get("entrysubtype")
        else _KB_TYPES.get(kind, "other" if kind in ("misc", "unpublished") else None),
        "title": text.get("title"),
        "authors": [_author(a) for a in _split_authors(fields.get("author", ""))
                    if a.strip().lower() != "others"],
        "journal": text.get("journal") or text.get("journaltitle") or text.get("booktitle"),
        "journal_abbrev": text.get("shortjournal"),
        "year": int(year) if year and year.isdigit() else year_of(year) or year_of(pub_date),
        "pub_date": pub_date or (year if year and year.isdigit() else None),
        "volume": text.get("volume"),
        "issue": text.get("number") or text.get("issue"),
        "pages": re.sub(r"\s*(--|–)\s*", "-", pages) if pages else None,
        "publisher": text.get("publisher"),
        "issn": text.get("issn"),
        "url": text.get("url"),
        "language": text.get("language") or text.get("langid"),
        "keywords": keywords,
        "abstract": text.get("abstract"),
        "note": text.get("note"),
        "is_retracted": True if (text.get("pubstate") or "").lower() == "retracted" else None,
    }
    return prune(record)


def read(handle: TextIO) -> Iterator[WorkRecord]:
    """Yield one work record per BibTeX entry (``@string`` and ``@comment`` are handled; text
    outside entries and style control entries such as ``@IEEEtranBSTCTL`` are skipped)."""
    for kind, _key, fields in _entries(read_whole(handle, "BibTeX")):
        if kind not in _CONTROL:
            yield _record(kind, fields)
