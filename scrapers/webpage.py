"""Web articles (news, blogs, clinic pages): the page as a ``web-article`` work and its
reference list as citations.

:func:`parse_page` reads the title (``og:title``, ``<title>``, ``<h1>``), site name
(``og:site_name``, JSON-LD publisher, host), date (``article:published_time``,
``<time datetime>``, JSON-LD ``datePublished``, citation/DC meta tags, a ``/2025/03/`` URL path)
and URL (canonical link, the given URL, ``og:url``; in :func:`kb.identifiers.normalize_url` form). References come from a "References" /
"Sources" section (an ordered or unordered list, or ``[1] …`` paragraphs), from lists marked as
references or footnotes, and from doi.org, PubMed and PMC links and bare DOIs anywhere in the
article text. Each reference keeps the text as printed; its DOI, PMID, PMCID or link, and the
first author, year and title when the text follows a common citation style.
"""
from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urljoin, urlsplit

from kb.errors import ParseError
from kb.identifiers import (find_dois, is_url, normalize_doi, normalize_pmcid, normalize_pmid,
                            normalize_url)
from kb.records import AuthorRecord, ReferenceRecord, WorkRecord

__all__ = ["parse_page", "fetch_page", "parse_printed_reference"]

_REF_HEADING = re.compile(
    r"^\s*(?:\d+\.?\s*)?(references?|sources?|bibliography|citations?|works cited|literature cited|"
    r"cited literature|footnotes|notes and references|references and notes|scientific references)"
    r"\s*:?\s*$", re.I)
_REF_CONTAINER = re.compile(r"reference|footnote|citation|bibliograph|endnote", re.I)
_MARKER = re.compile(r"^\s*(?:\[(\d{1,3})\]|(\d{1,3})[.)](?=\s)|\^?(\d{1,3})\s(?=[A-Z]))\s*")
_BACKLINK = re.compile(r"\s*[↩↑^]\s*$")
_YEAR = re.compile(r"\b(1[89]\d{2}|20\d{2})\b")
_URL_DATE = re.compile(r"/((?:19|20)\d{2})/(0[1-9]|1[0-2])(?:/(0[1-9]|[12]\d|3[01]))?(?:/|$)")
_ISO_DATE = re.compile(r"^((?:19|20)\d{2})(?:[-/](\d{2})(?:[-/](\d{2}))?)?")
_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_NOISE = ("script", "style", "noscript", "nav", "footer", "form", "aside", "header", "svg",
          "iframe", "button", "select", "template")
_ARTICLE_TYPES = {"article", "newsarticle", "blogposting", "scholarlyarticle", "webpage",
                  "medicalwebpage", "report", "reportagenewsarticle"}


# -- small text helpers ----------------------------------------------------------------------

def _clean(text: str | None) -> str:
    """Collapse whitespace (including non-breaking spaces) to single spaces."""
    return re.sub(r"\s+", " ", (text or "").replace("\xa0", " ")).strip()


def _meta(soup: Any, *keys: str) -> str | None:
    """The content of the first ``<meta property|name=key>`` present, in the order given."""
    for key in keys:
        tag = soup.find("meta", attrs={"property": key}) or soup.find(
            "meta", attrs={"name": re.compile(rf"^{re.escape(key)}$", re.I)})
        if tag and _clean(tag.get("content")):
            return _clean(tag.get("content"))
    return None


def _iso_date(text: str | None) -> str | None:
    """The ISO date (year, year-month or full date) at the start of ``text``.

    >>> _iso_date("2025-03-14T09:00:00+00:00"), _iso_date("2021/09/01"), _iso_date("March 2025")
    ('2025-03-14', '2021-09-01', None)
    """
    match = _ISO_DATE.match((text or "").strip())
    if not match:
        return None
    return "-".join(part for part in match.groups() if part)


def _url_date(url: str | None) -> str | None:
    """A date from a dated URL path.

    >>> _url_date("https://cells4life.com/2025/03/fresh-insights-cell-therapy-cerebral-palsy")
    '2025-03'
    >>> _url_date("https://example.org/news/2023/11/07/item"), _url_date("https://x.org/p/2025")
    ('2023-11-07', None)
    """
    match = _URL_DATE.search(urlsplit(url or "").path)
    return "-".join(part for part in match.groups() if part) if match else None


