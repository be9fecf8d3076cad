"""CSL-JSON: the item format of Zotero, citeproc-js / citeproc-py and pandoc.

Standard CSL variables carry the description; kb's study design, retraction flag and MeSH
travel in ``custom`` (as in kb's curated corpus, whose ``custom`` the reader also understands).
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TextIO

from ..errors import ParseError
from ..records import AuthorRecord, WorkRecord
from . import ExportRecord, clean, ids, prune, read_whole, year_of

__all__ = ["read", "write", "work_from_item"]

_TYPES = {"journal-article": "article-journal", "book": "book", "book-chapter": "chapter",
          "proceedings-article": "paper-conference", "dissertation": "thesis",
          "report": "report", "web-article": "webpage", "dataset": "dataset",
          "posted-content": "article"}
_KB_TYPES = {v: k for k, v in _TYPES.items()} | {"article-magazine": "journal-article",
                                                  "article-newspaper": "web-article",
                                                  "post-weblog": "web-article",
                                                  "post": "web-article", "review": "journal-article"}


def _item(record: ExportRecord) -> dict[str, Any]:
    kind = _TYPES.get(record.get("type") or "",
                      "article-journal" if record.get("journal") else "document")
    item: dict[str, Any] = {"id": record["key"], "citation-key": record["key"], "type": kind}
    authors: list[Mapping[str, Any]] = []
    for author in record.get("authors") or []:
        if author.get("family"):
            authors.append(prune({"family": author["family"], "given": author.get("given")}))
        elif author.get("name"):
            authors.append({"literal": author["name"]})
    pub_date = record.get("pub_date") or (str(record["year"]) if record.get("year") else None)
    date_parts = [int(p) for p in pub_date.split("-")] if pub_date else None
    keywords = record.get("keywords") or []
    item.update(prune({
        "title": record.get("title"),
        "author": authors,
        "container-title": record.get("journal"),
        "container-title-short": record.get("journal_abbrev"),
        "issued": {"date-parts": [date_parts]} if date_parts else None,
        "volume": record.get("volume"),
        "issue": record.get("issue"),
        "page": record.get("pages"),
        "publisher": record.get("publisher"),
        "ISSN": record.get("issn"),
        "DOI": record.get("doi"),
        "PMID": record.get("pmid"),
        "PMCID": record.get("pmcid"),
        "URL": record.get("url"),
        "language": record.get("language"),
        "keyword": "; ".join(keywords) + (";" if len(keywords) == 1 and "," in keywords[0]
                                          else "") if keywords else None,
        "abstract": clean(record.get("abstract")),
        "note": record.get("note"),
        "custom": prune({
            "design": record.get("study_design"),
            "retracted": True if record.get("is_retracted") else None,
            "mesh": [prune(dict(m)) for m in record.get("mesh") or []],
            "publication_types": record.get("publication_types"),
            "status": "stub" if record.get("status") == "stub" else None,
        }),
    }))
    return item


def write(records: Iterable[ExportRecord], out: TextIO) -> int:
    """Write a CSL-JSON array (UTF-8, two-space indent)."""
    items = [_item(r) for r in records]
    json.dump(items, out, ensure_ascii=False, indent=2)
    out.write("\n")
    return len(items)


def _date(issued: Any) -> str | None:
    """A CSL date as an ISO partial date; parts are positional (year, month, day) and a part
    that is not a plausible number ends the date.

    >>> _date({"date-parts": [[2021, 8, 6]]}), _date({"date-parts": [["2021", "13"]]})
    ('2021-08-06', '2021')
    >>> _date({"date-parts": [[None, 99]]}), _date({"date-parts": [["x", None, 99]]})
    (None, None)
    """
    if not isinstance(issued, dict):
        return None
    parts = issued.get("date-parts")
    parts = parts[0] if isinstance(parts, list) and parts and isinstance(parts[0], list) else []
    out: list[str] = []
    for part, low, high in zip(parts, (1000, 1, 1), (2999, 12, 31)):
        try:
            number = int(part)
        except (TypeError, ValueError):
            break
        if not low <= number <= high:
            break
        out.append(f"{number:04d}" if not out else f"{number:02d}")
    if out:
        return "-".join(out)
    match = re.match(r"\d{4}(-\d{2}){0,2}", str(issued.get("raw") or issued.get("literal") or ""))
    return match.group(0) if match else None


def _author(author: Any) -> AuthorRecord | None:
    if not isinstance(author, dict):
        return None
    if author.get("family"):
        family = " ".join(p for p in (author.get("non-dropping-particle"), author["family"]) if p)
        return prune({"family": family, "given": author.get("given")})  # type: ignore[return-value]
    if author.get("literal"):
        return {"name": author["literal"]}
    return None


def _keywords(value: Any) -> list[str]:
    if isinstance(value, list):
        return [clean(str(v)) for v in value if clean(str(v))]  # type: ignore[misc]
    text = str(value or "")
    return [k.strip() for k in text.split(";" if ";" in text else ",") if k.strip()]


def _record(item: Any, index: int) -> WorkRecord:
    if not isinstance(item, dict):
        raise ParseError(f"item {index} is not a JSON object")
    custom = item.get("custom")
    if not isinstance(custom, dict):
        custom = {}
    pub_date = _date(item.get("issued"))
    kind = item.get("type")
    mesh = [m for m in custom.get("mesh") or [] if isinstance(m, dict) and m.get("descriptor")]
    record = {
        **ids(item.get("DOI"), item.get("PMID"), item.get("PMCID")),
        "type": _KB_TYPES.get(kind, "other") if kind else None,
        "title": clean(item.get("title")),
        "authors": [a for a in map(_author, item.get("author") or []) if a],
        "journal": clean(item.get("container-title")),
        "journal_abbrev": clean(item.get("container-title-short") or item.get("journalAbbreviation")),
        "year": year_of(pub_date),
        "pub_date": pub_date,
        "volume": clean(str(item["volume"])) if item.get("volume") else None,
        "issue": clean(str(item["issue"])) if item.get("issue") else None,
        "pages": clean(item.get("page")),
        "publisher": clean(item.get("publisher")),
        "issn": clean(item.get("ISSN") if isinstance(item.get("ISSN"), str)
                      else "; ".join(item.get("ISSN") or [])),
        "url": clean(item.get("URL")),
        "language": clean(item.get("language")),
        "keywords": _keywords(item.get("keyword")),
        "abstract": clean(item.get("abstract")),
        "note": clean(item.get("note") or custom.get("note")),
        "study_design": custom.get("design"),
        "is_retracted": True if custom.get("retracted") else None,
        "mesh": mesh,
        "publication_types": [t for t in custom.get("publication_types") or [] if t],
        "status": "stub" if custom.get("status") == "stub" else None,
        "unverified": True if custom.get("unverified") else None,
    }
    item_id = str(item.get("id") or "")
    if not record.get("doi") and not record.get("url"):
        if item_id.startswith("url:"):
            record["url"] = item_id[4:]
        else:
            record.update(ids(doi=item_id))
    if not any(record.get(k) for k in ("doi", "pmid", "pmcid", "url", "title")):
        raise ParseError(f"item {index} has no identifier, URL or title")
    return prune(record)


def work_from_item(item: Any) -> WorkRecord:
    """One CSL-JSON item (as doi.org content negotiation serves it) as a work record,
    without ``source``.

    :raises ParseError: not a CSL item, or one with no identifier, URL or title.
    """
    return _record(item, 1)


def read(handle: TextIO) -> Iterator[WorkRecord]:
    """Yield one work record per CSL-JSON item (an array, or a single item object)."""
    text = read_whole(handle, "CSL-JSON")
    try:
        data = json.loads(text)
    except ValueError as exc:
        try:  # one CSL item per line (JSON Lines of CSL-JSON)
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError:
            raise ParseError(f"not valid JSON: {exc}") from exc
    except RecursionError:
        raise ParseError("JSON nested too deeply to be a list of items") from None
    items = data if isinstance(data, list) else [data]
    for index, item in enumerate(items, 1):
        yield _record(item, index)
