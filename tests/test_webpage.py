"""The web-article scraper on pages shaped like real news sites and blogs."""
from __future__ import annotations

import json
from importlib import resources

import pytest

from kb import store
from kb.errors import ParseError
from kb.http import Client
from kb.scrapers import webpage
from kb.scrapers.webpage import fetch_page, parse_page, parse_printed_reference
from tests.replay import FIXTURES, Reply

PAGES = FIXTURES / "webpage"
SEED_URL = "https://cells4life.com/2025/03/fresh-insights-cell-therapy-cerebral-palsy"


def page(name: str) -> bytes:
    return (PAGES / name).read_bytes()


def ids(record: dict) -> list[tuple[str, str]]:
    return [next((f, r[f]) for f in ("doi", "pmid", "pmcid", "url", "unstructured") if r.get(f))
            for r in record["references"]]


def test_wordpress_ordered_list_of_references() -> None:
    record = parse_page(page("wordpress_ol.html"),
                        "https://cordbloodnews.example.org/2023/06/cord-blood-cerebral-palsy-trials"
                        "?utm_source=twitter")
    assert record["source"] == "webpage" and record["type"] == "web-article"
    assert record["title"] == "Cord blood for cerebral palsy: what the trials say"
    assert record["journal"] == "Cord Blood News"
    assert record["pub_date"] == "2023-06-14" and record["year"] == 2023
    # the canonical link wins over the tracking URL it was fetched from
    assert record["url"] == "https://cordbloodnews.example.org/2023/06/cord-blood-cerebral-palsy-trials"
    assert record["authors"] == [{"family": "Smith", "given": "Jane Q."}]
    # four list items, in order; the sidebar's and footer's doi.org links are not references
    assert ids(record) == [("doi", "10.1002/stem.1304"), ("pmcid", "PMC8380440"),
                           ("pmid", "28235424"),
                           ("unstructured", record["references"][3]["unstructured"])]
    assert [r["position"] for r in record["references"]] == [1, 2, 3, 4]
    min_, sun, liu, jantzie = record["references"]
    assert (min_["first_author"], min_["year"], min_["journal"], min_["volume"],
            min_["first_page"]) == ("Min", 2013, "Stem Cells", "31", "581")
    assert sun["title"] == ("Sibling umbilical cord blood infusion is safe in young children "
                            "with cerebral palsy")
    assert liu["first_author"] == "Liu" and liu["year"] == 2017
    assert jantzie["unstructured"].startswith("Jantzie LL, et al. Stem cells and cell-based")
    assert (jantzie["first_author"], jantzie["year"], jantzie["journal"]) == (
        "Jantzie", 2018, "Pediatr Res")


def test_references_heading_then_numbered_paragraphs() -> None:
    record = parse_page(page("paragraph_refs.html"),
                        "https://stemcellbank.example.co.uk/blog/fresh-look-cell-types-cp")
    # the site name before the headline in <title> is dropped; the h1 confirms the headline
    assert record["title"] == "Fresh look at cell types for CP"
    assert record["journal"] == "stemcellbank.example.co.uk"  # no og:site_name: the host
    assert record["pub_date"] == "2025-02-03"  # <time datetime>
    refs = record["references"]
    assert [r.get("doi") for r in refs] == ["10.1186/s13287-021-02513-4",
                                           "10.1186/s12883-022-02636-y", None, None]
    # [3] and [4] share one <p> split by <br>; neither has a link
    assert [r["first_author"] for r in refs] == ["Amanat", "Zarrabi", "Nouri", "Qu"]
    assert refs[2]["title"] == "Cell-Based Therapy for Cerebral Palsy: A Puzzle in Progress"
    assert refs[2]["unstructured"].endswith("PubMed, 26(9), pp.569–574.")
    assert refs[3]["year"] == 2022
    # the "Request your free guide" section after the list is not a reference
    assert len(refs) == 4
    # windows-1252 bytes are decoded by the page's own declaration
    assert "Patients’ ages were 4–14" in record["raw"]