def _json_ld(soup: Any) -> list[dict[str, Any]]:
    """Every JSON-LD object on the page, ``@graph`` members flattened; bad JSON (or JSON
    nested absurdly deep) is skipped."""
    found: list[dict[str, Any]] = []
    for script in soup.find_all("script", attrs={"type": re.compile("ld\\+json", re.I)}):
        try:
            data = json.loads(script.string or script.get_text() or "")
        except (ValueError, RecursionError):  # bad, or nested deeper than Python recurses
            continue
        stack = data if isinstance(data, list) else [data]
        while stack:
            item = stack.pop(0)
            if isinstance(item, dict):
                found.append(item)
                graph = item.get("@graph")
                if isinstance(graph, list):
                    stack.extend(graph)
    return found


def _ld_types(item: dict[str, Any]) -> set[str]:
    kind = item.get("@type")
    kinds = kind if isinstance(kind, list) else [kind]
    return {str(k).lower() for k in kinds if k}


def _ld_name(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, dict):
        value = value.get("name")
    return _clean(value) if isinstance(value, str) and _clean(value) else None


def _person(name: str) -> AuthorRecord:
    """A by-line name as an author: "Given Family" split, anything else kept whole.

    >>> _person("Jane Q. Smith"), _person("Cells4Life Team")
    ({'family': 'Smith', 'given': 'Jane Q.'}, {'name': 'Cells4Life Team'})
    """
    words = name.split()
    if 2 <= len(words) <= 4 and all(re.fullmatch(r"[^\W\d_][\w'’.-]*", w) for w in words) \
            and not re.search(r"\b(team|staff|editor|editors|admin|news|desk|press)\b", name, re.I):
        return {"family": words[-1], "given": " ".join(words[:-1])}
    return {"name": name}


# -- the page --------------------------------------------------------------------------------

def _title(soup: Any, site: str | None, ld: list[dict[str, Any]]) -> str | None:
    title = _meta(soup, "og:title", "twitter:title", "citation_title", "dc.title")
    if not title and soup.title and _clean(soup.title.get_text()):
        title = _strip_site(_clean(soup.title.get_text()), site, soup.find("h1"))
    if not title:
        title = next((_clean(i.get("headline")) for i in ld
                      if _ld_types(i) & _ARTICLE_TYPES and isinstance(i.get("headline"), str)),
                     None)
    if not title:
        heading = soup.find("h1")
        title = _clean(heading.get_text(" ")) if heading else None
    return title or None


def _strip_site(title: str, site: str | None, heading: Any) -> str:
    """A ``<title>`` without the site name that pages add before or after the headline.

    >>> _strip_site("Why one trial is not enough | The Neuro Rehab Blog", None, None)
    'Why one trial is not enough'
    >>> _strip_site("Stem cell news – Fresh look at cell types", "Stem cell news", None)
    'Fresh look at cell types'
    """
    parts = [p.strip() for p in re.split(r"\s+[|–—·:-]{1,2}\s+", title) if p.strip()]
    if len(parts) < 2:
        return title
    h1 = _clean(heading.get_text(" ")).lower() if heading is not None else ""
    for part in parts:
        if h1 and part.lower() == h1:
            return part
    if site and parts[0].lower() == site.lower():
        return title.split(parts[0], 1)[1].lstrip(" |–—·:-")
    if site and parts[-1].lower() == site.lower() or re.search(r"\s[|·]\s", title):
        return title[:title.rindex(parts[-1])].rstrip(" |–—·:-")
    return title


def _site(soup: Any, url: str | None, ld: list[dict[str, Any]]) -> str | None:
    site = _meta(soup, "og:site_name", "application-name", "citation_publisher")
    if not site:
        site = next((_ld_name(i.get("publisher")) for i in ld if _ld_name(i.get("publisher"))),
                    None)
    if not site and url:
        host = urlsplit(url).hostname or ""
        site = re.sub(r"^www\d?\.", "", host) or None
    return site


def _date(soup: Any, url: str | None, ld: list[dict[str, Any]]) -> str | None:
    date = _iso_date(_meta(soup, "article:published_time", "citation_publication_date",
                           "citation_date", "dc.date", "dcterms.date", "date", "pubdate"))
    if not date:
        date = next((_iso_date(i.get("datePublished")) for i in ld
                     if isinstance(i.get("datePublished"), str)
                     and _iso_date(i.get("datePublished"))), None)
    if not date:
        for tag in soup.find_all("time"):
            date = _iso_date(tag.get("datetime"))
            if date:
                break
    return date or _url_date(url)


