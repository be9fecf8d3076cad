-- kb MeSH dictionary: each heading (descriptor, its UI, qualifier) is stored once in mesh_terms,
-- and work_mesh lists a work's headings in order by term id. On a PubMed import the old mesh
-- table repeated the same few thousand strings hundreds of thousands of times (22.6 of 128 MB
-- on pubmed20n0014). A view keeps the old `mesh` shape for every reader (search, the FTS
-- source, exports, the evidence screen, Datasette). kb.store.mesh writes both tables.

DROP INDEX mesh_descriptor;  -- the name moves to the dictionary

CREATE TABLE mesh_terms (
    id            INTEGER PRIMARY KEY,
    descriptor    TEXT NOT NULL,
    descriptor_ui TEXT,
    qualifier     TEXT
);

CREATE TABLE work_mesh (
    work_id  INTEGER NOT NULL REFERENCES works(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,              -- 1-based, the order the source lists them
    term_id  INTEGER NOT NULL REFERENCES mesh_terms(id),
    major    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (work_id, position)
) WITHOUT ROWID;

INSERT INTO mesh_terms(descriptor, descriptor_ui, qualifier)
SELECT descriptor, descriptor_ui, qualifier FROM mesh
GROUP BY descriptor, qualifier, descriptor_ui ORDER BY min(rowid);

CREATE INDEX mesh_descriptor ON mesh_terms(descriptor COLLATE NOCASE);  -- search and the writer

INSERT INTO work_mesh(work_id, position, term_id, major)
SELECT m.work_id, row_number() OVER (PARTITION BY m.work_id ORDER BY m.rowid), t.id, m.major
FROM mesh m JOIN mesh_terms t ON t.descriptor = m.descriptor AND t.qualifier IS m.qualifier
                              AND t.descriptor_ui IS m.descriptor_ui;

DROP TABLE mesh;

CREATE INDEX work_mesh_term ON work_mesh(term_id);

CREATE VIEW mesh AS
SELECT wm.work_id, t.descriptor, t.descriptor_ui, t.qualifier, wm.major, wm.position
FROM work_mesh wm JOIN mesh_terms t ON t.id = wm.term_id;
