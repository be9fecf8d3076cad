-- kb core schema: works, people, subject terms, citations, raw payloads, full-text index.
-- Applied by kb.store.migrate inside one transaction that also sets PRAGMA user_version = 1.

CREATE TABLE works (
    id              INTEGER PRIMARY KEY,
    doi             TEXT UNIQUE,            -- canonical: lower-case, no resolver prefix
    pmid            TEXT UNIQUE,
    pmcid           TEXT UNIQUE,
    openalex_id     TEXT UNIQUE,
    title           TEXT,
    subtitle        TEXT,
    abstract        TEXT,
    journal         TEXT,
    journal_abbrev  TEXT,
    issn            TEXT,
    publisher       TEXT,
    year            INTEGER,
    pub_date        TEXT,                   -- ISO 8601, partial allowed (2021, 2021-08)
    volume          TEXT,
    issue           TEXT,
    pages           TEXT,
    language        TEXT,
    type            TEXT,                   -- journal-article, web-article, book-chapter, ...
    study_design    TEXT,                   -- rct, pooled-analysis, meta-analysis, review, ...
    design_source   TEXT,                   -- curated | pubtype | rule
    url             TEXT,
    license         TEXT,
    cited_by_count  INTEGER,
    is_retracted    INTEGER NOT NULL DEFAULT 0 CHECK (is_retracted IN (0, 1)),
    status          TEXT NOT NULL DEFAULT 'full' CHECK (status IN ('full', 'stub')),
    unverified      INTEGER NOT NULL DEFAULT 0 CHECK (unverified IN (0, 1)),
    note            TEXT,
    provenance      TEXT NOT NULL DEFAULT '{}', -- JSON: field -> source that gave its value
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX works_url ON works(url);
CREATE INDEX works_year ON works(year);
CREATE INDEX works_design ON works(study_design);
CREATE INDEX works_status ON works(status);

CREATE TABLE authors (
    id      INTEGER PRIMARY KEY,
    key     TEXT NOT NULL UNIQUE,           -- orcid:<id> or name:<family>|<given>
    family  TEXT,
    given   TEXT,
    name    TEXT NOT NULL,                  -- display name: "Given Family" or a collective name
    orcid   TEXT
);

CREATE TABLE work_authors (
    work_id     INTEGER NOT NULL REFERENCES works(id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,           -- 1-based
    author_id   INTEGER NOT NULL REFERENCES authors(id),
    affiliation TEXT,
    PRIMARY KEY (work_id, position)
) WITHOUT ROWID;
CREATE INDEX work_authors_author ON work_authors(author_id);

CREATE TABLE mesh (
    work_id       INTEGER NOT NULL REFERENCES works(id) ON DELETE CASCADE,
    descriptor    TEXT NOT NULL,
    descriptor_ui TEXT,
    qualifier     TEXT,
    major         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX mesh_work ON mesh(work_id);
CREATE INDEX mesh_descriptor ON mesh(descriptor COLLATE NOCASE);

CREATE TABLE keywords (
    work_id INTEGER NOT NULL REFERENCES works(id) ON DELETE CASCADE,
    keyword TEXT NOT NULL,
    PRIMARY KEY (work_id, keyword)
) WITHOUT ROWID;

CREATE TABLE publication_types (
    work_id INTEGER NOT NULL REFERENCES works(id) ON DELETE CASCADE,
    type    TEXT NOT NULL,
    PRIMARY KEY (work_id, type)
) WITHOUT ROWID;

-- Registry and data-bank accession numbers a work carries (ClinicalTrials.gov NCT ids, ...).
CREATE TABLE accessions (
    work_id   INTEGER NOT NULL REFERENCES works(id) ON DELETE CASCADE,
    bank      TEXT NOT NULL,
    accession TEXT NOT NULL,
    PRIMARY KEY (work_id, accession)
) WITHOUT ROWID;
CREATE INDEX accessions_accession ON accessions(accession);

-- Corrections, retractions and other editorial updates, as each source states them.
CREATE TABLE updates (
    work_id    INTEGER NOT NULL REFERENCES works(id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,               -- retraction, correction, erratum, ...
    direction  TEXT NOT NULL CHECK (direction IN ('updated-by', 'update-to')),
    other_doi  TEXT,
    other_pmid TEXT,
    label      TEXT,
    source     TEXT NOT NULL,
    UNIQUE (work_id, kind, direction, other_doi, other_pmid, source)
);

-- One row per (citing work, cited reference). cited_id is NULL until the reference is resolved.
CREATE TABLE citations (
    id           INTEGER PRIMARY KEY,
    citing_id    INTEGER NOT NULL REFERENCES works(id) ON DELETE CASCADE,
    cited_id     INTEGER REFERENCES works(id) ON DELETE SET NULL,
    ref_key      TEXT NOT NULL,             -- doi:<doi> | pmid:<n> | pmcid:<id> | openalex:<W> | text:<hash>
    position     INTEGER,
    cited_doi    TEXT,
    cited_pmid   TEXT,
    cited_pmcid  TEXT,
    cited_openalex TEXT,
    title        TEXT,
    journal      TEXT,
    year         INTEGER,
    first_author TEXT,
    volume       TEXT,
    first_page   TEXT,
    unstructured TEXT,
    sources      TEXT NOT NULL DEFAULT '[]', -- JSON array: every source that reported this edge
    resolved_by  TEXT,                       -- doi | pmid | pmcid | openalex | url | fuzzy | merge
    match_score  REAL,                       -- rapidfuzz score of a fuzzy link (0-100)
    UNIQUE (citing_id, ref_key)
);
CREATE INDEX citations_cited ON citations(cited_id);
CREATE INDEX citations_unresolved ON citations(citing_id) WHERE cited_id IS NULL;

-- Raw payloads as each source returned them, so anything can be re-parsed without refetching.
CREATE TABLE records (
    id         INTEGER PRIMARY KEY,
    source     TEXT NOT NULL,
    source_id  TEXT NOT NULL,
    work_id    INTEGER REFERENCES works(id) ON DELETE SET NULL,
    url        TEXT,
    fetched_at TEXT NOT NULL,
    body       TEXT,
    UNIQUE (source, source_id)
);
CREATE INDEX records_work ON records(work_id);

-- Full-text index, one row per work (rowid = works.id), kept in sync by kb.store.
CREATE VIRTUAL TABLE works_fts USING fts5(
    title, abstract, keywords, mesh, authors,
    tokenize = 'porter unicode61 remove_diacritics 2'
);

-- No two rows for the same resolved edge.
CREATE UNIQUE INDEX citations_edge ON citations(citing_id, cited_id) WHERE cited_id IS NOT NULL;

-- What goes into works_fts for each work; kb.store copies from it.
CREATE VIEW works_fts_source AS
SELECT w.id AS rowid,
       trim(coalesce(w.title, '') || coalesce(': ' || w.subtitle, '')) AS title,
       coalesce(w.abstract, '') AS abstract,
       coalesce((SELECT group_concat(keyword, '; ') FROM keywords k WHERE k.work_id = w.id), '') AS keywords,
       coalesce((SELECT group_concat(DISTINCT m.descriptor) FROM mesh m WHERE m.work_id = w.id), '') AS mesh,
       coalesce((SELECT group_concat(name, '; ') FROM (SELECT a.name FROM work_authors wa
                 JOIN authors a ON a.id = wa.author_id WHERE wa.work_id = w.id ORDER BY wa.position)), '') AS authors
FROM works w;