def test_blog_with_inline_doi_and_pubmed_links() -> None:
    record = parse_page(page("blog_inline.html"),
                        "https://neurorehab.example.net/posts/why-one-trial-is-not-enough?ref=home")
    assert record["title"] == "Why one trial is not enough"  # "| The Neuro Rehab Blog" dropped
    assert record["journal"] == "The Neuro Rehab Blog"  # JSON-LD publisher
    assert record["pub_date"] == "2024-09-30"  # JSON-LD datePublished
    assert record["url"] == "https://neurorehab.example.net/posts/why-one-trial-is-not-enough"
    assert [a["family"] for a in record["authors"]] == ["Natarajan", "Baker"]
    org = parse_page(page("blog_inline.html").replace(b'"@type": "Person", "name": "Tom Baker"',
                                                      b'"@type": "Organization", "name": "Mayo Clinic"'),
                     "https://neurorehab.example.net/p")
    assert org["authors"][1] == {"name": "Mayo Clinic"}  # an organisation is not split
    assert ids(record) == [("doi", "10.1542/peds.2024-068999"), ("pmid", "28235424"),
                           ("pmcid", "PMC5984068"), ("doi", "10.1038/pr.2017.233"),
                           ("doi", "10.1111/dmcn.12166")]
    assert record["references"][1]["unstructured"] == "Chinese trial comparing bone marrow cell types"
    # a link to an ordinary site in the text is not a reference; nor is the footer's DOI
    assert all("cerebralpalsy.org.au" not in json.dumps(r) for r in record["references"])


def test_page_without_references() -> None:
    record = parse_page(page("no_refs.html"), "https://clinic.example.org/news/2024/05/new-wing")
    assert record["references"] == []
    assert record["title"] == "Clinic opens new therapy wing"
    assert record["pub_date"] == "2024-05" and record["year"] == 2024  # from the URL path
    assert record["journal"] == "clinic.example.org"


def test_footnotes_list_with_backlinks_and_pmid_text() -> None:
    record = parse_page(page("footnotes.html"))  # no URL given: og:url names the page
    assert record["url"] == "https://cordbloodexplained.example.com/news/sibling-cord-blood"
    assert record["pub_date"] == "2021-09-01"
    sun, okur = record["references"]
    assert sun["pmid"] == "34085782" and sun["first_author"] == "Sun"
    assert not sun["unstructured"].endswith("↩")
    assert okur["first_author"] == "Okur" and okur["year"] == 2018 and "doi" not in okur


def test_seed_article_gives_the_five_reference_picture() -> None:
    html = resources.files("kb").joinpath("seed/cells4life-2025-03.html").read_bytes()
    record = parse_page(html, SEED_URL)
    assert record["url"] == SEED_URL and record["pub_date"] == "2025-03"
    assert record["journal"] == "Cells4Life"
    assert ids(record) == [
        ("url", "https://parentsguidecordblood.org/en/news/cerebral-palsy-response-cell-therapy-function-time"),
        ("doi", "10.3389/fbioe.2022.1006845"), ("doi", "10.22074/cellj.2024.2032098.1600"),
        ("doi", "10.1186/s13287-021-02513-4"), ("doi", "10.1186/s12883-022-02636-y")]
    assert record["references"][0]["title"] == ("Cerebral Palsy Response to Cell Therapy as a "
                                                "Function of Time")
    assert record["references"][0]["first_author"] == "Parent’s Guide to Cord Blood"


