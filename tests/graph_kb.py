"""A small knowledge base of real CP cell-therapy works for the graph tests, built through
kb.store (upsert_works / add_links / evidence.add_lineage) as the importers would.

The seed picture of ../shared/corpus: the Cells4Life news article (March 2025) cites the pooled
study (Nouri, Cell J 2025), the two trials it pools (Amanat 2021, Zarrabi 2022), the
meta-analysis Qu 2022 and a Parent's Guide to Cord Blood page; the pooled study pools both
trials. Two reviews carry part of their real reference lists (as the corpus lists them).
Edges marked "test:" are added for the test only.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

from kb import store
from kb.records import WorkRecord
from kb.store import evidence

POOLED = "10.22074/cellj.2024.2032098.1600"
AMANAT = "10.1186/s13287-021-02513-4"
ZARRABI = "10.1186/s12883-022-02636-y"
QU = "10.3389/fbioe.2022.1006845"
AKAT = "10.1007/s11010-024-05072-3"
KIASAT = "10.1007/s12035-016-0030-0"
C4L = "https://cells4life.com/2025/03/fresh-insights-cell-therapy-cerebral-palsy"
PARENTS = ("https://parentsguidecordblood.org/en/news/"
           "cerebral-palsy-response-cell-therapy-function-time")
DEFINITION = "10.1111/j.1469-8749.2007.00001.x"   # Rosenbaum et al. 2007, cited by both reviews
RETRACTED = "10.5555/kb-test.retracted-trial"      # a hypothetical work, for the marks
ALONE = "10.1542/peds.2024-068999"                 # no edges in this KB

WORKS: list[tuple[WorkRecord, str | None]] = [
    ({"source": "corpus", "doi": POOLED, "title": "Cell-Based Therapy for Cerebral Palsy: A "
      "Puzzle in Progress", "authors": [{"family": "Nouri", "given": "M."}],
      "journal": "Cell Journal", "year": 2025, "volume": "26", "issue": "9",
      "pages": "569-574", "type": "journal-article", "unverified": True}, "pooled-analysis"),
    ({"source": "corpus", "doi": AMANAT, "pmid": "34362453", "pmcid": "PMC8343813",
      "title": "Clinical and imaging outcomes after intrathecal injection of umbilical cord "
      "tissue mesenchymal stem cells in cerebral palsy: a randomized double-blind "
      "sham-controlled clinical trial",
      "authors": [{"family": "Amanat", "given": "Man"}, {"family": "Majmaa", "given": "Anahita"},
                  {"family": "Zarrabi", "given": "Morteza"}],
      "journal": "Stem Cell Research & Therapy", "year": 2021, "type": "journal-article"},
     "rct"),
    ({"source": "corpus", "doi": ZARRABI, "title": "The safety and efficacy of umbilical cord "
      "blood mononuclear cells in individuals with spastic cerebral palsy: a randomized "
      "double-blind sham-controlled clinical trial",
      "authors": [{"family": "Zarrabi", "given": "Morteza"},
                  {"family": "Akbari", "given": "Masood Ghahvechi"}],
      "journal": "BMC Neurology", "year": 2022, "type": "journal-article"}, "rct"),
    ({"source": "corpus", "doi": QU, "pmid": "36588957", "pmcid": "PMC9794999",
      "title": "Efficacy and safety of stem cell therapy in cerebral palsy: A systematic review "
      "and meta-analysis", "authors": [{"family": "Qu", "given": "Jiayang"},
                                       {"family": "Zhou", "given": "Lin"}],
      "journal": "Frontiers in Bioengineering and Biotechnology", "year": 2022,
      "type": "journal-article"}, "meta-analysis"),
    ({"source": "webpage", "url": C4L, "title": "Fresh insights: cell therapy for cerebral palsy",
      "journal": "Cells4Life", "year": 2025, "type": "web-article",
      "references": [{"position": 1, "doi": POOLED}, {"position": 2, "doi": AMANAT},
                     {"position": 3, "doi": ZARRABI}, {"position": 4, "doi": QU},
                     {"position": 5, "url": PARENTS,  # type: ignore[typeddict-unknown-key]
                      "title": "Cerebral Palsy Response to Cell Therapy as a Function of Time"}]},
     "web-article"),
    ({"source": "corpus", "doi": AKAT, "pmid": "39033213",
      "title": "A systematic review of cell therapy modalities and outcomes in cerebral palsy",
      "authors": [{"family": "Akat", "given": "A."}], "journal": "Mol Cell Biochem",
      "year": 2024, "type": "journal-article",
      "references": [{"doi": "10.1016/j.ridd.2010.12.042"}, {"doi": "10.1111/dmcn.12268"},
                     {"doi": "10.1111/dmcn.13001"}, {"doi": "10.1111/j.1469-8749.2000.tb00695.x"},
                     {"doi": DEFINITION, "title": "The Definition and Classification of "
                      "Cerebral Palsy", "year": 2007, "journal": "Dev Med Child Neurol"},
                     {"doi": "10.1136/bmjopen-2019-034974"},
                     {"unstructured": "Novak I, et al. Concise review: stem cell interventions "
                      "for people with cerebral palsy. Stem Cells Transl Med. 2016."}]},
     "systematic-review"),
    ({"source": "corpus", "doi": KIASAT, "title": "The Role of Stem Cells in the Treatment of "
      "Cerebral Palsy: a Review", "authors": [{"family": "Kiasatdolatabadi", "given": "A."}],
      "journal": "Molecular Neurobiology", "year": 2017, "type": "journal-article",
      "references": [{"doi": "10.1001/archpedi.161.11.1075"}, {"doi": "10.1016/j.pmr.2009.06.001"},
                     {"doi": "10.1111/dmcn.12262"}, {"doi": "10.3233/nre-2003-18310"},
                     {"doi": DEFINITION},  # test: a second citer of the 2007 definition
                     {"doi": AMANAT}]},  # test: lets coupling / paths reach the trials
     "review"),
    ({"source": "corpus", "doi": RETRACTED, "title": "A hypothetical retracted cord blood trial "
      "(test record)", "authors": [{"family": "Testwork", "given": "T."}],
      "journal": "Journal of Tests", "year": 2020, "type": "journal-article",
      "is_retracted": True}, "rct"),
    ({"source": "corpus", "doi": ALONE, "pmid": "40210215", "title": "Cord Blood Treatment for "
      "Children With Cerebral Palsy: Individual Participant Data Meta-Analysis",
      "authors": [{"family": "Finch-Edmondson", "given": "M."}], "journal": "Pediatrics",
      "year": 2025, "type": "journal-article"}, "meta-analysis"),
]


def build(path: Path) -> sqlite3.Connection:
    """Create the test KB at ``path`` and return an open connection to it."""
    conn = store.connect(path)
    results = store.upsert_works(conn, [record for record, _ in WORKS])
    for (_, design), result in zip(WORKS, results):
        if design:
            store.set_study_design(conn, result.work_id, design, "curated")
    ids = work_ids(conn)
    for trial in (AMANAT, ZARRABI):
        evidence.add_lineage(conn, ids[POOLED], ids[trial], "pools",
                             "pools the trial's participants", C4L)
    # test: the pooled study also cites what it pools, reported by two services (one edge)
    for source in ("openalex", "opencitations"):
        store.add_links(conn, [{"citing": {"doi": POOLED}, "cited": {"doi": AMANAT},
                                "source": source}])
    # test: the hypothetical retracted trial is cited by the meta-analysis
    store.add_links(conn, [{"citing": {"doi": QU}, "cited": {"doi": RETRACTED},
                            "source": "openalex"}])
    return conn


def work_ids(conn: sqlite3.Connection) -> dict[str, int]:
    """DOI or URL -> work id, for every work in the test KB."""
    out = {}
    for row in conn.execute("SELECT id, doi, url FROM works"):
        out[row["doi"] or row["url"]] = row["id"]
    return out