def _canonical(soup: Any, url: str | None) -> str | None:
    link = soup.find("link", rel=lambda rel: rel and "canonical" in rel)
    for candidate in ((link.get("href") if link else None), url, _meta(soup, "og:url")):
        if candidate:
            candidate = normalize_url(urljoin(url or "", candidate.strip()))
            if candidate:
                return candidate
    return None


def _authors(soup: Any, ld: list[dict[str, Any]]) -> list[AuthorRecord]:
    """By-line authors from author meta tags, else JSON-LD (organisations kept whole)."""
    found: dict[str, AuthorRecord] = {}
    for tag in soup.find_all("meta", attrs={"name": re.compile(r"^(author|citation_author|"
                                                               r"dc\.creator)$", re.I)}):
        name = _clean(tag.get("content"))
        if name and not is_url(name):
            found.setdefault(name, _person(name))
    for item in ld if not found else []:
        if not _ld_types(item) & _ARTICLE_TYPES:
            continue
        authors = item.get("author")
        for author in authors if isinstance(authors, list) else [authors]:
            ld_name = _ld_name(author)
            if ld_name and not is_url(ld_name):
                organisation = isinstance(author, dict) and "organization" in _ld_types(author)
                found.setdefault(ld_name, {"name": ld_name} if organisation else _person(ld_name))
        if found:
            break
    return list(found.values())


def _content(soup: Any) -> Any:
    """The article body: <article>, <main>, a WordPress entry, or the whole <body>."""
    for selector in ("article", "main", "[role=main]", ".entry-content", ".post-content", "#content"):
        node = soup.select_one(selector)
        if node is not None and len(_clean(node.get_text(" "))) > 200:
            return node
    return soup.body or soup


def parse_page(html: str | bytes, url: str | None = None) -> WorkRecord:
    """Parse one HTML page into a ``web-article`` record with its references.

    :param html: the page (bytes are decoded from the page's own charset declaration).
    :param url: the address the page was read from; the page's canonical link wins.
    :raises ParseError: the input is not an HTML page, or no URL is known for it.
    """
    from bs4 import BeautifulSoup

    head = html[:20000].decode("latin-1") if isinstance(html, bytes) else html[:20000]
    if not re.search(r"<(html|head|body|title|p|div|article)\b", head, re.I):
        raise ParseError("not an HTML page" + (f": {url}" if url else ""))
    soup = BeautifulSoup(html, "lxml")
    text = html.decode(soup.original_encoding or "utf-8", "replace") if isinstance(
        html, bytes) else html
    ld = _json_ld(soup)
    saved_from = re.search(r"<!-- saved from url=\(\d+\)(\S+?) ?-->", head)
    if saved_from and not (url and is_url(url)):
        url = saved_from.group(1)  # a page saved by a browser says where it came from
    page_url = _canonical(soup, url)
    if not page_url:
        raise ParseError("the page names no URL of its own (no canonical link or og:url)",
                         hint="add the page by its address (kb add https://…) instead")
    site = _site(soup, page_url, ld)
    date = _date(soup, page_url, ld)
    record: WorkRecord = {
        "source": "webpage", "source_id": page_url, "source_url": url or page_url,
        "raw": text,
        "url": page_url, "type": "web-article",
        "title": _title(soup, site, ld), "journal": site, "publisher": site,
        "pub_date": date, "year": int(date[:4]) if date else None,
        "abstract": _meta(soup, "og:description", "description", "twitter:description"),
    }
    lang = soup.html.get("lang") if soup.html is not None else None
    if lang and isinstance(lang, str):  # (a multi-valued attribute would be a list)
        record["language"] = lang.split("-")[0].lower()
    authors = _authors(soup, ld)
    if authors:
        record["authors"] = authors
    for tag in soup(_NOISE):
        tag.decompose()
    record["references"] = _references(_content(soup), page_url)
    return {k: v for k, v in record.items() if v not in (None, "")}  # type: ignore[return-value]


def fetch_page(client: Any, url: str) -> WorkRecord:
    """Fetch a web page through ``client`` (:class:`kb.http.Client`) and parse it.

    :raises ParseError: the answer is not HTML (a PDF, JSON, an image …).
    """
    response = client.get(url, headers={"Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5"})
    kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if kind and kind not in ("text/html", "application/xhtml+xml", "text/plain"):
        raise ParseError(f"{url} is {kind}, not a web page")
    return parse_page(response.content, response.url or url)