def test_page_references_become_citation_rows(tmp_path) -> None:
    conn = store.connect(tmp_path / "kb.db")
    html = resources.files("kb").joinpath("seed/cells4life-2025-03.html").read_bytes()
    result = store.upsert_work(conn, parse_page(html, SEED_URL))
    rows = conn.execute(
        "SELECT c.position, w.doi, w.url, w.status FROM citations c JOIN works w "
        "ON w.id = c.cited_id WHERE c.citing_id = ? ORDER BY c.position", (result.work_id,)).fetchall()
    assert [tuple(r) for r in rows] == [
        (1, None, "https://parentsguidecordblood.org/en/news/cerebral-palsy-response-cell-therapy"
                  "-function-time", "stub"),
        (2, "10.3389/fbioe.2022.1006845", None, "stub"),
        (3, "10.22074/cellj.2024.2032098.1600", None, "stub"),
        (4, "10.1186/s13287-021-02513-4", None, "stub"),
        (5, "10.1186/s12883-022-02636-y", None, "stub")]
    work = conn.execute("SELECT type, title, journal, pub_date FROM works WHERE id = ?",
                        (result.work_id,)).fetchone()
    assert tuple(work) == ("web-article", "Fresh insights: cell therapy for cerebral palsy",
                           "Cells4Life", "2025-03")
    # adding the same page again changes nothing
    assert store.upsert_work(conn, parse_page(html, SEED_URL)).action == "unchanged"


@pytest.mark.parametrize("text, fields", [
    ("Eggenberger S, Boucard C, Schoeberlein A, et al. Stem cell treatment and cerebral palsy: "
     "Systemic review and meta-analysis. World J Stem Cells. 2019;11(10):891-903. "
     "PMID: 31692977",
     {"first_author": "Eggenberger", "year": 2019, "pmid": "31692977", "volume": "11",
      "first_page": "891", "journal": "World J Stem Cells"}),
    ("Finch-Edmondson, M., Paton, M. C. B., & Novak, I. (2025). Cord Blood Treatment for Children "
     "With Cerebral Palsy: Individual Participant Data Meta-Analysis. Pediatrics. "
     "https://doi.org/10.1542/peds.2024-068999",
     {"first_author": "Finch-Edmondson", "year": 2025, "doi": "10.1542/peds.2024-068999",
      "title": "Cord Blood Treatment for Children With Cerebral Palsy: Individual Participant "
               "Data Meta-Analysis"}),
    ("Cerebral palsy: an overview, 2019, retrieved from the charity's site",
     {"year": 2019}),
])
def test_reference_styles(text: str, fields: dict) -> None:
    ref = parse_printed_reference(text)
    assert {k: ref.get(k) for k in fields} == fields
    assert ref["unstructured"] == text


@pytest.mark.parametrize("body", [b"", b"%PDF-1.7\n...", b'{"title": "not html"}'])
def test_not_a_page_is_a_clear_error(body: bytes) -> None:
    with pytest.raises(ParseError, match="not an HTML page"):
        parse_page(body, "https://example.org/x")


def test_page_with_no_url_anywhere_is_refused() -> None:
    with pytest.raises(ParseError, match="names no URL"):
        parse_page(page("no_refs.html"))


def test_fetch_page_over_http(server, config) -> None:
    body = page("paragraph_refs.html")
    server.add("GET", "/blog/fresh-look", Reply(200, body, content_type="text/html"))
    server.add("GET", "/paper.pdf", Reply(200, b"%PDF-1.7", content_type="application/pdf"))
    with Client(config) as client:
        record = fetch_page(client, f"{server.url}/blog/fresh-look")
        assert record["url"] == f"{server.url}/blog/fresh-look"
        assert record["title"] == "Fresh look at cell types for CP"
        assert len(record["references"]) == 4
        with pytest.raises(ParseError, match="application/pdf"):
            fetch_page(client, f"{server.url}/paper.pdf")
    assert server.requests[0].headers["Accept"].startswith("text/html")


