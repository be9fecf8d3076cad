"""Synthetic scholarly services behind a fault-injecting layer, for the reliability tests.

:class:`SyntheticCorpus` is a small, fully determined literature (``n`` works with
``10.5555/kb.NNNN`` DOIs, most with PMIDs, some with PMCIDs, plus PubMed-only works), with a
citation graph, answered over real HTTP in the real shapes of Crossref (singletons and
``filter=doi:…`` lists), DataCite (404s), doi.org RA, E-utilities (esearch, efetch GET and POST,
elink), the PMC ID converter, OpenAlex (singletons, ``doi``/``openalex``/``pmid``/``cites``/
``cited_by`` filters with cursor paging) and OpenCitations (references / citations).

:class:`FaultInjector` sits in front of it: at ``rate`` it answers 429 with Retry-After,
500 / 502 / 503, an HTML error page, a truncated body, an invalid JSON / XML body, or stalls past
the client timeout. Decisions are a pure function of (seed, request, attempt number), so a run is
reproducible whatever the thread interleaving. ``doomed`` identifiers always fail.

:func:`canonical_state` reads a KB into a comparable form: timestamps dropped, row ids replaced by
the identity of what they point at.
"""
from __future__ import annotations

import hashlib
import json
import random
import re
import sqlite3
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote
from xml.sax.saxutils import escape

from tests.replay import Reply, ReplayServer, Request

__all__ = ["Work", "SyntheticCorpus", "FaultInjector", "FAULT_KINDS", "canonical_state",
           "pubmed_file"]

FAULT_KINDS = ("429", "500", "502", "503", "html", "truncate", "invalid", "stall")

_WORDS = ("mesenchymal stromal umbilical cord blood cerebral palsy infusion motor function "
          "gross outcome randomized trial cohort children intrathecal autologous allogeneic "
          "neurological recovery safety efficacy stem cell therapy spastic diplegia").split()
_FAMILIES = ("Amanat Zarrabi Sun Kurtzberg Novak Paton Jensen Romanov Huang Feng Gu Liu "
             "Okur Boruczkowski Rah Min Kang Mancias-Guerra Abi Chahine Nguyen").split()
_GIVEN = ("Maryam Ali Jessica Joanne Iona Madison Arne Yuri Li Mei Hao Kai Seda Dariusz "
          "Woong Kyunghoon Jin Consuelo Nabil Hoa").split()
_JOURNALS = [("Stem Cell Research & Therapy", "Stem Cell Res Ther", "1757-6512"),
             ("BMC Neurology", "BMC Neurol", "1471-2377"),
             ("Cell Journal", "Cell J", "2228-5806"),
             ("Cytotherapy", "Cytotherapy", "1465-3249"),
             ("Developmental Medicine & Child Neurology", "Dev Med Child Neurol", "0012-1622")]
_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


@dataclass
class Work:
    """One synthetic work and what it cites (indices into the corpus, and outside DOIs)."""

    index: int
    doi: str | None
    pmid: str | None
    pmcid: str | None
    openalex: str
    title: str
    year: int
    month: int
    journal: tuple[str, str, str]
    authors: list[tuple[str, str]]
    abstract: str
    cites: list[int] = field(default_factory=list)
    external: list[str] = field(default_factory=list)  # DOIs outside the corpus (stubs)