# -- references ------------------------------------------------------------------------------

def _is_heading(tag: Any) -> bool:
    if tag.name in _HEADINGS:
        return True
    if tag.name in ("p", "div") and tag.find(["strong", "b"]) is not None:
        bold = _clean(" ".join(t.get_text(" ") for t in tag.find_all(["strong", "b"])))
        return bool(bold) and bold == _clean(tag.get_text(" ")) and len(bold) < 80
    return False


def _lines(tag: Any) -> list[Any]:
    """A paragraph split at <br> into separate reference candidates (as soup fragments)."""
    from bs4 import BeautifulSoup

    if tag.find("br") is None:
        return [tag]
    parts = re.split(r"<br\s*/?>", tag.decode_contents(), flags=re.I)
    return [BeautifulSoup(f"<p>{part}</p>", "lxml").p for part in parts if _clean(
        BeautifulSoup(part, "lxml").get_text(" "))]


def _section_items(heading: Any) -> list[Any]:
    """The reference items after a "References" heading, up to the next heading."""
    items: list[Any] = []
    node = heading
    while node is not None and not node.find_next_sibling():
        node = node.parent  # the heading sits in a wrapper; the list follows the wrapper
        if node is None or node.name in ("body", "article", "main", "[document]"):
            return items
    for sibling in node.find_next_siblings():
        if _is_heading(sibling) or sibling.find(_HEADINGS) is not None:
            break
        if sibling.name in ("ol", "ul"):
            items.extend(sibling.find_all("li", recursive=False) or sibling.find_all("li"))
        elif sibling.name in ("div", "section"):
            inner = sibling.find_all("li") or sibling.find_all("p") or [sibling]
            for node in inner:
                items.extend(_lines(node))
        elif sibling.name in ("p", "li", "blockquote"):
            items.extend(_lines(sibling))
    return items


def _short_texts(root: Any, limit: int = 200) -> dict[int, str]:
    """``id(tag)`` -> the tag's text as ``_clean(tag.get_text(" "))`` gives it, for every tag
    under ``root`` whose text is at most ``limit`` characters (a heading's), in one pass from
    the leaves up: linear however deep the page nests (``get_text`` per tag is quadratic)."""
    from bs4 import CData, NavigableString, Tag

    order, stack = [], [root]
    while stack:
        tag = stack.pop()
        order.append(tag)
        stack.extend(child for child in tag.children if isinstance(child, Tag))
    texts: dict[int, str] = {}
    for tag in reversed(order):  # children before their parents
        parts: list[str] = []
        size = 0
        for child in tag.children:
            if isinstance(child, Tag):
                part = texts.get(id(child))
            elif type(child) in (NavigableString, CData):
                part = str(child)
            else:
                continue
            if part is None or size > 4 * limit:
                break
            parts.append(part)
            size += len(part) + 1
        else:
            text = _clean(" ".join(parts))
            if len(text) <= limit:
                texts[id(tag)] = text
    return texts


def _own_heading(tag: Any) -> bool:
    """Whether a tag is a heading candidate in its own right, not a bare wrapper around its
    one child element (of ``<div><div>…References…</div></div>`` only the innermost counts)."""
    from bs4 import Tag

    if tag.name in _HEADINGS + ("strong", "b"):
        return True
    elements = [c for c in tag.children if isinstance(c, Tag)]
    return len(elements) != 1 or any(
        not isinstance(c, Tag) and str(c).strip() for c in tag.children)


def _reference_items(content: Any) -> list[Any]:
    texts = _short_texts(content)
    for heading in content.find_all(lambda t: t.name in _HEADINGS + ("p", "div", "strong", "b")
                                    and id(t) in texts and _REF_HEADING.match(texts[id(t)])
                                    and _own_heading(t)):
        if heading.name in ("strong", "b"):
            heading = heading.parent if _is_heading(heading.parent) else heading
        items = _section_items(heading)
        if items:
            return items
    for container in content.find_all(["ol", "ul", "div", "section"],
                                      attrs={"class": _REF_CONTAINER}) + content.find_all(
            ["ol", "ul", "div", "section"], attrs={"id": _REF_CONTAINER}):
        items = container.find_all("li") or container.find_all("p")
        if items:
            return items
    return []