def test_kb_add_url_and_saved_page(server, kb_env, runner, tmp_path) -> None:
    """`kb add URL` fetches and stores the page with its references; `kb add page.html` reads
    a saved page; a saved page that names no URL fails alone, with the reason."""
    from kb.cli import cli

    server.add("GET", "/news/cord-blood", Reply(200, page("wordpress_ol.html"),
                                                 content_type="text/html; charset=utf-8"))
    saved = tmp_path / "saved.html"
    saved.write_bytes(b"<!-- saved from url=(0061)https://neurorehab.example.net/posts/why-one-"
                      b"trial-is-not-enough -->\n" + page("blog_inline.html").replace(
                          b'<link rel="canonical" href="/posts/why-one-trial-is-not-enough">', b""))
    result = runner.invoke(cli, ["add", f"{server.url}/news/cord-blood", str(saved),
                                 str(PAGES / "no_refs.html")])
    assert result.exit_code == 1, result.output
    assert "names no URL" in result.output
    conn = store.connect(kb_env["KB_DB"], create=False)
    rows = conn.execute("SELECT url, title FROM works WHERE type = 'web-article' ORDER BY url"
                        ).fetchall()
    assert [tuple(r) for r in rows] == [
        ("https://cordbloodnews.example.org/2023/06/cord-blood-cerebral-palsy-trials",
         "Cord blood for cerebral palsy: what the trials say"),
        ("https://neurorehab.example.net/posts/why-one-trial-is-not-enough",
         "Why one trial is not enough")]
    cited = conn.execute(
        "SELECT c.position, w.doi, w.pmid, w.pmcid FROM citations c JOIN works f ON f.id = "
        "c.citing_id LEFT JOIN works w ON w.id = c.cited_id WHERE f.url LIKE "
        "'https://cordbloodnews%' ORDER BY c.position").fetchall()
    assert [tuple(r) for r in cited] == [(1, "10.1002/stem.1304", None, None),
                                         (2, None, None, "PMC8380440"),
                                         (3, None, "28235424", None), (4, None, None, None)]


def test_references_heading_then_a_div_of_numbered_paragraphs() -> None:
    record = parse_page(page("div_refs.html"), "https://cerebralpalsy.example.org.au/x")
    assert record["url"] == ("https://cerebralpalsy.example.org.au/news-stories/"
                             "sibling-cord-blood-safety")
    assert record["journal"] == "Cerebral Palsy Alliance" and record["pub_date"] == "2022-03-01"
    refs = record["references"]
    # four numbered items, each its own reference; the "Related stories" link comes after
    assert [r["position"] for r in refs] == [1, 2, 3, 4, 5]
    assert refs[0]["unstructured"].startswith("Safety of sibling cord blood cell infusion")
    assert refs[0]["year"] == 2022 and "doi" not in refs[0]
    assert (refs[1]["first_author"], refs[1]["year"]) == ("Crompton", 2020)
    assert refs[2]["doi"] == "10.1002/sctm.20-0470" and refs[2]["first_author"] == "Sun"
    assert refs[3]["url"] == "https://cerebralpalsy.example.org.au/position-statement-stem-cells"
    assert refs[4] == {"doi": "10.1542/peds.2024-068999",
                       "unstructured": "Cord blood meta-analysis", "position": 5}


def test_one_page_is_one_work_whatever_the_url_variant(tmp_path) -> None:
    """The seed article added again from the live site (canonical with a trailing slash, a
    tracking link) lands on the seed's work, not a duplicate."""
    from kb.ingest import seed as seed_reader

    conn = store.connect(tmp_path / "kb.db")
    seed = next(w for w in seed_reader.read_works() if w.get("url") == SEED_URL)
    seed_id = store.upsert_work(conn, seed).work_id
    html = resources.files("kb").joinpath("seed/cells4life-2025-03.html").read_bytes()
    live = html.replace(f'<link rel="canonical" href="{SEED_URL}">'.encode(),
                        f'<link rel="canonical" href="{SEED_URL}/">'.encode())
    result = store.upsert_work(conn, parse_page(live, SEED_URL + "/?utm_source=facebook#refs"))
    assert result.work_id == seed_id
    assert conn.execute("SELECT count(*) FROM works WHERE url LIKE 'https://cells4life%'"
                        ).fetchone()[0] == 1