class SyntheticCorpus:
    """``n`` works with DOIs (every one with a PMID except each 4th; a PMCID on 2 of 3 of
    those) plus ``pubmed_only`` works known only to PubMed, citing earlier works."""

    def __init__(self, n: int = 200, pubmed_only: int = 40, seed: int = 1) -> None:
        rng = random.Random(seed)
        self.works: list[Work] = []
        for i in range(n + pubmed_only):
            has_doi = i < n
            pmid = str(31000000 + i * 7) if (i % 4 != 3 or not has_doi) else None
            pmcid = f"PMC{8000000 + i}" if pmid and has_doi and i % 3 != 0 else None
            words = rng.sample(_WORDS, 6)
            title = f"{words[0].capitalize()} {' '.join(words[1:])}: synthetic study {i}"
            year = 2005 + i % 20
            authors = [(rng.choice(_FAMILIES), rng.choice(_GIVEN))
                       for _ in range(1 + rng.randrange(4))]
            abstract = (f"Background: {' '.join(rng.sample(_WORDS, 8))}. "
                        f"Results: {' '.join(rng.sample(_WORDS, 8))}.")
            work = Work(i, f"10.5555/kb.{i:04d}" if has_doi else None, pmid, pmcid,
                        f"W{4000000000 + i}", title, year, 1 + i % 12, _JOURNALS[i % 5],
                        authors, abstract)
            if i:
                earlier = range(max(0, i - 40), i) if has_doi else range(n)
                work.cites = sorted(rng.sample(list(earlier), min(5, len(earlier))))
            if has_doi and i % 5 == 0:
                work.external = [f"10.5555/ext.{i:04d}"]
            self.works.append(work)
        self.by_doi = {w.doi: w for w in self.works if w.doi}
        self.by_pmid = {w.pmid: w for w in self.works if w.pmid}
        self.by_pmcid = {w.pmcid: w for w in self.works if w.pmcid}
        self.by_openalex = {w.openalex: w for w in self.works}
        self.cited_by: dict[int, list[int]] = {w.index: [] for w in self.works}
        for w in self.works:
            for j in w.cites:
                self.cited_by[j].append(w.index)
        self._histories: dict[str, list[str]] = {}

    # -- handy id lists ----------------------------------------------------------------------

    @property
    def dois(self) -> list[str]:
        return [w.doi for w in self.works if w.doi]

    @property
    def pubmed_only_pmids(self) -> list[str]:
        return [w.pmid for w in self.works if w.pmid and not w.doi]

    def cited_edges(self) -> set[tuple[int, int]]:
        """Every (citing index, cited index) pair inside the corpus."""
        return {(w.index, j) for w in self.works for j in w.cites}

    # -- Crossref ----------------------------------------------------------------------------

    def crossref_work(self, w: Work) -> dict[str, Any]:
        refs: list[dict[str, Any]] = []
        for pos, j in enumerate(w.cites, 1):
            other = self.works[j]
            if other.doi:
                refs.append({"key": f"ref{pos}", "doi-asserted-by": "crossref", "DOI": other.doi,
                             "article-title": other.title, "author": other.authors[0][0],
                             "year": str(other.year), "journal-title": other.journal[0]})
            else:
                refs.append({"key": f"ref{pos}", "unstructured":
                             f"{other.authors[0][0]} {other.authors[0][1][0]}. {other.title}. "
                             f"{other.journal[1]}. {other.year}."})
        for ext in w.external:
            refs.append({"key": f"ref{len(refs) + 1}", "doi-asserted-by": "publisher",
                         "DOI": ext.upper()})
        refs.append({"key": f"ref{len(refs) + 1}",
                     "unstructured": f"World Health Organization. Report {w.index}. Geneva; 2019."})
        date = [[w.year, w.month, 1 + w.index % 28]]
        return {
            "DOI": w.doi, "type": "journal-article", "prefix": "10.5555", "member": "7822",
            "title": [w.title], "subtitle": [], "original-title": [], "short-title": [],
            "author": [{"given": given, "family": family, "sequence": "first" if k == 0
                        else "additional", "affiliation": [{"name": f"University {k}"}],
                        **({"ORCID": f"https://orcid.org/0000-0002-{w.index:04d}-{k:03d}X",
                            "authenticated-orcid": False} if k == 0 and w.index % 2 else {})}
                       for k, (family, given) in enumerate(w.authors)],
            "container-title": [w.journal[0]], "short-container-title": [w.journal[1]],
            "ISSN": [w.journal[2]], "issn-type": [{"value": w.journal[2], "type": "electronic"}],
            "publisher": "Synthetic Press", "issued": {"date-parts": date},
            "published": {"date-parts": date}, "published-online": {"date-parts": date},
            "created": {"date-parts": date, "date-time": f"{w.year}-01-01T00:00:00Z",
                        "timestamp": 0},
            "volume": str(1 + w.index % 30), "issue": str(1 + w.index % 4),
            "page": f"{100 + w.index}-{110 + w.index}",
            "abstract": f"<jats:p>{escape(w.abstract)}</jats:p>",
            "URL": f"https://doi.org/{w.doi}",
            "license": [{"start": {"date-parts": date}, "content-version": "vor",
                         "delay-in-days": 0,
                         "URL": "http://creativecommons.org/licenses/by/4.0/"}],
            "is-referenced-by-count": len(self.cited_by[w.index]),
            "reference-count": len(refs), "references-count": len(refs), "reference": refs,
            "source": "Crossref", "score": 1.0,
        }

    def _crossref(self, request: Request, path: str) -> Reply:
        headers = {"x-api-pool": "polite", "x-rate-limit-limit": "1000",
                   "x-rate-limit-interval": "1s", "x-concurrency-limit": "3"}
        match = re.fullmatch(r"/(?:v1/)?works/(.+?)(/agency)?", path)
        if match:
            w = self.by_doi.get(match.group(1).lower())
            if w is None:
                return Reply(404, "Resource not found.", headers, "text/plain")
            if match.group(2):
                return Reply(200, {"status": "ok", "message-type": "work-agency",
                                   "message-version": "1.0.0", "message": {
                                       "DOI": w.doi, "agency": {"id": "crossref",
                                                                "label": "Crossref"}}}, headers)
            return Reply(200, {"status": "ok", "message-type": "work",
                               "message-version": "1.0.0", "message": self.crossref_work(w)},
                         headers)
        if re.fullmatch(r"/(?:v1/)?works/?", path):
            wanted = []
            for value in request.query.get("filter", []):
                for part in value.split(","):
                    key, _, doi = part.partition(":")
                    if key.strip() == "doi":
                        wanted.append(doi.strip().lower())
            items = [self.crossref_work(self.by_doi[d]) for d in dict.fromkeys(wanted)
                     if d in self.by_doi]
            rows = int((request.query.get("rows") or ["20"])[0])
            return Reply(200, {"status": "ok", "message-type": "work-list",
                               "message-version": "1.0.0", "message": {
                                   "facets": {}, "total-results": len(items),
                                   "items": items[:rows], "items-per-page": rows,
                                   "query": {"start-index": 0, "search-terms": None}}}, headers)
        return Reply(404, "Resource not found.", headers, "text/plain")

    # -- PubMed ------------------------------------------------------------------------------

    def pubmed_article(self, w: Work) -> str:
        authors = "".join(
            f"<Author ValidYN=\"Y\"><LastName>{escape(f)}</LastName><ForeName>{escape(g)}"
            f"</ForeName><Initials>{g[0]}</Initials><AffiliationInfo><Affiliation>University "
            f"{k}</Affiliation></AffiliationInfo></Author>" for k, (f, g) in enumerate(w.authors))
        doi_eloc = (f"<ELocationID EIdType=\"doi\" ValidYN=\"Y\">{w.doi}</ELocationID>"
                    if w.doi else "")
        ids = f"<ArticleId IdType=\"pubmed\">{w.pmid}</ArticleId>"
        if w.doi:
            ids += f"<ArticleId IdType=\"doi\">{w.doi}</ArticleId>"
        if w.pmcid:
            ids += f"<ArticleId IdType=\"pmc\">{w.pmcid}</ArticleId>"
        refs = []
        for j in w.cites:
            other = self.works[j]
            ref_ids = ""
            if other.pmid:
                ref_ids += f"<ArticleId IdType=\"pubmed\">{other.pmid}</ArticleId>"
            if other.doi:
                ref_ids += f"<ArticleId IdType=\"doi\">{other.doi}</ArticleId>"
            refs.append(f"<Reference><Citation>{escape(other.authors[0][0])} "
                        f"{other.authors[0][1][0]}. {escape(other.title)}. {escape(other.journal[1])}"
                        f". {other.year};{1 + j % 30}:{100 + j}.</Citation>"
                        + (f"<ArticleIdList>{ref_ids}</ArticleIdList>" if ref_ids else "")
                        + "</Reference>")
        mesh = ("<MeshHeadingList><MeshHeading><DescriptorName UI=\"D002547\" MajorTopicYN=\"Y\">"
                "Cerebral Palsy</DescriptorName><QualifierName UI=\"Q000628\" MajorTopicYN=\"N\">"
                "therapy</QualifierName></MeshHeading><MeshHeading><DescriptorName UI=\"D006801\" "
                "MajorTopicYN=\"N\">Humans</DescriptorName></MeshHeading></MeshHeadingList>")
        return (
            "<PubmedArticle><MedlineCitation Status=\"MEDLINE\" Owner=\"NLM\">"
            f"<PMID Version=\"1\">{w.pmid}</PMID>"
            "<DateRevised><Year>2024</Year><Month>10</Month><Day>08</Day></DateRevised>"
            "<Article PubModel=\"Electronic\"><Journal>"
            f"<ISSN IssnType=\"Electronic\">{w.journal[2]}</ISSN>"
            f"<JournalIssue CitedMedium=\"Internet\"><Volume>{1 + w.index % 30}</Volume>"
            f"<Issue>{1 + w.index % 4}</Issue><PubDate><Year>{w.year}</Year>"
            f"<Month>{_MONTHS[w.month - 1]}</Month></PubDate></JournalIssue>"
            f"<Title>{escape(w.journal[0])}</Title>"
            f"<ISOAbbreviation>{escape(w.journal[1])}</ISOAbbreviation></Journal>"
            f"<ArticleTitle>{escape(w.title)}.</ArticleTitle>"
            f"<Pagination><StartPage>{100 + w.index}</StartPage>"
            f"<MedlinePgn>{100 + w.index}-{110 + w.index}</MedlinePgn></Pagination>{doi_eloc}"
            f"<Abstract><AbstractText Label=\"BACKGROUND\">{escape(w.abstract)}</AbstractText>"
            f"</Abstract><AuthorList CompleteYN=\"Y\">{authors}</AuthorList>"
            "<Language>eng</Language><PublicationTypeList>"
            "<PublicationType UI=\"D016428\">Journal Article</PublicationType>"
            "</PublicationTypeList></Article>"
            "<MedlineJournalInfo><Country>England</Country>"
            f"<MedlineTA>{escape(w.journal[1])}</MedlineTA></MedlineJournalInfo>{mesh}"
            "<KeywordList Owner=\"NOTNLM\"><Keyword MajorTopicYN=\"N\">cell therapy</Keyword>"
            "</KeywordList></MedlineCitation><PubmedData><PublicationStatus>ppublish"
            f"</PublicationStatus><ArticleIdList>{ids}</ArticleIdList>"
            + (f"<ReferenceList>{''.join(refs)}</ReferenceList>" if refs else "")
            + "</PubmedData></PubmedArticle>")

    def efetch_xml(self, pmids: list[str]) -> str:
        found = [self.by_pmid[p] for p in dict.fromkeys(pmids) if p in self.by_pmid]
        return ("<?xml version=\"1.0\" ?>\n<!DOCTYPE PubmedArticleSet PUBLIC \"-//NLM//DTD "
                "PubMedArticle, 1st January 2025//EN\" \"https://dtd.nlm.nih.gov/ncbi/pubmed/out/"
                "pubmed_250101.dtd\">\n<PubmedArticleSet>"
                + "".join(self.pubmed_article(w) for w in found) + "</PubmedArticleSet>\n")

    def _eutils(self, request: Request, path: str) -> Reply:
        q = request.query
        ids = [i.strip() for v in q.get("id", []) for i in v.split(",") if i.strip()]
        if path.endswith("efetch.fcgi"):
            if q.get("WebEnv") and q.get("query_key"):
                history = self._histories.get(q["WebEnv"][0], [])
                start = int((q.get("retstart") or ["0"])[0])
                ids = history[start:start + int((q.get("retmax") or ["20"])[0])]
            return Reply(200, self.efetch_xml(ids), content_type="text/xml; charset=UTF-8")
        if path.endswith("esearch.fcgi"):
            term = (q.get("term") or [""])[0].lower().replace('"', "")
            hits = [w.pmid for w in self.works if w.pmid and all(
                t in (w.title + " " + w.abstract).lower() for t in term.split() if t not in
                ("and", "or"))]
            start = int((q.get("retstart") or ["0"])[0])
            retmax = int((q.get("retmax") or ["20"])[0])
            env = ""
            if (q.get("usehistory") or ["n"])[0] == "y":
                webenv = "MCID_" + hashlib.sha1(term.encode()).hexdigest()[:24]
                self._histories[webenv] = hits
                env = f"<QueryKey>1</QueryKey><WebEnv>{webenv}</WebEnv>"
            body = ("<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<eSearchResult>"
                    f"<Count>{len(hits)}</Count><RetMax>{len(hits[start:start + retmax])}"
                    f"</RetMax><RetStart>{start}</RetStart>{env}<IdList>"
                    + "".join(f"<Id>{p}</Id>" for p in hits[start:start + retmax])
                    + "</IdList><TranslationSet/></eSearchResult>")
            return Reply(200, body, content_type="text/xml; charset=UTF-8")
        if path.endswith("elink.fcgi"):
            linkname = (q.get("linkname") or ["pubmed_pubmed_refs"])[0]
            groups = [[i] for i in ids] if len(q.get("id", [])) > 1 else [ids]
            sets = []
            for group in groups:
                linked: list[str] = []
                for pmid in group:
                    w = self.by_pmid.get(pmid)
                    if w is None:
                        continue
                    others = (w.cites if linkname.endswith("_refs")
                              else self.cited_by[w.index])
                    linked += [self.works[j].pmid for j in others if self.works[j].pmid]
                db = (f"<LinkSetDb><DbTo>pubmed</DbTo><LinkName>{linkname}</LinkName>"
                      + "".join(f"<Link><Id>{p}</Id></Link>" for p in linked)
                      + "</LinkSetDb>") if linked else ""
                sets.append("<LinkSet><DbFrom>pubmed</DbFrom><IdList>"
                            + "".join(f"<Id>{p}</Id>" for p in group) + f"</IdList>{db}</LinkSet>")
            return Reply(200, "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<eLinkResult>"
                         + "".join(sets) + "</eLinkResult>", content_type="text/xml")
        return Reply(404, "<html><body>Not found</body></html>", content_type="text/html")

    def _idconv(self, request: Request) -> Reply:
        q = request.query
        records = []
        for raw in [i.strip() for v in q.get("ids", []) for i in v.split(",") if i.strip()]:
            w = (self.by_doi.get(raw.lower()) or self.by_pmid.get(raw)
                 or self.by_pmcid.get(raw.upper()))
            if w is None or w.pmcid is None:
                records.append({"requested-id": raw, "errmsg": "Identifier not found in PMC"}
                               if not raw.startswith("10.") else
                               {"doi": raw, "requested-id": raw})
                continue
            record: dict[str, Any] = {"requested-id": raw, "pmcid": w.pmcid,
                                      "pmid": int(w.pmid) if w.index % 2 else w.pmid}
            if w.doi:
                record["doi"] = w.doi
            records.append(record)
        return Reply(200, {"status": "ok", "responseDate": "2026-06-17 10:00:00",
                           "request": "ids=…;format=json", "records": records})

    # -- OpenAlex ----------------------------------------------------------------------------

    def openalex_work(self, w: Work) -> dict[str, Any]:
        inverted: dict[str, list[int]] = {}
        for pos, word in enumerate(w.abstract.split()):
            inverted.setdefault(word, []).append(pos)
        ids: dict[str, str] = {"openalex": f"https://openalex.org/{w.openalex}"}
        if w.doi:
            ids["doi"] = f"https://doi.org/{w.doi}"
        if w.pmid:
            ids["pmid"] = f"https://pubmed.ncbi.nlm.nih.gov/{w.pmid}"
        if w.pmcid:
            ids["pmcid"] = f"https://www.ncbi.nlm.nih.gov/pmc/articles/{w.pmcid[3:]}"
        return {
            "id": f"https://openalex.org/{w.openalex}",
            "doi": f"https://doi.org/{w.doi}" if w.doi else None,
            "title": w.title, "display_name": w.title, "publication_year": w.year,
            "publication_date": f"{w.year}-{w.month:02d}-01", "ids": ids, "language": "en",
            "type": "article",
            "primary_location": {"is_oa": True, "landing_page_url": ids.get("doi"),
                                 "source": {"id": "https://openalex.org/S1",
                                            "display_name": w.journal[0],
                                            "issn_l": w.journal[2], "issn": [w.journal[2]],
                                            "host_organization_name": "Synthetic Press",
                                            "type": "journal"},
                                 "license": "cc-by", "version": "publishedVersion"},
            "authorships": [{"author_position": "first" if k == 0 else "middle",
                             "author": {"id": f"https://openalex.org/A{5000000 + k}",
                                        "display_name": f"{given} {family}", "orcid": None},
                             "institutions": [], "countries": [], "is_corresponding": k == 0,
                             "raw_author_name": f"{given} {family}",
                             "raw_affiliation_strings": []}
                            for k, (family, given) in enumerate(w.authors)],
            "cited_by_count": len(self.cited_by[w.index]),
            "biblio": {"volume": str(1 + w.index % 30), "issue": str(1 + w.index % 4),
                       "first_page": str(100 + w.index), "last_page": str(110 + w.index)},
            "is_retracted": False, "is_paratext": False,
            "referenced_works_count": len(w.cites),
            "referenced_works": [f"https://openalex.org/{self.works[j].openalex}"
                                 for j in w.cites],
            "related_works": [], "abstract_inverted_index": inverted,
            "counts_by_year": [], "updated_date": "2026-01-01T00:00:00",
            "created_date": "2025-01-01T00:00:00",
        }

    def _openalex_lookup(self, value: str) -> Work | None:
        value = unquote(value).strip()
        low = value.lower()
        for prefix in ("https://doi.org/", "http://doi.org/", "doi.org/", "doi:"):
            if low.startswith(prefix):
                return self.by_doi.get(low[len(prefix):])
        if low.startswith("10."):
            return self.by_doi.get(low)
        for prefix in ("https://pubmed.ncbi.nlm.nih.gov/", "pmid:"):
            if low.startswith(prefix):
                return self.by_pmid.get(value[len(prefix):].strip("/"))
        match = re.search(r"(W\d+)$", value, re.I)
        return self.by_openalex.get(match.group(1).upper()) if match else None

    def _openalex(self, request: Request, path: str) -> Reply:
        not_found = Reply(404, {"error": "Not Found", "message": "not found"})
        match = re.fullmatch(r"/works/(.+)", path)
        if match:
            w = self._openalex_lookup(match.group(1))
            return Reply(200, self.openalex_work(w)) if w else not_found
        if path.rstrip("/") != "/works":
            return not_found
        q = request.query
        selected: list[Work] = list(self.works)
        for value in q.get("filter", []):
            for clause in value.split(","):
                key, _, values = clause.partition(":")
                key = key.strip()
                parts = [v for v in values.split("|") if v]
                if key in ("doi", "openalex", "openalex_id", "ids.openalex", "pmid", "ids.pmid"):
                    prefix = {"doi": "doi:", "pmid": "pmid:", "ids.pmid": "pmid:"}.get(key, "")
                    found = [self._openalex_lookup(
                        p if p.lower().startswith(("http", "10.", "w")) and key != "pmid"
                        and key != "ids.pmid" else prefix + p) for p in parts]
                    keep = {w.index for w in found if w}
                elif key == "cites":
                    keep = {i for p in parts for w in [self._openalex_lookup(p)] if w
                            for i in self.cited_by[w.index]}
                elif key in ("cited_by", "referenced_by"):
                    keep = {i for p in parts for w in [self._openalex_lookup(p)] if w
                            for i in w.cites}
                else:
                    return Reply(400, {"error": "Invalid query parameters error.",
                                       "message": f"{key} is not a valid field"})
                selected = [w for w in selected if w.index in keep]
        per_page = int((q.get("per-page") or q.get("per_page") or ["25"])[0])
        cursor = (q.get("cursor") or [None])[0]
        if cursor is not None:
            start = 0 if cursor == "*" else int(cursor.removeprefix("c"))
        else:
            start = (int((q.get("page") or ["1"])[0]) - 1) * per_page
        page = selected[start:start + per_page]
        next_cursor = (f"c{start + per_page}" if cursor is not None
                       and start + per_page < len(selected) else None)
        return Reply(200, {"meta": {"count": len(selected), "db_response_time_ms": 5,
                                    "page": None if cursor else start // per_page + 1,
                                    "per_page": per_page, "next_cursor": next_cursor,
                                    "groups_count": None},
                           "results": [self.openalex_work(w) for w in page], "group_by": []})

    # -- OpenCitations -----------------------------------------------------------------------

    def _oc_pids(self, w: Work) -> str:
        pids = [f"omid:br/0610{w.index:07d}"]
        if w.doi:
            pids.append(f"doi:{w.doi}")
        if w.pmid:
            pids.append(f"pmid:{w.pmid}")
        pids.append(f"openalex:{w.openalex}")
        return " ".join(pids)

    def _oc_row(self, citing: Work, cited: Work) -> dict[str, str]:
        return {"oci": f"0610{citing.index:07d}-0610{cited.index:07d}",
                "citing": self._oc_pids(citing), "cited": self._oc_pids(cited),
                "creation": f"{citing.year}-{citing.month:02d}",
                "timespan": f"P{citing.year - cited.year}Y", "journal_sc": "no",
                "author_sc": "no"}

    def _opencitations(self, path: str) -> Reply:
        match = re.fullmatch(r"/(references|citations|citation-count|reference-count)/(.+)",
                             path)
        if not match:
            return Reply(404, "<html><body><h1>Not Found</h1></body></html>",
                         content_type="text/html")
        kind, pid = match.group(1), unquote(match.group(2)).lower()
        scheme, _, value = pid.partition(":")
        w = {"doi": self.by_doi, "pmid": self.by_pmid}.get(scheme, {}).get(value)
        if w is None:
            return Reply(200, [] if not kind.endswith("count") else [{"count": "0"}])
        if kind == "references":
            rows = [self._oc_row(w, self.works[j]) for j in w.cites]
        elif kind == "citations":
            rows = [self._oc_row(self.works[i], w) for i in self.cited_by[w.index]]
        else:
            n = len(w.cites) if kind == "reference-count" else len(self.cited_by[w.index])
            return Reply(200, [{"count": str(n)}])
        return Reply(200, rows)

    # -- dispatch ----------------------------------------------------------------------------

    def respond(self, request: Request) -> Reply:
        """The correct answer to ``request``, as the real service would give it."""
        service, _, rest = unquote(request.path).lstrip("/").partition("/")
        rest = "/" + rest
        if service == "crossref":
            return self._crossref(request, rest)
        if service == "eutils":
            return self._eutils(request, rest)
        if service == "idconv":
            return self._idconv(request)
        if service == "openalex":
            return self._openalex(request, rest)
        if service == "opencitations":
            return self._opencitations(rest)
        if service == "datacite":
            return Reply(404, {"errors": [{"status": "404", "title":
                                           "The resource you are looking for doesn't exist."}]},
                         content_type="application/vnd.api+json")
        if service == "doi":
            match = re.fullmatch(r"/(?:ra|doiRA)/(.+)", rest)
            if match:
                out = []
                for doi in match.group(1).split(","):
                    out.append({"DOI": doi, "RA": "Crossref"} if doi.lower() in self.by_doi
                               else {"DOI": doi, "status": "DOI does not exist"})
                return Reply(200, out)
            return Reply(404, "<html><head><title>Error: DOI Not Found</title></head></html>",
                         content_type="text/html")
        return Reply(404, "Resource not found.")

    def install(self, server: ReplayServer, faults: "FaultInjector | None" = None) -> None:
        """Serve this corpus from ``server`` (through ``faults`` when given)."""
        responder = faults.wrap(self.respond) if faults else self.respond
        for method in ("GET", "POST"):
            server.add(method, r"/.*", responder)