def _link_ids(href: str) -> dict[str, str]:
    """The identifier a link points at: doi.org, PubMed or PMC.

    >>> _link_ids("https://pubmed.ncbi.nlm.nih.gov/34362453/")
    {'pmid': '34362453'}
    >>> _link_ids("https://www.ncbi.nlm.nih.gov/pmc/articles/PMC8343813/")
    {'pmcid': 'PMC8343813'}
    >>> _link_ids("https://doi.org/10.1186/s12883-022-02636-y")
    {'doi': '10.1186/s12883-022-02636-y'}
    """
    href = href.strip()
    host = (urlsplit(href).hostname or "").lower()
    if host.endswith("doi.org"):
        doi = normalize_doi(href)
        return {"doi": doi} if doi else {}
    pmcid = normalize_pmcid(href)
    if pmcid and "ncbi.nlm.nih.gov" in host:
        return {"pmcid": pmcid}
    pmid = normalize_pmid(href)
    if pmid and "ncbi.nlm.nih.gov" in host:
        return {"pmid": pmid}
    dois = find_dois(href)
    if dois and re.search(r"/doi/(?:abs/|full/|pdf/)?10\.", href):
        return {"doi": dois[0]}  # a publisher's /doi/10.… page
    return {}


def _strip_marker(text: str) -> str:
    return _BACKLINK.sub("", _MARKER.sub("", text, count=1)).strip()


def parse_printed_reference(text: str) -> ReferenceRecord:
    """Ids, first author, year and title from a reference as printed (APA, Harvard,
    Vancouver/AMA styles); anything not recognised is left out.

    >>> ref = parse_printed_reference("Qu, J., et al. (2022). Efficacy and safety of stem cell "
    ...     "therapy in cerebral palsy: A systematic review and meta-analysis. Frontiers in "
    ...     "Bioengineering and Biotechnology, 10. doi:https://doi.org/10.3389/fbioe.2022.1006845")
    >>> ref["doi"], ref["first_author"], ref["year"], ref["title"][:40]
    ('10.3389/fbioe.2022.1006845', 'Qu', 2022, 'Efficacy and safety of stem cell therapy')
    >>> ref = parse_printed_reference("Min K, Song J, Kang JY, et al. Umbilical cord blood therapy "
    ...     "potentiated with erythropoietin for children with cerebral palsy: a double-blind, "
    ...     "randomized, placebo-controlled trial. Stem Cells. 2013;31(3):581-91.")
    >>> ref["first_author"], ref["year"], ref["journal"], ref["volume"], ref["first_page"]
    ('Min', 2013, 'Stem Cells', '31', '581')
    """
    text = _clean(text)
    ref: ReferenceRecord = {"unstructured": text}
    dois = find_dois(text)
    if dois:
        ref["doi"] = dois[0]
    pmid = re.search(r"\bPMID:?\s*(\d{1,9})\b", text, re.I)
    if pmid:
        ref["pmid"] = normalize_pmid(pmid.group(1))
    pmcid = re.search(r"\b(PMC\d{3,9})\b", text)
    if pmcid:
        ref["pmcid"] = normalize_pmcid(pmcid.group(1))
    # strip links and identifiers so they do not look like titles or journals
    body = re.sub(r"(?:doi:?\s*)?https?://\S+|\bdoi:?\s*10\.\S+|\bPMID:?\s*\d+|\bPMCID:?\s*PMC\d+",
                  " ", text, flags=re.I)
    body = _clean(body).rstrip(" .,;")
    apa = re.match(r"^(?P<authors>.+?)\s*\(\s*(?P<year>(?:1[89]|20)\d{2})[a-z]?"
                   r"(?:,[^)]*)?\)\s*[.,:]?\s*(?P<title>.+?)(?:[.?!]\s+(?P<rest>.*)|[.?!]?$)",
                   body)
    if apa:
        ref["year"] = int(apa.group("year"))
        ref["first_author"] = _first_author(apa.group("authors"))
        ref["title"] = apa.group("title").strip()
        rest = apa.group("rest") or ""
        journal = re.match(r"^(?P<journal>[^,.\d][^,]*?),\s*(?P<volume>\d+)(?:\((?P<issue>[^)]*)\))?"
                           r"(?:,\s*(?:pp?\.\s*)?(?P<page>[A-Za-z]?\d+))?", rest)
        if journal:
            ref["journal"] = journal.group("journal").strip()
            ref["volume"] = journal.group("volume")
            if journal.group("page"):
                ref["first_page"] = journal.group("page")
        return ref
    vancouver = re.match(r"^(?P<authors>[^.]+?)\.\s+(?P<title>[^.?!]{12,}[.?!])\s+"
                         r"(?P<journal>[^.;\d][^;\d]*?)\.?\s*(?P<year>(?:1[89]|20)\d{2})"
                         r"[^;:]*?(?:;\s*(?P<volume>\d+)(?:\([^)]*\))?(?::\s*(?P<page>[A-Za-z]?\d+))?)?",
                         body)
    if vancouver:
        ref["year"] = int(vancouver.group("year"))
        ref["first_author"] = _first_author(vancouver.group("authors"))
        ref["title"] = vancouver.group("title").rstrip(".").strip()
        ref["journal"] = vancouver.group("journal").strip().rstrip(".")
        if vancouver.group("volume"):
            ref["volume"] = vancouver.group("volume")
        if vancouver.group("page"):
            ref["first_page"] = vancouver.group("page")
        return ref
    year = _YEAR.search(body)
    if year:
        ref["year"] = int(year.group(1))
    return ref


def _first_author(authors: str) -> str | None:
    """The first author's family name from an author list as printed.

    >>> _first_author("Amanat, M., et al."), _first_author("Min K, Song J, Kang JY, et al")
    ('Amanat', 'Min')
    >>> _first_author("Okur SÇ, Erdoğan S"), _first_author("Parent’s Guide to Cord Blood.")
    ('Okur', 'Parent’s Guide to Cord Blood')
    """
    authors = _clean(authors).rstrip(".,; ")
    first = re.split(r",|;|\s&\s|\sand\s", authors, maxsplit=1)[0].strip()
    words = first.split()
    if len(words) >= 2 and len(words[-1]) <= 3 and words[-1].isupper():  # Vancouver "Min K"
        return " ".join(words[:-1])
    if "," in authors and len(first.split()) <= 3:  # APA "Amanat, M."
        return first
    return first or None


def _item_reference(item: Any, base_url: str) -> ReferenceRecord | None:
    for br in item.find_all("br"):
        br.replace_with(" ")
    text = _strip_marker(_clean(item.get_text()))
    if len(text) < 8:
        return None
    ref = parse_printed_reference(text)
    other_links: list[str] = []
    for anchor in item.find_all("a", href=True):
        href = urljoin(base_url, anchor["href"])
        ids = _link_ids(href)
        for field, value in ids.items():
            ref.setdefault(field, value)  # type: ignore[misc]
        url = normalize_url(href)
        if not ids and url and url != base_url:
            other_links.append(url)
    if not any(ref.get(f) for f in ("doi", "pmid", "pmcid")):
        links: Sequence[str | None] = other_links or [normalize_url(u.rstrip(".,;)"))
                                for u in re.findall(r"https?://\S+", text)]
        if links and links[0]:
            ref["url"] = links[0]  # a cited web page: it becomes a work of its own
    return ref


def _inline_references(content: Any, base_url: str, seen: set[str]) -> list[ReferenceRecord]:
    """doi.org / PubMed / PMC links and bare DOIs in the running text."""
    found: list[ReferenceRecord] = []
    for anchor in content.find_all("a", href=True):
        ids = _link_ids(urljoin(base_url, anchor["href"]))
        if not ids:
            continue
        key = next(iter(ids.items()))
        if f"{key[0]}:{key[1]}" in seen:
            continue
        seen.add(f"{key[0]}:{key[1]}")
        label = _clean(anchor.get_text(" "))
        ref: ReferenceRecord = dict(ids)  # type: ignore[assignment]
        if label and not is_url(label) and not find_dois(label):
            ref["unstructured"] = label
        found.append(ref)
    for doi in find_dois(content.get_text(" ")):
        if f"doi:{doi}" not in seen:
            seen.add(f"doi:{doi}")
            found.append({"doi": doi})
    return found


def _references(content: Any, base_url: str) -> list[ReferenceRecord]:
    refs: list[ReferenceRecord] = []
    seen: set[str] = set()
    for item in _reference_items(content):
        ref = _item_reference(item, base_url)
        if ref is None:
            continue
        refs.append(ref)
        for field in ("doi", "pmid", "pmcid"):
            if ref.get(field):
                seen.add(f"{field}:{ref[field]}")
    refs.extend(_inline_references(content, base_url, seen))
    for position, ref in enumerate(refs, 1):
        ref["position"] = position
    return refs