# -- faults -----------------------------------------------------------------------------------

_HTML_502 = ("<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>"
             "502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>")
_HTML_MAINTENANCE = ("<!DOCTYPE html><html><head><title>Service temporarily unavailable</title>"
                     "</head><body><h1>We'll be back soon</h1><p>Scheduled maintenance.</p>"
                     "</body></html>")


class FaultInjector:
    """Wrap a responder so that a fraction ``rate`` of requests fail in one of ``kinds``.

    Whether the n-th attempt of a given request fails depends only on ``seed``, the request
    (method, path, query, body) and n. Requests naming any of ``doomed`` (in path, query or
    body) always get a 503. ``stall`` is how long a stalled answer waits (set it above the
    client timeout); ``retry_after`` is the Retry-After of a 429, in seconds. With
    ``first_attempts=n`` only the first n attempts of each distinct request can fail (so a
    client with n retries always gets through).
    """

    def __init__(self, rate: float = 0.3, *, seed: int = 7, kinds: tuple[str, ...] = FAULT_KINDS,
                 stall: float = 1.5, retry_after: int = 1, doomed: set[str] | None = None,
                 first_attempts: int | None = None) -> None:
        self.rate = rate
        self.seed = seed
        self.kinds = kinds
        self.stall = stall
        self.retry_after = retry_after
        self.doomed = {d.lower() for d in doomed or ()}
        self.first_attempts = first_attempts
        self.enabled = True
        self.injected: Counter[str] = Counter()
        self.log: list[tuple[str, str]] = []  # (request text, fault or "ok")
        self._attempts: Counter[str] = Counter()
        self._lock = threading.Lock()

    @staticmethod
    def request_text(request: Request) -> str:
        """Method, path, sorted query and body of a request, unquoted and lower-cased."""
        query = "&".join(f"{k}={v}" for k, vs in sorted(request.query.items()) for v in vs)
        body = request.body.decode("utf-8", "replace")
        return unquote(f"{request.method} {request.path}?{query} {body}").lower()

    def decide(self, request: Request) -> str | None:
        """The fault for this request (None: answer correctly)."""
        text = self.request_text(request)
        with self._lock:
            attempt = self._attempts[text]
            self._attempts[text] += 1
        if not self.enabled:
            fault = None
        elif any(d in text for d in self.doomed):
            fault = "503"
        elif self.first_attempts is not None and attempt >= self.first_attempts:
            fault = None
        else:
            rng = random.Random(f"{self.seed}|{text}|{attempt}")
            fault = rng.choice(self.kinds) if rng.random() < self.rate else None
        with self._lock:
            self.log.append((text, fault or "ok"))
            if fault:
                self.injected[fault] += 1
        return fault

    def wrap(self, respond: Any) -> Any:
        def responder(request: Request) -> Reply:
            fault = self.decide(request)
            if fault is None:
                return respond(request)
            return self.fault_reply(fault, respond, request)
        return responder

    def fault_reply(self, fault: str, respond: Any, request: Request) -> Reply:
        ncbi = "/eutils/" in request.path or "/idconv" in request.path
        if fault == "429":
            body: Any = ({"error": "API rate limit exceeded", "api-key": "127.0.0.1",
                          "count": "11", "limit": "3"} if ncbi else
                         "<html><body><h1>429 Too Many Requests</h1>You have sent too many "
                         "requests in a given amount of time.</body></html>")
            return Reply(429, body, {"Retry-After": str(self.retry_after)},
                         None if ncbi else "text/html")
        if fault in ("500", "503"):
            return Reply(int(fault), f"<html><head><title>{fault} Internal error</title></head>"
                         f"<body><h1>{fault}</h1></body></html>", content_type="text/html")
        if fault == "502":
            return Reply(502, _HTML_502, content_type="text/html")
        if fault == "html":
            return Reply(200, _HTML_MAINTENANCE, content_type="text/html; charset=utf-8")
        good = respond(request)
        payload = good.payload()
        if fault == "truncate":
            return Reply(good.status, payload, good.headers, good.type(),
                         truncate=max(1, len(payload) // 2))
        if fault == "invalid":
            return Reply(good.status, payload[:max(1, len(payload) // 2)], good.headers,
                         good.type())
        assert fault == "stall", fault
        return Reply(good.status, payload, good.headers, good.type(), delay=self.stall)

    def requests_naming(self, needle: str) -> int:
        """How many requests so far mention ``needle``."""
        needle = needle.lower()
        return sum(1 for text, _ in self.log if needle in text)


# -- files ------------------------------------------------------------------------------------

def pubmed_file(path: Path, corpus: SyntheticCorpus, repeat: int = 1) -> Path:
    """Write the corpus's PubMed records as one PubMed XML file (``repeat`` times over, with
    fresh PMIDs each time after the first), for ``kb import``."""
    with path.open("w", encoding="utf-8") as out:
        out.write("<?xml version=\"1.0\" ?>\n<PubmedArticleSet>\n")
        for copy in range(repeat):
            for w in corpus.works:
                if not w.pmid:
                    continue
                text = corpus.pubmed_article(w)
                if copy:
                    text = _renumber(text, copy)
                out.write(text + "\n")
        out.write("</PubmedArticleSet>\n")
    return path


def _renumber(text: str, copy: int) -> str:
    """A copy of an article with shifted PMIDs and DOIs (a distinct work per copy)."""
    text = re.sub(r"3(1\d{6})", lambda m: str(int(m.group(0)) + copy * 1000000), text)
    text = re.sub(r"10\.5555/kb\.(\d{4})", lambda m: f"10.5555/kb{copy}.{m.group(1)}", text)
    return re.sub(r"PMC8(\d{6})", lambda m: f"PMC{8 + copy}{m.group(1)}", text)


# -- comparing databases ----------------------------------------------------------------------

_VOLATILE = re.compile(r"(^|_)(at|time|timestamp)$|^(created|updated|fetched|started|"
                       r"finished|checked)", re.I)


def work_keys(conn: sqlite3.Connection) -> dict[int, str]:
    keys = {}
    for row in conn.execute("SELECT id, doi, pmid, pmcid, openalex_id, url, title FROM works"):
        for name, value in zip(("doi", "pmid", "pmcid", "openalex", "url"), row[1:6]):
            if value:
                keys[row[0]] = f"{name}:{value}"
                break
        else:
            keys[row[0]] = "title:" + hashlib.sha1((row[6] or "").encode()).hexdigest()[:12]
    return keys


#: The merge log's before/after snapshots: raw rows with their own ids and timestamps.
_SNAPSHOTS = frozenset(("merges.absorbed", "merges.kept_before", "merges.kept_after"))


def canonical_columns(conn: sqlite3.Connection, table: str,
                      skip_columns: frozenset[str] = frozenset()) -> list[str]:
    """The columns of ``table`` that :func:`canonical_state` keeps, in order: all but
    timestamps, ``records.url``, the merge snapshots, ``skip_columns`` and a surrogate rowid."""
    columns = conn.execute(f"PRAGMA table_info({table})").fetchall()
    keep = []
    for _cid, name, ctype, _notnull, _default, pk in columns:
        if _VOLATILE.search(name) or (table == "records" and name == "url") \
                or f"{table}.{name}" in skip_columns | _SNAPSHOTS:
            continue  # when, and by which request (batch or single), it was fetched
        if pk == 1 and ctype.upper() == "INTEGER" and table != "works" and \
                sum(c[5] > 0 for c in columns) == 1:
            continue  # a surrogate rowid
        keep.append(name)
    return keep


def canonical_state(path: Path | str, *, skip_tables: frozenset[str] = frozenset(),
                    skip_columns: frozenset[str] = frozenset()) -> dict[str, list[tuple]]:
    """Every table's rows, sorted, with timestamps dropped and ids replaced by identities.

    Work ids become ``doi:…``/``pmid:…`` keys, author ids become author keys, MeSH term ids
    their (descriptor, descriptor UI, qualifier), and other surrogate integer primary keys
    are dropped, so two KBs that hold the same facts compare
    equal even if rows were inserted in another order. Also left out: ``records.url`` (which
    request, batch or single, brought a payload) and the order of a ``sources`` list.
    ``skip_tables`` / ``skip_columns`` (``table.column``) leave out more.
    """
    conn = sqlite3.connect(str(path))
    try:
        works = work_keys(conn)
        authors = {r[0]: r[1] for r in conn.execute("SELECT id, key FROM authors")}
        state: dict[str, list[tuple]] = {}
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "AND name NOT LIKE 'works_fts_%'")]
        terms = {r[0]: tuple(r[1:]) for r in conn.execute(
            "SELECT id, descriptor, descriptor_ui, qualifier FROM mesh_terms")
            } if "mesh_terms" in tables else {}
        for table in tables:
            if table in skip_tables:
                continue
            fks = {fk[3]: fk[2] for fk in conn.execute(f"PRAGMA foreign_key_list({table})")}
            if table == "works_fts":
                rows = conn.execute("SELECT rowid, * FROM works_fts").fetchall()
                state[table] = sorted((works.get(r[0], f"missing:{r[0]}"),) + tuple(r[1:])
                                      for r in rows)
                continue
            keep = canonical_columns(conn, table, skip_columns)
            rows = conn.execute(f"SELECT {', '.join(keep)} FROM {table}").fetchall()
            out = []
            for row in rows:
                values = []
                for name, value in zip(keep, row):
                    target = fks.get(name) or ("works" if table == "works" and name == "id"
                                               else None)
                    if target == "works" and value is not None:
                        value = works.get(value, f"missing:{value}")
                    elif target == "authors" and value is not None:
                        value = authors.get(value, f"missing:{value}")
                    elif target == "mesh_terms" and value is not None:
                        value = terms.get(value, f"missing:{value}")
                    elif name == "sources" and isinstance(value, str):
                        value = json.dumps(sorted(json.loads(value)))  # a set, in arrival order
                    values.append(value)
                out.append(tuple(values))
            state[table] = sorted(out, key=repr)
        return state
    finally:
        conn.close()


def dump_json(state: dict[str, list[tuple]]) -> str:
    """A canonical state as text, for readable assertion diffs."""
    return json.dumps(state, indent=1, sort_keys=True, default=str)
